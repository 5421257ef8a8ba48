"""Tables for people: an experiment's tasks, the store's experiments."""

from __future__ import annotations

import datetime
from typing import Any

_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan", "PENDING": "blue",
          "UNKNOWN": "magenta"}


def state_text(state: str) -> str:
    return f"[{_STYLE.get(state, 'white')}]{state}[/]"


def print_status(exp: Any, report: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{exp.id or exp.name}" + (f" — {exp.title}" if exp.title and exp.title != exp.name else ""))
    for column in ("task", "state", "executor", "job id", "depends on", "message"):
        table.add_column(column, overflow="fold")
    for name, row in report.items():
        table.add_row(name, state_text(row["state"]), row["executor"], row["job_id"] or "-",
                      ", ".join(row["dependencies"]) or "-", row["message"] or "")
    Console().print(table)


def when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
