"""Tables for people: an experiment's tasks, the store's experiments."""

from __future__ import annotations

import datetime
import re
from typing import Any

_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan", "PENDING": "blue",
          "UNKNOWN": "magenta"}


# C0 and C1 controls, DEL, and the invisible bidirectional and line-separator marks that reorder or split text.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNPRINTABLE_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                                    "\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, *, lines: bool = False) -> str:
    """``value`` as text with every control character shown escaped (``ESC`` as ``\\x1b``), never sent raw.

    Args:
        lines: keep newlines and tabs (for multi-line text such as a stored ``task.yaml``).
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return (_UNPRINTABLE_BUT_LINES if lines else _UNPRINTABLE).sub(_escaped, text)


def state_text(state: str) -> str:
    return f"[{_STYLE.get(state, 'white')}]{state}[/]"


def print_status(exp: Any, report: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from rich.text import Text

    title = printable(exp.id or exp.name) + (f" — {printable(exp.title)}" if exp.title and exp.title != exp.name else "")
    table = Table(title=Text(title))
    for column in ("task", "state", "executor", "job id", "depends on", "message"):
        table.add_column(column, overflow="fold")
    for name, row in report.items():
        # Stored strings are shown escaped and never read as rich markup; only the state gets its colour.
        cells = [name, row["executor"], row["job_id"] or "-", ", ".join(row["dependencies"]) or "-",
                 row["message"] or ""]
        name_t, executor_t, job_t, deps_t, message_t = (Text(printable(c)) for c in cells)
        state = printable(row["state"])
        table.add_row(name_t, Text(state, style=_STYLE.get(state, "white")), executor_t, job_t, deps_t, message_t)
    Console().print(table)


def when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
