"""Docker container states -> JobState, and the status of a job made of several containers. Pure."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping, Sequence

from nemorun_core.executors.base import JobState, JobStatus
from nemorun_core.executors.base import describe_exit as _describe_exit

# One mapping for every container state the engine reports (``State.Status`` / the list's ``State``).
# "exited" is refined by the exit status (non-zero -> FAILED); "removing" says nothing about the outcome, which is
# then read from the job's files.
STATES: dict[str, JobState] = {
    "created": JobState.PENDING,
    "restarting": JobState.RUNNING,
    "running": JobState.RUNNING,
    "paused": JobState.RUNNING,
    "exited": JobState.SUCCEEDED,
    "dead": JobState.FAILED,
    "removing": JobState.UNKNOWN,
}

OOM_MESSAGE = "out of memory (OOM killed); raise the memory limit (extra_args={'mem_limit': ...}) or use less"
ENGINE_STOPPED = ("the container was stopped by the Docker engine (engine restart?): it ended by a signal when the "
                  "engine that runs now started or the one before it stopped, and the task did not finish; submit "
                  "it again")
# An engine stopping stops its containers (SIGTERM, then SIGKILL), so they end before it starts again. An engine that
# was killed instead stops the containers it finds still running when it starts again (the same TERM, grace, KILL):
# those end shortly after its start, with 143 (TERM), 137 (KILL) or 255 (the process was lost).
ENGINE_RESTORE_S = 30.0
_RESTORE_CODES = (137, 143, 255, -1)
_CLOCK_SLACK_S = 2.0
_EXITED = re.compile(r"^Exited \((-?\d+)\)")
# Worst first: the state a job of several containers reports.
_SEVERITY = (JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN, JobState.RUNNING, JobState.PENDING,
             JobState.SUCCEEDED)


def exit_code_of(summary: Mapping[str, Any]) -> int | None:
    """The exit status from a container list entry (``"Status": "Exited (137) 3 seconds ago"``) or inspect data."""
    state = summary.get("State")
    if isinstance(state, Mapping):
        code = state.get("ExitCode")
        return int(code) if code is not None else None
    m = _EXITED.match(str(summary.get("Status", "")))
    return int(m.group(1)) if m else None


def native_of(summary: Mapping[str, Any]) -> str:
    state = summary.get("State")
    if isinstance(state, Mapping):
        return str(state.get("Status", ""))
    return str(state or "")


def describe_exit(code: int) -> str:
    return _describe_exit(code, "command not found in the image; check DockerExecutor.python")


def killed_by_signal(exit_code: Any) -> bool:
    """128+N (the main process died of, or exited for, signal N) or 255/-1 (the engine lost the process)."""
    return isinstance(exit_code, int) and (128 < exit_code < 160 or exit_code in (255, -1))


def stopped_by_engine(exit_code: Any, finished_at: Any, engine_started_at: float | None) -> bool:
    """Whether a container that ended with ``exit_code`` at ``finished_at`` (the engine's RFC 3339 time) was ended
    by the engine's restart rather than by its task: it ended by a signal before the running engine started, or
    with a restore's code while that engine was restoring its containers."""
    if engine_started_at is None or not isinstance(finished_at, str) or not killed_by_signal(exit_code):
        return False
    finished = _parse_time(finished_at)
    if finished is None:
        return False
    window = ENGINE_RESTORE_S if exit_code in _RESTORE_CODES else _CLOCK_SLACK_S
    return finished <= engine_started_at + window


def _parse_time(text: str) -> float | None:
    """``2026-12-02T00:39:51.699638273Z`` -> epoch seconds (nanoseconds cut to what datetime holds)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if not m or text.startswith("0001-"):
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}").timestamp()


def container_status(native: str, exit_code: int | None, *, oom_killed: bool = False, error: str = "",
                     cancelled: bool = False, runner_error: str | None = None,
                     stopped_by_engine: bool = False) -> JobStatus:
    """The status of one container.

    Args:
        native: the engine's state (``running``, ``exited``...).
        exit_code: the main process's exit status, when the container has ended.
        oom_killed: the engine's ``State.OOMKilled``.
        error: the engine's ``State.Error`` (why a container could not start or died).
        cancelled: nemorun cancelled the job (its cancel marker exists).
        runner_error: the error the runner recorded in ``status.json``, if any.
        stopped_by_engine: the engine's stop or restart ended the container (see :func:`stopped_by_engine`).
    """
    state = STATES.get(native, JobState.UNKNOWN)
    if native == "dead":
        return JobStatus(JobState.FAILED, native, error or "the container is dead (the engine could not stop or "
                                                            "remove it cleanly)", exit_code)
    if native != "exited":
        if cancelled and state in (JobState.PENDING, JobState.RUNNING):
            return JobStatus(state, native, "cancelling", exit_code)
        return JobStatus(state, native, "", exit_code)
    if exit_code == 0:
        return JobStatus(JobState.SUCCEEDED, native, "", 0)
    if oom_killed:
        return JobStatus(JobState.FAILED, native, OOM_MESSAGE, exit_code)
    if cancelled:
        return JobStatus(JobState.CANCELLED, native, "cancelled", exit_code)
    if stopped_by_engine:
        return JobStatus(JobState.FAILED, native, f"{ENGINE_STOPPED} ({describe_exit(exit_code or 255)})",
                         exit_code)
    message = runner_error or error or describe_exit(exit_code if exit_code is not None else 1)
    return JobStatus(JobState.FAILED, native, message, exit_code)


def combine(parts: Sequence[JobStatus]) -> JobStatus:
    """A job of several containers is the worst of its parts; a failure names the first failed rank."""
    if not parts:
        return JobStatus(JobState.UNKNOWN, "", "no container")
    if len(parts) == 1:
        return parts[0]
    for state in _SEVERITY:
        for rank, part in enumerate(parts):
            if part.state is state:
                if state is JobState.FAILED:
                    codes = [p.exit_code for p in parts]
                    return JobStatus(part.state, part.native, f"rank {rank}: {part.message} (exit statuses by rank: "
                                                              f"{codes})", part.exit_code)
                return part
    return parts[0]
