"""Prefect tasks that run one nemorun task on any executor, through the ``nemorun_core`` job contract only.

    from prefect import flow
    import nemorun_core as run
    from nemorun_prefect import run_nemorun_task

    @flow
    def train_flow():
        return run_nemorun_task(run.Partial(train, lr=3e-4), run.LocalExecutor(), name="train")

``run_nemorun_task`` submits, streams the job's log lines into the Prefect run logger, waits and returns the task's
value. ``submit_nemorun_task`` / ``wait_nemorun_task`` / ``cancel_nemorun_task`` split that up around a
:class:`JobRef`, for flows that interleave other work.

Re-attach, never resubmit: the job key is ``prefect-<flow run id>/<name>/0``, the same for every retry of a task run
and for a restarted flow run, and the job directory is derived from it. Before submitting, ``executor.find`` is asked
for that key; a job already there is followed (a finished one is not run again). So within one flow run every call
needs its own ``name`` (the default is the task function's name).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from typing import Any

from prefect import get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from nemorun_core.config import serialize
from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus
from nemorun_core.experiment.experiment import job_failure
from nemorun_core.experiment.results import read_result
from nemorun_core.experiment.store import check_name, default_home
from nemorun_core.experiment.tasks import TaskSpec, check_task, default_name, make_job, normalize_task
from nemorun_core.secrets import redact, restore

# Seconds between status polls when the executor cannot be woken by the backend (its wait_any sleeps).
_POLL = 1.0


@dataclasses.dataclass(frozen=True)
class JobRef:
    """A submitted job, as plain data: safe to keep in a Prefect result (secrets are redacted).

    Attributes:
        name: the task's name (used in messages and file names).
        kind: ``"config"``, ``"partial"`` or ``"script"``: whether the job leaves a return value.
        handle: the job's handle, as :meth:`JobHandle.to_dict` gives it.
        executor: the executor's serialized config, secrets replaced by ``"<redacted>"``; redacted environment values
            come back from the reading process's environment when it has them.
    """

    name: str
    kind: str
    handle: dict[str, Any]
    executor: dict[str, Any]

    @classmethod
    def create(cls, spec: TaskSpec, handle: JobHandle) -> "JobRef":
        return cls(spec.name, spec.kind, handle.to_dict(), redact(serialize.encode(spec.executor, payload=True)))

    def job_handle(self) -> JobHandle:
        return JobHandle.from_dict(self.handle)

    def load_executor(self) -> Executor:
        return serialize.decode(restore(self.executor), build=True)

    def spec(self) -> TaskSpec:
        """A TaskSpec that is enough to read status, logs and the result (not to resubmit: the task is absent)."""
        return _ResultSpec(self.name, None, self.load_executor(), [], handle=self.job_handle(), kind_=self.kind)


@dataclasses.dataclass
class _ResultSpec(TaskSpec):
    kind_: str = "partial"

    @property
    def kind(self) -> str:
        return self.kind_


def job_key(name: str) -> str:
    """``prefect-<flow run id>/<name>/0``: the same for every retry of the flow run, so a retry re-attaches.

    Outside a flow run (a task run alone, or a plain call) the task run id stands in; with neither, a fresh id: no
    re-attach is possible then.
    """
    from prefect.runtime import flow_run, task_run

    run_id = flow_run.id or task_run.id or uuid.uuid4().hex
    return f"prefect-{run_id}/{name}/0"


def job_dir_for(key: str) -> str:
    """Where the job's files live: ``$NEMORUN_HOME/prefect/<flow run>/<name>`` (same on every retry)."""
    run_part, name, _ = key.split("/")
    return os.path.join(default_home(), "prefect", run_part, name)


def submit(task: Any, executor: Executor | None = None, *, name: str | None = None) -> JobRef:
    """Submit ``task`` on ``executor`` (default ``LocalExecutor()``), or find the job this flow run already submitted.

    Blocks only until the backend accepted the job. Idempotent per flow run and ``name``.

    Raises:
        ConfigError: the task failed validation (nothing submitted).
        SubmissionError: the backend refused the job.
    """
    from nemorun_core.executors.local import LocalExecutor

    normalized = normalize_task(task, {})
    name = check_name(name or default_name(normalized), "task name")
    spec = TaskSpec(name, normalized, (executor or LocalExecutor()).clone(), [])
    key = job_key(name)
    job_dir = job_dir_for(key)
    logger = get_run_logger()
    handle = spec.executor.find(key, job_dir)
    if handle is not None:
        logger.info("re-attaching to job %s (%s %s), submitted before by this flow run", key, handle.backend,
                    handle.job_id)
        return JobRef.create(spec, handle)
    check_task(spec)
    os.makedirs(job_dir, exist_ok=True)
    handle = spec.executor.submit(make_job(spec, key, job_dir))
    logger.info("submitted job %s (%s %s), files in %s", key, handle.backend, handle.job_id, handle.job_dir)
    return JobRef.create(spec, handle)


def wait(ref: JobRef, *, poll: float = _POLL) -> Any:
    """Follow the job to its end, sending each new log line to the Prefect run logger; return the task's value.

    Raises:
        JobFailedError: the job ended FAILED or CANCELLED; names the job, its exit status and its log.
    """
    logger = get_run_logger()
    spec = ref.spec()
    executor, handle = spec.executor, spec.handle
    offset = 0
    while True:
        status = executor.status(handle)
        # Drain after reading the status: a terminal job's log is complete, so nothing is lost at the end.
        for line in executor.logs(handle, offset=offset):
            logger.info("%s", line)
            offset += 1
        if status.is_terminal:
            break
        executor.wait_any([handle], poll)
    if status.state is not JobState.SUCCEEDED:
        raise job_failure(spec, status)
    return read_result(spec)


def cancel(ref: JobRef, *, timeout: float = 60.0) -> JobState:
    """Cancel the job and wait (up to ``timeout`` s) until it is terminal; return its state.

    Idempotent: a finished job keeps its state.
    """
    spec = ref.spec()
    spec.executor.cancel(spec.handle)
    deadline = time.monotonic() + timeout
    status = spec.executor.status(spec.handle)
    while not status.is_terminal and time.monotonic() < deadline:
        spec.executor.wait_any([spec.handle], 0.2)
        status = spec.executor.status(spec.handle)
    get_run_logger().info("job %s: %s", spec.handle.key, status.state.value)
    return status.state


def run(task: Any, executor: Executor | None = None, *, name: str | None = None) -> Any:
    """Submit (or re-attach to) the job, stream its logs, wait and return the task's value."""
    return wait(submit(task, executor, name=name))


# -- the Prefect tasks --------------------------------------------------------------------------------------------
# No Prefect cache: re-attaching goes through the job key, and the inputs (configs, executors) need not hash.
run_nemorun_task = prefect_task(run, name="run_nemorun_task", cache_policy=NO_CACHE)
submit_nemorun_task = prefect_task(submit, name="submit_nemorun_task", cache_policy=NO_CACHE)
wait_nemorun_task = prefect_task(wait, name="wait_nemorun_task", cache_policy=NO_CACHE)
cancel_nemorun_task = prefect_task(cancel, name="cancel_nemorun_task", cache_policy=NO_CACHE)

__all__ = ["JobRef", "cancel", "cancel_nemorun_task", "run", "run_nemorun_task", "submit", "submit_nemorun_task",
           "wait", "wait_nemorun_task", "job_key", "job_dir_for"]
