"""``--help`` for an entrypoint: generated from the signature, the defaults and the Google-style docstring.

The help lists the function's summary, then each parameter with its type, default and the text of its entry in the
``Args:`` section; parameters that are configs (dataclasses) list their fields as ``model.hidden_size`` with the
text of the dataclass's ``Attributes:`` section. It is plain text when stdout is not a terminal (so it can be piped
and tested) and a rich table when it is.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Sequence

# (flags, metavar, help): the one list of options, shared by the parser's "did you mean" and by completion.
OPTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--factory", "-f"), "NAME|@FILE", "start from a registered factory for this task, or a YAML/TOML/JSON config file"),
    (("--yaml",), "FILE", "start from a config file (same as --factory @FILE)"),
    (("--executor",), "NAME", "run through an executor (local) instead of in this process"),
    (("--name", "-n"), "NAME", "the name of the run (default: the function's name)"),
    (("--detach",), "", "submit and return without waiting (with an executor)"),
    (("--direct", "--no-direct"), "", "run in this process even when an executor is configured"),
    (("--tail-logs", "--no-tail-logs"), "", "print the task's output while it runs on an executor"),
    (("--dryrun",), "", "print the resolved config and what would be submitted; run nothing"),
    (("--to-yaml",), "FILE|-", "write the resolved config as YAML and exit"),
    (("--to-toml",), "FILE|-", "write the resolved config as TOML and exit"),
    (("--to-json",), "FILE|-", "write the resolved config as JSON and exit"),
    (("--yes", "-y", "--no-confirm"), "", "do not ask for confirmation before launching"),
    (("--verbose", "-v"), "", "log what nemorun does (debug level)"),
    (("--lazy",), "", "accepted for NeMo Run scripts: overrides are always resolved just before the launch"),
    (("--completion",), "SHELL", "print a completion script for bash, zsh or fish"),
    (("--help", "-h"), "", "show this message and exit"),
)

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Attributes|Returns|Yields|Raises|Example|Examples|Note|Notes)"
                      r"\s*:\s*$")
_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


@dataclasses.dataclass
class Docstring:
    summary: str = ""
    description: str = ""
    params: dict[str, str] = dataclasses.field(default_factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """Summary, free description and the ``Args:``/``Attributes:`` entries of a Google-style docstring."""
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    out = Docstring()
    body: list[str] = []
    section = None
    entry: str | None = None
    entry_indent = 0
    for line in lines:
        m = _SECTION.match(line)
        if m:
            section, entry = m.group(1), None
            continue
        if section in ("Args", "Arguments", "Parameters", "Attributes"):
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if not stripped:
                continue
            e = _ENTRY.match(stripped)
            if e and (entry is None or indent <= entry_indent):
                entry, entry_indent = e.group(1).lstrip("*"), indent
                out.params[entry] = e.group(3).strip()
            elif entry is not None and indent > entry_indent:
                out.params[entry] = (out.params[entry] + " " + stripped).strip()
            elif indent == 0:
                section, entry = None, None
                body.append(line)
        elif section is None:
            body.append(line)
    text = "\n".join(body).strip()
    summary, _, rest = text.partition("\n\n")
    out.summary = " ".join(summary.split())
    out.description = rest.strip()
    return out


@dataclasses.dataclass
class Row:
    path: str
    type: str
    default: str
    help: str
    depth: int


def _show(value: Any) -> str:
    from nemorun_core.config.buildable import is_buildable, target_name

    if is_buildable(value):
        return f"{target_name(value.__fn_or_cls__)}(...)"
    if value is inspect.Parameter.empty:
        return "required"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def rows(fn: Any, cfg: Any, *, max_depth: int = 3) -> list[Row]:
    """The parameter table: top-level parameters, with the fields of config-valued ones below them."""
    out: list[Row] = []
    _rows(fn, cfg, "", 0, max_depth, out, parse_docstring(inspect.getdoc(fn)).params)
    return out


def _rows(target: Any, cfg: Any, prefix: str, depth: int, max_depth: int, out: list[Row], docs: dict[str, str]) -> None:
    from nemorun_core.cli.overrides import MISSING, dataclass_of, parameters
    from nemorun_core.config import typecheck
    from nemorun_core.config.buildable import is_buildable

    args = cfg.__arguments__ if is_buildable(cfg) else {}
    for name, (annotation, default) in parameters(target).items():
        value = args.get(name, default)
        path = f"{prefix}{name}"
        type_text = typecheck.type_name(annotation) if annotation is not None else ""
        out.append(Row(path, type_text, _show(value), docs.get(name, ""), depth))
        if depth + 1 >= max_depth:
            continue
        child_target = None
        if is_buildable(value) and inspect.isclass(value.__fn_or_cls__):
            child_target = value.__fn_or_cls__
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            child_target = type(value)
        elif value is MISSING or value is None:
            child_target = dataclass_of(annotation)
        if child_target is not None:
            child_docs = parse_docstring(child_target.__doc__).params
            child_cfg = value if is_buildable(value) else None
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                from nemorun_core.cli.factories import to_config

                child_cfg = to_config(value)
            _rows(child_target, child_cfg, f"{path}.", depth + 1, max_depth, out, child_docs)


def render_plain(prog: str, fn: Any, cfg: Any, *, factories: Sequence[str] = (), task_factories: Sequence[str] = (),
                 help_text: str | None = None, options: Sequence[tuple[tuple[str, ...], str, str]] = OPTIONS) -> str:
    doc = parse_docstring(inspect.getdoc(fn))
    lines = [f"usage: {prog} [OPTIONS] [PATH=VALUE ...]", ""]
    summary = help_text or doc.summary
    if summary:
        lines += [summary, ""]
    if doc.description and not help_text:
        lines += [doc.description, ""]
    table = rows(fn, cfg)
    if table:
        lines.append("Arguments (set with PATH=VALUE; PATH+=, -=, *=, /= change the current value):")
        width = min(max(len("  " * r.depth + r.path) for r in table) + 2, 36)
        twidth = min(max(len(r.type) for r in table) + 2, 24)
        for r in table:
            name = "  " + "  " * r.depth + r.path
            text = f"{name:<{width + 2}} {r.type:<{twidth}} {'default: ' + r.default if r.default != 'required' else 'required'}"
            lines.append(text.rstrip())
            if r.help:
                lines.append(" " * (width + 3) + r.help)
        lines.append("")
    if factories:
        lines += ["Factories (PATH=name or PATH=name(key=value)):", *(f"  {f}" for f in factories), ""]
    if task_factories:
        lines += ["Task factories (--factory NAME):", *(f"  {f}" for f in task_factories), ""]
    lines.append("Options:")
    for flags, metavar, text in options:
        spec = ", ".join(flags) + (f" {metavar}" if metavar else "")
        lines.append(f"  {spec:<28} {text}")
    return "\n".join(lines) + "\n"


def print_help(prog: str, fn: Any, cfg: Any, *, tty: bool, **kwargs: Any) -> None:
    """Print the help: a rich table on a terminal, the plain text otherwise."""
    if not tty:
        print(render_plain(prog, fn, cfg, **kwargs), end="")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    doc = parse_docstring(inspect.getdoc(fn))
    console.print(f"[bold]usage:[/bold] {prog} [OPTIONS] [PATH=VALUE ...]\n")
    summary = kwargs.get("help_text") or doc.summary
    if summary:
        console.print(summary + "\n")
    table = Table(title="Arguments", title_justify="left", show_lines=False)
    # Paths and types are what the user types next: never truncate them; the help text wraps instead.
    table.add_column("path", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("default", overflow="fold")
    table.add_column("help", ratio=1)
    for r in rows(fn, cfg):
        table.add_row("  " * r.depth + r.path, r.type, r.default, r.help)
    console.print(table)
    for title, names in (("Factories", kwargs.get("factories") or ()), ("Task factories", kwargs.get("task_factories") or ())):
        if names:
            console.print(f"[bold]{title}:[/bold] " + ", ".join(names))
    opts = Table(title="Options", title_justify="left", show_header=False, box=None)
    for flags, metavar, text in kwargs.get("options", OPTIONS):
        opts.add_row(", ".join(flags) + (f" {metavar}" if metavar else ""), text)
    console.print(opts)
