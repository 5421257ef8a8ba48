"""Ray job states (``ray.job_submission.JobStatus`` values) mapped to nemorun's, in one pure table."""

from __future__ import annotations

from nemorun_core.executors.base import JobState

#: Ray's job status -> nemorun's. ``STOPPED`` is what ``stop_job`` leaves ("Job was intentionally stopped.").
STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}


def state_of(native: str) -> JobState:
    """nemorun's state for Ray's ``native`` status (``UNKNOWN`` for a status this table does not know)."""
    return STATES.get(str(native).rsplit(".", 1)[-1].upper(), JobState.UNKNOWN)
