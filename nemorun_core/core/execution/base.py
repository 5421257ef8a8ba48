"""``nemo_run.core.execution.base``: the executor contract (:mod:`nemorun_core.executors.base`)."""

from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus

__all__ = ["Executor", "JobHandle", "JobState", "JobStatus"]
