"""Rich renderables for the ``nemorun`` command line: the experiment list, one experiment, its task table.

Views build renderables from plain dicts (index entries, ``Experiment.status`` reports, metadata) and never
touch the store, so what a command shows and what it prints with ``--json`` come from the same data.

Every string shown comes from the store, which anyone who can launch an experiment (or edit a file) writes: it goes
through :func:`printable` and into a ``Text`` (never rich markup), so a title cannot move the cursor, retitle the
terminal, clear the screen or fake a table row.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from nemorun_core.executors.base import JobState
from nemorun_core.experiment.render import printable, state_text, when


def cell(value: Any) -> Text:
    """A table cell of stored text: escaped and never read as rich markup."""
    return Text(printable(value))


def _state(value: Any) -> Text:
    state = printable(value) or JobState.UNKNOWN.value
    if state in JobState.__members__:
        return Text.from_markup(state_text(state))
    return Text(state, style="magenta")


def _names(values: Any) -> str:
    return ", ".join(printable(v) for v in values) if isinstance(values, (list, tuple)) else printable(values)


def ago(stamp: float | None, now: float | None = None) -> str:
    """``"3m ago"``-style age, next to the absolute time so a list reads at a glance."""
    if not stamp:
        return ""
    seconds = max(0, int((now or time.time()) - stamp))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


_LIST_COLUMNS = (("id", 12), ("title", 10), ("state", len("SUCCEEDED")), ("tasks", 5), ("created", 10), ("tags", 6))


def experiment_list(entries: list[Mapping[str, Any]], *, total: int) -> RenderableType:
    """The table of ``nemorun experiment list`` (entries newest first); notes how many were left out."""
    table = Table(title=f"experiments ({len(entries)} of {total})" if len(entries) < total else "experiments")
    # Every column keeps a readable minimum in an 80-column terminal or a pipe: long ids and titles fold onto more
    # lines, the date wraps at its spaces, and a state is never cut (SUCCEEDED is 9 wide).
    for column, least in _LIST_COLUMNS:
        table.add_column(column, overflow="fold", min_width=least, no_wrap=column == "state")
    now = time.time()
    for e in entries:
        created = e.get("created_at")
        table.add_row(
            cell(e["id"]),
            cell(e.get("title") or e.get("name") or ""),
            _state(e.get("state")),
            cell(e.get("tasks", "")),
            cell(f"{when(created)} ({ago(created, now)})" if created else "-"),
            Text(_names(e.get("tags") or [])),
        )
    if len(entries) < total:
        return Group(table, Text(f"{total - len(entries)} older experiments not shown; use --limit 0 for all",
                                 style="dim"))
    return table


def _progress(report: Mapping[str, Mapping[str, Any]], overall: str) -> RenderableType:
    states = [JobState(row["state"]) for row in report.values()]
    finished = sum(s.is_terminal for s in states)
    counts = ", ".join(f"{sum(s is st for s in states)} {st.value.lower()}"
                       for st in JobState if any(s is st for s in states))
    line = Table.grid(padding=(0, 1))
    line.add_row(ProgressBar(total=len(states) or 1, completed=finished, width=30),
                 Text(f"{finished}/{len(states)} ended"), _state(overall), Text(f"({counts})"))
    return line


def status_view(heading: str, report: Mapping[str, Mapping[str, Any]], overall: str) -> RenderableType:
    """The task table of one experiment (titled ``heading``) with a progress line above it."""
    table = Table(title=cell(heading))
    for column in ("task", "state", "executor", "job id", "depends on", "exit", "message"):
        table.add_column(column, overflow="fold")
    for name, row in report.items():
        exit_code = "-" if row.get("exit_code") is None else str(row["exit_code"])
        table.add_row(cell(name), _state(row["state"]), cell(row["executor"]), cell(row.get("job_id") or "-"),
                      Text(_names(row.get("dependencies") or []) or "-"), cell(exit_code),
                      cell(row.get("message") or ""))
    return Group(_progress(report, overall), table)


def _environment(env: Any) -> RenderableType:
    if not env or not isinstance(env, Mapping):
        return Text("environment: not recorded", style="dim")

    def part(key: str) -> Mapping[str, Any]:
        value = env.get(key)
        return value if isinstance(value, Mapping) else {}

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    python = part("python")
    grid.add_row("python", cell(f"{python.get('version', '?')} ({python.get('implementation', '?')}) "
                                f"{python.get('executable', '')}"))
    git = part("git")
    if git:
        dirty = Text(" dirty", style="yellow") if git.get("dirty") else Text(" clean", style="green")
        grid.add_row("git", cell(f"{printable(git.get('commit') or '?')[:12]} on {git.get('branch') or '?'}")
                     + dirty + Text(f" ({printable(git.get('root'))})", style="dim"))
    else:
        grid.add_row("git", Text("not a git work tree", style="dim"))
    user = f" (user {env['user']})" if env.get("user") else ""
    grid.add_row("host", cell(f"{env.get('host') or '?'}{user}"))
    platform = part("platform")
    if platform:
        grid.add_row("platform", cell(f"{platform.get('system', '')} {platform.get('release', '')} "
                                      f"{platform.get('machine', '')}".strip()))
    if env.get("script") or env.get("cwd"):
        grid.add_row("launched", cell(f"{env.get('script') or '-'} (cwd {env.get('cwd') or '-'})"))
    packages = env.get("packages")
    grid.add_row("packages", f"{len(packages) if isinstance(packages, Mapping) else 0} installed")
    return Panel(grid, title="environment", title_align="left")


def experiment_view(meta: Mapping[str, Any], report: Mapping[str, Mapping[str, Any]],
                    configs: Mapping[str, str]) -> RenderableType:
    """``nemorun experiment show``: metadata, environment, tasks and each task's stored ``task.yaml``."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_row("id", cell(meta["id"]))
    head.add_row("title", cell(meta.get("title") or ""))
    if meta.get("description"):
        head.add_row("description", cell(meta["description"]))
    head.add_row("tags", Text(_names(meta.get("tags") or []) or "-"))
    created = meta.get("created_at")
    head.add_row("created", f"{when(created)} ({ago(created)})" if created else "-")
    head.add_row("directory", cell(meta.get("dir") or "-"))
    parts: list[RenderableType] = [head, _environment(meta.get("environment"))]
    tasks = Table(title="tasks", title_justify="left")
    for column in ("task", "executor", "depends on", "state", "job id", "log"):
        tasks.add_column(column, overflow="fold")
    for name, row in report.items():
        tasks.add_row(cell(name), cell(row["executor"]), Text(_names(row.get("dependencies") or []) or "-"),
                      _state(row["state"]), cell(row.get("job_id") or "-"), cell(row.get("log") or "-"))
    parts.append(tasks)
    from rich.syntax import Syntax  # pygments: only this view needs it

    for name, text in configs.items():
        backend = report.get(name, {}).get("executor", "")
        body = Syntax(printable(text, lines=True).rstrip("\n") or "# (empty)", "yaml", theme="ansi_dark",
                      background_color="default")
        parts.append(Panel(body, title=cell(f"task {name} · {backend}"), title_align="left"))
    return Group(*parts)
