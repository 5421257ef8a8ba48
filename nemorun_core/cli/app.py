"""The ``nemorun`` console script: list, inspect, follow, cancel and re-run the experiments in the store.

    nemorun experiment list [--title T] [--tag X] [--limit N] [--json]
    nemorun experiment show ID [--json]
    nemorun experiment status ID [--watch] [--json]
    nemorun experiment logs ID [TASK] [-f] [-n N]
    nemorun experiment cancel ID [TASK | --all]
    nemorun experiment rerun ID [--detach] [--yes]
    nemorun experiment resume ID [--detach] [--tail-logs]
    nemorun version

Wherever an ID is expected, an experiment title works too (the latest experiment with that title is used,
and the command says so). ``--home DIR`` picks the store (default ``$NEMORUN_HOME``, else ``~/.nemorun``).

Exit status: 0 on success; 1 when something failed (a task of a finished experiment did not succeed, a backend
call failed); 2 for usage errors (an unknown experiment or task, conflicting arguments). Errors are one line
on stderr; ``NEMORUN_DEBUG=1`` shows the traceback instead.

typer and rich are imported here only: this module is loaded by the console script, never by
``import nemorun_core``.
"""

import json
import os
import sys
import time
from typing import Annotated, Any, List, Optional

import typer

from nemorun_core._version import __version__
from nemorun_core.cli.app_lookup import UsageProblem, load, overall_state, pick_task, resolve_id, sync_index
from nemorun_core.errors import NemorunError
from nemorun_core.executors.base import JobState
from nemorun_core.experiment.driver import INTERRUPTED, mark_interrupted
from nemorun_core.experiment.store import Store

# After `cancel`, how long to wait for the tasks to end before reporting (cancel itself never blocks).
_CANCEL_SETTLE_S = 5.0
_DEFAULT_TABLE_LIMIT = 50

app = typer.Typer(
    name="nemorun",
    help="Manage the experiments in the nemorun store: list, show, status, logs, cancel, rerun, resume.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstring paragraphs are re-wrapped, not broken at the source's line ends
    pretty_exceptions_enable=False,  # main() prints one line per error; NEMORUN_DEBUG=1 shows the traceback
    context_settings={"help_option_names": ["-h", "--help"]},
)
experiment_app = typer.Typer(help="Inspect and control experiments in the store.", no_args_is_help=True,
                             rich_markup_mode="markdown")
app.add_typer(experiment_app, name="experiment")


def _complete_ref(incomplete: str) -> List[str]:
    """Shell completion of experiment ids and titles (from the index: one file read)."""
    try:
        entries = Store(os.environ.get("NEMORUN_HOME") or None).list()
    except (OSError, NemorunError):  # completion never fails loudly: a broken store just completes nothing
        return []
    titles = sorted({str(e["title"]) for e in entries if e.get("title")})
    found = [e["id"] for e in reversed(entries)] + titles
    return [v for v in dict.fromkeys(found) if v.startswith(incomplete)]


RefArg = Annotated[str, typer.Argument(metavar="ID", help="experiment id, or title (the latest with it)",
                                       autocompletion=_complete_ref)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of a table")]


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[Optional[str], typer.Option(
        "--home", metavar="DIR", help="the experiment store",
        show_default="$NEMORUN_HOME or ~/.nemorun")] = None,
) -> None:
    ctx.obj = Store(home)


def _store(ctx: typer.Context) -> Store:
    return ctx.find_root().obj


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _note(message: str) -> None:
    print(f"nemorun: {message}", file=sys.stderr, flush=True)


def _open(ctx: typer.Context, ref: str) -> Any:
    store = _store(ctx)
    exp_id, note = resolve_id(store, ref)
    if note:
        _note(note)
    return load(store, exp_id)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _iso(stamp: Optional[float]) -> Optional[str]:
    """ISO-8601 local time for ``--json`` output, beside the raw epoch seconds."""
    if not stamp:
        return None
    import datetime

    return datetime.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def _report(exp: Any) -> tuple[dict, str]:
    """Fresh task statuses and the experiment's overall state; records a finished outcome in the index.

    The state is INTERRUPTED (not RUNNING) when the experiment's launcher is gone with tasks never submitted:
    nothing will submit them until `nemorun experiment resume ID`.
    """
    report = exp.status(quiet=True)
    overall = overall_state(row["state"] for row in report.values())
    sync_index(exp, overall)
    if not JobState(overall).is_terminal and exp.interruption():
        overall = INTERRUPTED
    return report, overall


def _stopped(overall: str) -> bool:
    """Whether nothing more will happen without the user: every task ended, or the experiment is INTERRUPTED."""
    return overall == INTERRUPTED or JobState(overall).is_terminal


def _heading(exp: Any) -> str:
    return exp.id + (f" — {exp.title}" if exp.title and exp.title != exp.name else "")


