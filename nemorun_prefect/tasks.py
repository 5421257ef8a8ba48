"""Prefect tasks that run one nemorun task on any executor, through the ``nemorun_core`` job contract only.

    from prefect import flow
    import nemorun_core as run
    from nemorun_prefect import run_nemorun_task

    @flow
    def train_flow():
        return run_nemorun_task(run.Partial(train, lr=3e-4), run.LocalExecutor(), name="train")

``run_nemorun_task`` submits, streams the job's log lines into the Prefect run logger, waits and returns the task's
value. ``submit_nemorun_task`` / ``wait_nemorun_task`` / ``cancel_nemorun_task`` split that up around a
:class:`JobRef`, for flows that interleave other work. Each submission leaves a configuration artifact
(:mod:`nemorun_prefect.artifacts`).

Re-attach, never resubmit: the job key is ``prefect-<flow run id>/<name>/<attempt>``, the same for every retry of a
task run and for a restarted flow run, and the job directory is derived from it. Before submitting, ``executor.find``
is asked for those keys (:func:`nemorun_core.experiment.jobref.find_attempt`): a job that is pending, running or
succeeded is followed (a finished one is not run again); only after a failed or cancelled job does a retry submit the
next attempt. So within one flow run every call needs its own ``name`` (the default is the task function's name).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

from prefect import get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from nemorun_core.errors import ExperimentError
from nemorun_core.executors.base import Executor, JobState, follow_log
from nemorun_core.executors.files import read_json, write_atomic
from nemorun_core.experiment.experiment import job_failure
from nemorun_core.experiment.jobref import JobRef, attempt_dir, executor_config, find_attempt
from nemorun_core.experiment.results import read_result
from nemorun_core.experiment.store import check_name
from nemorun_core.home import default_home
from nemorun_core.experiment.tasks import TaskSpec, check_task, default_name, make_job, normalize_task
from nemorun_prefect import artifacts

# Seconds between status polls when the executor cannot be woken by the backend (its wait_any sleeps).
_POLL = 1.0
# Written into each job's directory (under $NEMORUN_HOME/prefect/<flow run>/<name>) at submission.
JOB_RECORD = "prefect_job.json"


def job_key(name: str, attempt: int = 0, *, run_id: Any = None) -> str:
    """``prefect-<flow run id>/<name>/<attempt>``: the same for every retry of the flow run, so a retry re-attaches.

    Outside a flow run (a task run alone, or a plain call) the task run id stands in; with neither, a fresh id: no
    re-attach is possible then.
    """
    return f"{_run_part(run_id)}/{name}/{int(attempt)}"


def _run_id() -> str:
    from prefect.runtime import flow_run, task_run

    return str(flow_run.id or task_run.id or uuid.uuid4().hex)


def _run_part(run_id: Any) -> str:
    return f"prefect-{_run_id() if run_id is None else run_id}"


def flow_run_dir(run_id: Any = None) -> str:
    """``$NEMORUN_HOME/prefect/prefect-<flow run id>``: the task directories (job files and records) of flow run
    ``run_id`` (default: the current one)."""
    return os.path.join(default_home(), "prefect", _run_part(run_id))


def _task_dir(key: str) -> str:
    run_part, name, _ = key.split("/")
    return os.path.join(default_home(), "prefect", run_part, name)


def job_dir_for(key: str) -> str:
    """Where the job's files live: ``$NEMORUN_HOME/prefect/<flow run>/<name>[/attempt-N]`` (same on every retry)."""
    return attempt_dir(_task_dir(key), key)


def record_job(key: str, ref: JobRef) -> None:
    """Write ``ref`` and the job key to ``$NEMORUN_HOME/prefect/<flow run>/<name>/prefect_job.json`` (``ref.handle``
    is ``{}`` before the submission; a later attempt replaces an earlier one's record), where
    :func:`nemorun_prefect.flows.cancel_flow_jobs` finds every job of a flow run. ``ref`` holds no secret (its
    executor config is redacted)."""
    write_atomic(os.path.join(_task_dir(key), JOB_RECORD),
                 json.dumps({"key": key, **dataclasses.asdict(ref)}, sort_keys=True))


def read_job_records(run_dir: str) -> dict[str, tuple[str, JobRef]]:
    """``{task name: (job key, JobRef)}`` for every job recorded under ``run_dir`` (``.../prefect/prefect-<id>``).

    A JobRef whose ``handle`` is ``{}`` was recorded just before its submission: the job may or may not exist. A record
    that cannot be read is left out with a warning (the others are still returned).
    """
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return {}
    records = {}
    for name in names:
        record = _read_record(os.path.join(run_dir, name, JOB_RECORD))
        if record is not None:
            records[record[1].name] = record
    return records


