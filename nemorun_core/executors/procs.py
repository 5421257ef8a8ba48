"""Processes of this machine by pid, told apart from a later process that reuses the pid: ``/proc/PID/stat``."""

from __future__ import annotations

import os


def proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time) of process ``pid``, or None when there is no such process.

    The start time is field 22 of ``/proc/PID/stat``, in clock ticks since boot: with the pid it names one process
    for good, so a record of both is never mistaken for a process that got the pid later. ``"Z"`` (zombie) and
    ``"X"`` (dead) are states of a process that has ended. The start time is ``""`` if the kernel did not give it.

    Raises:
        OSError: this system has no ``/proc`` (not Linux); callers fall back to a signal-0 probe.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after the command name, which may hold spaces and ")"
    if not fields:
        return None
    return fields[0], fields[19] if len(fields) > 19 else ""


def ended(state: str) -> bool:
    """Whether a process in ``state`` (from :func:`proc_stat`) has ended, even if not reaped yet."""
    return state in ("Z", "X")


def signal_probe(pid: int) -> bool:
    """Whether ``pid`` exists, by signal 0 (no pid-reuse protection: only where there is no ``/proc``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