def _exit_for(overall: str) -> None:
    """Exit 1 when the experiment has stopped (ended or INTERRUPTED) and not everything succeeded; a running one is
    not a failure."""
    if _stopped(overall) and overall != JobState.SUCCEEDED.value:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the nemorun version."""
    print(f"nemorun {__version__}")


@experiment_app.command("list")
def list_experiments(
    ctx: typer.Context,
    title: Annotated[Optional[str], typer.Option(
        "--title", help="only experiments whose title or name contains this (case-insensitive)")] = None,
    tag: Annotated[Optional[List[str]], typer.Option(
        "--tag", help="only experiments with this tag; repeat to require several")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=0, help="show the N most recent (0: all)",
        show_default=f"{_DEFAULT_TABLE_LIMIT}; all with --json")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List experiments, newest first, from the store's index (one file read, however many there are)."""
    store = _store(ctx)
    entries = mark_interrupted(store, store.list())
    if title:
        needle = title.lower()
        entries = [e for e in entries
                   if needle in f"{e.get('title') or ''}\n{e.get('name') or ''}".lower()]
    if tag:
        wanted = set(tag)
        entries = [e for e in entries if wanted <= set(e.get("tags") or [])]
    entries.reverse()
    total = len(entries)
    count = limit if limit is not None else (0 if as_json else _DEFAULT_TABLE_LIMIT)
    shown = entries[:count] if count else entries
    if as_json:
        _print_json([{**e, "created": _iso(e.get("created_at")), "finished": _iso(e.get("finished_at"))}
                     for e in shown])
        return
    if not shown:
        _note(f"no experiments{' match' if total or title or tag else ''} in {store.root}")
        return
    from nemorun_core.cli.app_views import experiment_list

    _console().print(experiment_list(shown, total=total))


@experiment_app.command()
def show(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Show an experiment: metadata, environment, tasks and their configurations."""
    from nemorun_core.cli.app_views import experiment_view

    exp = _open(ctx, ref)
    report, overall = _report(exp)
    meta = exp.metadata()
    configs, executors = {}, {}
    for name in exp.tasks:
        task_dir = exp.store.task_dir(exp.dir, name)
        configs[name] = _read_text(os.path.join(task_dir, "task.yaml"))
        executors[name] = _read_text(os.path.join(task_dir, "executor.yaml"))
    if as_json:
        meta["state"] = overall
        meta["created"] = _iso(meta.get("created_at"))
        meta["tasks"] = {name: {**meta["tasks"].get(name, {}), **row, "config_yaml": configs[name],
                                "executor_yaml": executors[name]} for name, row in report.items()}
        _print_json(meta)
        return
    _console().print(experiment_view(meta, report, configs))


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


@experiment_app.command()
def status(
    ctx: typer.Context,
    ref: RefArg,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh until every task has ended")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between refreshes")] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Show the state of each task.

    Exit status: 1 if the experiment has ended and a task failed or was cancelled, or it is INTERRUPTED (its
    launcher is gone with tasks never submitted: `nemorun experiment resume ID`), else 0 (a running experiment
    is not a failure). With --watch the command returns once every task has ended (or the experiment is
    INTERRUPTED), so its exit status is the experiment's outcome.
    """
    exp = _open(ctx, ref)
    report, overall = _report(exp)
    if watch and not _stopped(overall):
        try:
            report, overall = _watch(exp, report, overall, interval, live=not as_json)
        except KeyboardInterrupt:
            _note("stopped watching; the tasks keep running")
            raise typer.Exit(130)
        if as_json:
            _print_json({"id": exp.id, "title": exp.title, "state": overall, "tasks": report})
    elif as_json:
        _print_json({"id": exp.id, "title": exp.title, "state": overall, "tasks": report})
    else:
        from nemorun_core.cli.app_views import status_view

        _console().print(status_view(_heading(exp), report, overall))
    if overall == INTERRUPTED:
        _note(f"{exp.id} is {INTERRUPTED}: {exp.interruption()}")
    _exit_for(overall)


def _watch(exp: Any, report: dict, overall: str, interval: float, *, live: bool) -> tuple[dict, str]:
    """Refresh until every task is terminal; redraw the table in place when ``live``."""
    if not live:
        while not _stopped(overall):
            time.sleep(interval)
            report, overall = _report(exp)
        return report, overall
    from rich.live import Live

    from nemorun_core.cli.app_views import status_view

    with Live(status_view(_heading(exp), report, overall), console=_console(), auto_refresh=False) as display:
        while not _stopped(overall):
            time.sleep(interval)
            report, overall = _report(exp)
            display.update(status_view(_heading(exp), report, overall), refresh=True)
    return report, overall


@experiment_app.command()
def logs(
    ctx: typer.Context,
    ref: RefArg,
    task: Annotated[Optional[str], typer.Argument(
        metavar="TASK", help="task name (optional when the experiment has one task)")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="keep printing new lines until the task ends")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", min=0, help="only the last N lines")] = None,
) -> None:
    """Print a task's log.

    With -f, an unreachable backend (a cut SSH session) is retried for up to $NEMORUN_OUTAGE_TIMEOUT seconds
    (default 300), continuing after the last line printed.
    """
    exp = _open(ctx, ref)
    name = pick_task(exp, task, verb="show the log of")
    try:
        if not follow:
            if tail != 0:
                text = exp.logs(name, tail=tail)
                if text:
                    print(text)
        else:
            exp.logs(name, follow=True, tail=tail)  # the last `tail` lines, then each new one, none twice
    except KeyboardInterrupt:
        raise typer.Exit(130)


@experiment_app.command()
def cancel(
    ctx: typer.Context,
    ref: RefArg,
    task: Annotated[Optional[str], typer.Argument(metavar="TASK", help="the task to cancel")] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="cancel every unfinished task")] = False,
) -> None:
    """Cancel one task, or all of them. Cancelling what has already ended does nothing."""
    exp = _open(ctx, ref)
    if task is not None and all_tasks:
        raise UsageProblem("give either a TASK or --all, not both")
    if task is not None or not all_tasks:
        # Without --all a many-task experiment needs a task name; a one-task experiment does not.
        name = pick_task(exp, task, verb="cancel (or pass --all)")
        targets = [name]
        everything = len(exp.tasks) == 1
    else:
        targets, everything = exp.tasks, True
    before = exp.refresh()
    live = [n for n in targets if not before[n].is_terminal]
    exp.cancel(None if everything else targets[0])
    if not live:
        ended = ", ".join(f"{n} {before[n].state.value}" for n in targets)
        print(f"nothing to cancel in {exp.id}: already ended ({ended})")
        return
    after = exp.wait(timeout=_CANCEL_SETTLE_S)
    for n in live:
        now = after[n].state.value
        if after[n].is_terminal:
            print(f"cancelled {exp.id} {n}: {before[n].state.value} -> {now}")
        else:
            print(f"cancel requested for {exp.id} {n}: still {now} after {_CANCEL_SETTLE_S:g}s; "
                  f"check with `nemorun experiment status {exp.id}`")
    sync_index(exp, overall_state(s.state.value for s in after.values()))


