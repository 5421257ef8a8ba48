"""Docker container states -> JobState, and the status of a job made of several containers. Pure."""

from __future__ import annotations

import re
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


def container_status(native: str, exit_code: int | None, *, oom_killed: bool = False, error: str = "",
                     cancelled: bool = False, runner_error: str | None = None) -> JobStatus:
    """The status of one container.

    Args:
        native: the engine's state (``running``, ``exited``...).
        exit_code: the main process's exit status, when the container has ended.
        oom_killed: the engine's ``State.OOMKilled``.
        error: the engine's ``State.Error`` (why a container could not start or died).
        cancelled: nemorun cancelled the job (its cancel marker exists).
        runner_error: the error the runner recorded in ``status.json``, if any.
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