def _read_record(path: str) -> tuple[str, JobRef] | None:
    """``(job key, JobRef)`` from one record; None when there is none or it cannot be read (with a warning)."""
    try:
        data = read_json(path)
        if data:
            key = data.pop("key")
            return key, JobRef(**data)
    except (ValueError, KeyError, TypeError) as exc:
        logging.getLogger("nemorun_prefect").warning("unreadable job record %s: %s: %s", path,
                                                     type(exc).__name__, exc)
    return None


def recorded_job(name: str, run_id: Any = None) -> tuple[str, JobRef] | None:
    """The latest job recorded for task ``name`` of flow run ``run_id`` (default: the current one), as
    ``(job key, JobRef)``, or None when that task submitted nothing. Reads that task's record only."""
    return _read_record(os.path.join(flow_run_dir(run_id), name, JOB_RECORD))


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
    run_id = _run_id()
    logger = get_run_logger()
    attempt, handle, status = find_attempt(spec.executor, lambda n: job_key(name, n, run_id=run_id), job_dir_for)
    if handle is not None:
        logger.info("re-attaching to job %s (%s %s, %s), submitted before by this flow run", handle.key,
                    handle.backend, handle.job_id, status.state.value)
        ref = JobRef.create(spec, handle)
        record_job(handle.key, ref)
        return ref
    check_task(spec)
    key = job_key(name, attempt, run_id=run_id)
    job_dir = job_dir_for(key)
    if attempt:
        logger.warning("the earlier job of task %r in this flow run failed or was cancelled: submitting a fresh one "
                       "(attempt %d)", name, attempt)
    os.makedirs(job_dir, exist_ok=True)
    # Recorded before submitting, so a cancellation hook finds the job (by key) even if this process dies mid-submit.
    pending = JobRef(spec.name, spec.kind, {}, executor_config(spec.executor))
    record_job(key, pending)
    handle = spec.executor.submit(make_job(spec, key, job_dir))
    logger.info("submitted job %s (%s %s), files in %s", key, handle.backend, handle.job_id, handle.job_dir)
    ref = dataclasses.replace(pending, handle=handle.to_dict())
    record_job(key, ref)
    artifacts.task_submitted(spec, handle)  # only here: a re-attach (above) makes no second one
    return ref


def wait(ref: JobRef, *, poll: float = _POLL, stop: threading.Event | None = None,
         executor: Executor | None = None) -> Any:
    """Follow the job to its end, sending each new log line to the Prefect run logger; return the task's value.

    Args:
        ref: the job, as :func:`submit` returned it.
        poll: the longest wait between two status reads (executors that are woken by the backend return earlier).
        stop: set by the flow that runs this wait in a worker thread when it ends early (cancelled, killed): the
            wait then raises within ``poll`` seconds instead of holding the flow's process open until the job ends.
        executor: the executor the job was submitted with, when the caller has it (saves building it again from
            ``ref``, whose secrets are redacted); default: built from ``ref``.

    Raises:
        JobFailedError: the job ended FAILED or CANCELLED; names the job, its exit status and its log.
        ExperimentError: ``stop`` was set before the job ended (the job is left as it is).
    """
    logger = get_run_logger()
    spec = ref.spec(executor)
    executor, handle = spec.executor, spec.handle
    status, _ = follow_log(executor, handle, lambda line: logger.info("%s", line), poll=poll,
                           stop=stop.is_set if stop is not None else None)
    if not status.is_terminal:
        raise ExperimentError(
            f"stopped following job {handle.key} ({status.state.value}): its flow run is ending; the job is left "
            "to the flow's cancellation hook, or to a restart of the flow run, which re-attaches to it")
    if status.state is not JobState.SUCCEEDED:
        raise job_failure(spec, status)
    return read_result(spec)


def cancel(ref: JobRef, *, timeout: float = 60.0, executor: Executor | None = None) -> JobState:
    """Cancel the job and wait (up to ``timeout`` s) until it is terminal; return its state.

    Idempotent: a finished job keeps its state. ``executor``: as for :func:`wait`.
    """
    spec = ref.spec(executor)
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
    return wait(submit(task, executor, name=name), executor=executor)


# -- the Prefect tasks --------------------------------------------------------------------------------------------
# No Prefect cache: re-attaching goes through the job key, and the inputs (configs, executors) need not hash.
run_nemorun_task = prefect_task(run, name="run_nemorun_task", cache_policy=NO_CACHE)
submit_nemorun_task = prefect_task(submit, name="submit_nemorun_task", cache_policy=NO_CACHE)
wait_nemorun_task = prefect_task(wait, name="wait_nemorun_task", cache_policy=NO_CACHE)
cancel_nemorun_task = prefect_task(cancel, name="cancel_nemorun_task", cache_policy=NO_CACHE)

__all__ = ["JobRef", "cancel", "cancel_nemorun_task", "run", "run_nemorun_task", "submit", "submit_nemorun_task",
           "wait", "wait_nemorun_task", "flow_run_dir", "job_key", "job_dir_for", "record_job", "read_job_records",
           "recorded_job"]