@experiment_app.command()
def rerun(
    ctx: typer.Context,
    ref: RefArg,
    detach: Annotated[bool, typer.Option("--detach", help="return once launched; do not wait")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Run an experiment's tasks again, with the same configurations and executors, as a new experiment.

    Prints the new experiment's id on stdout (progress goes to stderr). Waits for the tasks unless --detach;
    then exits 1 if a task did not succeed. Asks for confirmation only when stdin is a terminal and --yes is
    not given; never prompts when stdin is not a terminal.
    """
    exp = _open(ctx, ref)
    if not yes and sys.stdin is not None and sys.stdin.isatty():
        typer.confirm(f"Run the {len(exp.tasks)} task(s) of {exp.id} again as a new experiment?", abort=True)
    fresh = exp.rerun(detach=detach)
    if detach:
        _note(f"launched {fresh.id}; follow it with `nemorun experiment status {fresh.id} --watch`")
        print(fresh.id)
        return
    report, overall = _report(fresh)
    from nemorun_core.cli.app_views import status_view

    _console(stderr=True).print(status_view(_heading(fresh), report, overall))
    print(fresh.id)
    _exit_for(overall)


@experiment_app.command()
def resume(
    ctx: typer.Context,
    ref: RefArg,
    detach: Annotated[bool, typer.Option("--detach", help="return once launched; do not wait")] = False,
    tail_logs: Annotated[bool, typer.Option("--tail-logs", help="print the tasks' log lines as they come")] = False,
) -> None:
    """Carry on with an experiment whose launcher died: re-attach to what runs, keep what succeeded, submit only
    the tasks that never started.

    Refused while the experiment's launcher (or detached driver) is still alive, and for an experiment that has
    already ended. Waits for the tasks unless --detach; then exits 1 if a task did not succeed.
    """
    exp = _open(ctx, ref)
    exp.resume(detach=detach, tail_logs=tail_logs)
    if detach:
        _note(f"resumed {exp.id}; follow it with `nemorun experiment status {exp.id} --watch`")
        return
    report, overall = _report(exp)
    from nemorun_core.cli.app_views import status_view

    _console(stderr=True).print(status_view(_heading(exp), report, overall))
    _exit_for(overall)


def _debug() -> bool:
    return os.environ.get("NEMORUN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def main(argv: Optional[List[str]] = None) -> None:
    """The console script: run the command, turn errors into one line on stderr and an exit status."""
    try:
        app(args=argv, prog_name="nemorun")
    except UsageProblem as exc:
        if _debug():
            raise
        print(f"nemorun: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except NemorunError as exc:
        if _debug():
            raise
        print(f"nemorun: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # a bug, not a user error: say so, and how to see more
        if _debug():
            raise
        print(f"nemorun: internal error: {type(exc).__name__}: {exc} (set NEMORUN_DEBUG=1 for the traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
