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

As Prefect users expect: task runs are named after the job (``train``, ``submit-train``, ``wait-train``,
``cancel-train``); a failed job makes the task run Failed, a cancelled job (or a flow run that ends while the task
run follows its job) makes it Cancelled (:func:`cancelled_state`); the job's log lines are streamed once, those that
look like error output at WARNING (:class:`nemorun_core.orchestration.ErrorLines`), and the error does not repeat
them; the job's log link and the metrics it logged are artifacts too.

Re-attach, never resubmit: the job key is ``prefect-<flow run id>/<name>/<attempt>``, the same for every retry of a
task run and for a restarted flow run, and the job directory is derived from it
(``$NEMORUN_HOME/prefect/<scope>/<name>[/attempt-N]``, :func:`nemorun_core.orchestration.job_dir`). Submitting goes
through :func:`nemorun_core.orchestration.attach_or_submit`: a job that is pending, running or succeeded is followed
(a finished one is not run again); only after a failed or cancelled job does a retry submit the next attempt. So
within one flow run every call needs its own ``name`` (the default is the task function's name). Executors that
cannot find a job by its key are refused (a retry could launch a second job).

Job records. Before a job is submitted, and again once it has its handle, it is recorded twice: in
``$NEMORUN_HOME/prefect/<scope>/<name>/prefect_job.json`` and in Prefect itself, as an artifact of type
``nemorun-job`` keyed ``nemorun-job-<flow run id>-<name>-<hash>`` (its latest version is the current record). The
record holds the key, the job directory and a :class:`JobRef` (executor config with secrets redacted), so
:func:`nemorun_prefect.flows.cancel_flow_jobs` finds the jobs of a flow run from any process that reaches the
Prefect API, whatever its ``$NEMORUN_HOME``. The record artifacts are not linked to the flow run (so its artifact
list shows only the artifacts meant for people); they are found by key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import threading
import uuid
from typing import Any, Callable, NamedTuple

from prefect import Task, get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from nemorun_core.errors import ExperimentError, JobFailedError
from nemorun_core.executors.base import Executor, JobHandle, JobState, follow_log
from nemorun_core.executors.files import read_json, write_atomic
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.experiment.jobref import JobRef, executor_config
from nemorun_core.experiment.results import read_result
from nemorun_core.experiment.store import check_name
from nemorun_core.experiment.tasks import TaskSpec, default_name, normalize_task
from nemorun_core.home import default_home
from nemorun_core import orchestration
from nemorun_prefect import artifacts

# Seconds between status polls when the executor cannot be woken by the backend (its wait_any sleeps).
_POLL = 1.0
# Written into each task's directory (under $NEMORUN_HOME/prefect/<flow run>/<name>) at submission.
JOB_RECORD = "prefect_job.json"
#: The orchestrator's name in job directories: ``$NEMORUN_HOME/prefect/...``.
ORCHESTRATOR = "prefect"
#: Type of the Prefect artifacts that hold job records.
RECORD_TYPE = "nemorun-job"

_log = logging.getLogger("nemorun_prefect")


class FlowRunEnding(ExperimentError):
    """A task run stopped following its job because its flow run is ending (cancelled, crashed, killed); the job is
    left to the flow's cancellation hook. The Prefect tasks end Cancelled on it."""


class JobRecord(NamedTuple):
    """One recorded job of a flow run: its task name, key, job directory and :class:`JobRef` (``ref.handle`` is
    ``{}`` when it was recorded just before its submission: the job may or may not exist)."""

    name: str
    key: str
    job_dir: str
    ref: JobRef


def job_key(name: str, attempt: int = 0, *, run_id: Any = None) -> str:
    """``prefect-<flow run id>/<name>/<attempt>``: the same for every retry of the flow run, so a retry re-attaches.

    Outside a flow run (a task run alone, or a plain call) the task run id stands in; with neither, a fresh id: no
    re-attach is possible then.
    """
    return str(JobKey(_run_part(run_id), name, int(attempt)))


def _run_id() -> str:
    from prefect.runtime import flow_run, task_run

    return str(flow_run.id or task_run.id or uuid.uuid4().hex)


def _run_part(run_id: Any) -> str:
    return f"prefect-{_run_id() if run_id is None else run_id}"


def flow_run_dir(run_id: Any = None) -> str:
    """``$NEMORUN_HOME/prefect/prefect-<flow run id>``: the task directories (job files and records) of flow run
    ``run_id`` (default: the current one)."""
    return orchestration.scope_dir(default_home(), ORCHESTRATOR, _run_part(run_id))


def job_dir_for(key: str | JobKey) -> str:
    """Where the job's files live: ``$NEMORUN_HOME/prefect/<flow run>/<name>[/attempt-N]`` (same on every retry)."""
    return orchestration.job_dir(default_home(), ORCHESTRATOR, key)


def record_job(key: str | JobKey, ref: JobRef, job_dir: str | None = None) -> None:
    """Record the job of ``key`` (see the module docstring): in ``<task dir>/prefect_job.json`` and as a Prefect
    artifact. ``ref.handle`` is ``{}`` before the submission; a later attempt replaces an earlier one's record.
    ``ref`` holds no secret (its executor config is redacted).

    A record that Prefect refuses (its API cannot be reached) is logged, not raised: the file record still lets a
    hook under the same ``$NEMORUN_HOME`` find the job.
    """
    key = key if isinstance(key, JobKey) else JobKey.parse(key)
    data = {"key": str(key), "job_dir": job_dir or job_dir_for(key), **dataclasses.asdict(ref)}
    directory = orchestration.task_dir(default_home(), ORCHESTRATOR, key)
    os.makedirs(directory, exist_ok=True)
    write_atomic(os.path.join(directory, JOB_RECORD), json.dumps(data, sort_keys=True))
    try:
        _record_in_prefect(key, data)
    except Exception as exc:  # noqa: BLE001 - the API's errors are many kinds; the file record stands
        _log.warning("could not record job %s in Prefect (a cancellation hook under another NEMORUN_HOME will not "
                     "find it): %s: %s", key, type(exc).__name__, exc)


def record_artifact_key(flow_run_id: Any, name: str) -> str:
    """The key of the Prefect artifact that records task ``name``'s job in flow run ``flow_run_id``."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return artifacts.artifact_key(f"nemorun-job-{flow_run_id}", name[:40], digest)


def _record_prefix(flow_run_id: Any) -> str:
    return artifacts.artifact_key(f"nemorun-job-{flow_run_id}") + "-"


def _record_in_prefect(key: JobKey, data: dict[str, Any]) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    run_id = key.scope.removeprefix("prefect-")
    state = "submitted" if data["handle"] else "about to be submitted"
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(
            key=record_artifact_key(run_id, key.task), type=RECORD_TYPE, data=data,
            description=f"nemorun job record of task {key.task!r} of flow run {run_id}: {key} ({state}); read by "
                        "the flow's cancellation hook"))


def job_records(flow_run_id: Any) -> dict[str, JobRecord]:
    """``{task name: JobRecord}``: the latest job recorded for each task of flow run ``flow_run_id``, from Prefect's
    artifacts and this machine's ``$NEMORUN_HOME`` together (so a process with another home still finds them).

    Where both know a task, the later attempt wins, and at equal attempts the record that has a handle. A source
    that cannot be read is left out with a warning.
    """
    found = {r.name: r for r in _file_records(flow_run_dir(flow_run_id))}
    try:
        remote = _prefect_records(flow_run_id)
    except Exception as exc:  # noqa: BLE001 - an API that cannot be reached: the files still count
        _log.warning("could not read the job records of flow run %s from Prefect: %s: %s", flow_run_id,
                     type(exc).__name__, exc)
        remote = []
    for record in remote:
        mine = found.get(record.name)
        if mine is None or _rank(record) > _rank(mine):
            found[record.name] = record
    return found


def _rank(record: JobRecord) -> tuple[int, bool]:
    return JobKey.parse(record.key).attempt, bool(record.ref.handle)


def _prefect_records(flow_run_id: Any) -> list[JobRecord]:
    from prefect import get_client

    # A raw request: Prefect 3.8's read_artifacts sends the filters it was not given as null, which its server
    # refuses. Newest first, so the first version of each key is its latest.
    body = {"artifacts": {"key": {"like_": _record_prefix(flow_run_id)}, "type": {"any_": [RECORD_TYPE]}},
            "sort": "CREATED_DESC", "limit": 200, "offset": 0}
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json=body)
    seen: set[str] = set()
    records = []
    for item in response.json():
        if item.get("key") in seen:
            continue
        seen.add(item.get("key"))
        record = _parse_record(item.get("data"), f"Prefect artifact {item.get('key')}")
        if record is not None and JobKey.parse(record.key).scope == _run_part(flow_run_id):
            records.append(record)
    return records


def _parse_record(data: Any, where: str) -> JobRecord | None:
    try:
        if isinstance(data, str):
            data = json.loads(data)
        if data:
            data = dict(data)
            key = str(JobKey.parse(data.pop("key")))
            job_dir = data.pop("job_dir", None) or job_dir_for(key)
            ref = JobRef(**data)
            return JobRecord(ref.name, key, job_dir, ref)
    except Exception as exc:  # noqa: BLE001 - a damaged record is reported, the others still count
        _log.warning("unreadable job record %s: %s: %s", where, type(exc).__name__, exc)
    return None


def _file_records(run_dir: str) -> list[JobRecord]:
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        record = _read_file_record(os.path.join(run_dir, name, JOB_RECORD))
        if record is not None:
            records.append(record)
    return records


def _read_file_record(path: str) -> JobRecord | None:
    try:
        data = read_json(path)
    except (ValueError, OSError) as exc:
        _log.warning("unreadable job record %s: %s: %s", path, type(exc).__name__, exc)
        return None
    return _parse_record(data, path) if data else None


def read_job_records(run_dir: str) -> dict[str, tuple[str, JobRef]]:
    """``{task name: (job key, JobRef)}`` for every job recorded under ``run_dir`` (``.../prefect/prefect-<id>``)
    on this machine (:func:`job_records` also reads Prefect's records).

    A JobRef whose ``handle`` is ``{}`` was recorded just before its submission: the job may or may not exist. A record
    that cannot be read is left out with a warning (the others are still returned).
    """
    return {r.name: (r.key, r.ref) for r in _file_records(run_dir)}


def recorded_job(name: str, run_id: Any = None) -> tuple[str, JobRef] | None:
    """The latest job recorded for task ``name`` of flow run ``run_id`` (default: the current one), as
    ``(job key, JobRef)``, or None when that task submitted nothing. Reads that task's record file only."""
    record = _read_file_record(os.path.join(flow_run_dir(run_id), name, JOB_RECORD))
    return None if record is None else (record.key, record.ref)


def submit(task: Any, executor: Executor | None = None, *, name: str | None = None) -> JobRef:
    """Submit ``task`` on ``executor`` (default ``LocalExecutor()``), or find the job this flow run already submitted.

    Blocks only until the backend accepted the job. Idempotent per flow run and ``name``.

    Raises:
        ConfigError: the task failed validation (nothing submitted).
        CapabilityError: the executor cannot find a job by its key (a retry could submit a second job).
        SubmissionError: the backend refused the job.
    """
    from nemorun_core.executors.local import LocalExecutor

    normalized = normalize_task(task, {})
    name = check_name(name or default_name(normalized), "task name")
    spec = TaskSpec(name, normalized, (executor or LocalExecutor()).clone(), [])
    logger = get_run_logger()
    config = executor_config(spec.executor)

    def record(key: JobKey, handle: JobHandle | None) -> None:
        record_job(key, JobRef(spec.name, spec.kind, handle.to_dict() if handle else {}, config),
                   handle.job_dir if handle is not None and handle.job_dir else job_dir_for(key))

    attached = orchestration.attach_or_submit(spec, JobKey(_run_part(None), name), job_dir_for, record=record,
                                              log=lambda line: logger.info("%s", line))
    if attached.submitted:  # only here: a re-attach makes no second ones
        artifacts.task_submitted(spec, attached.handle)
        artifacts.log_link(spec, attached.handle)
    return JobRef(spec.name, spec.kind, attached.handle.to_dict(), config)


def wait(ref: JobRef, *, poll: float = _POLL, stop: threading.Event | None = None,
         executor: Executor | None = None) -> Any:
    """Follow the job to its end, sending each new log line (secrets redacted by
    :func:`~nemorun_core.executors.base.follow_log`) to the Prefect run logger; return the task's value.

    Log levels: executors merge a job's stdout and stderr, so the stream of a line is not known; lines that look
    like error output (a Python traceback, ``SomeError: ...``, ``ERROR ...``: see
    :class:`nemorun_core.orchestration.ErrorLines`) are logged at WARNING, the others at INFO. Every line of the
    log is streamed, so the error raised for a failed job names its exit status, message and log location but does
    not repeat the log's tail. Once the job has ended, the metrics it logged become a table artifact
    (:func:`nemorun_prefect.artifacts.metrics_table`).

    Args:
        ref: the job, as :func:`submit` returned it.
        poll: the longest wait between two status reads (executors that are woken by the backend return earlier).
        stop: set by the flow that runs this wait in a worker thread when it ends early (cancelled, killed): the
            wait then raises within ``poll`` seconds instead of holding the flow's process open until the job ends.
        executor: the executor the job was submitted with, when the caller has it (saves building it again from
            ``ref``, whose secrets are redacted); default: built from ``ref``.

    Raises:
        JobFailedError: the job ended FAILED or CANCELLED; names the job, its exit status and its log.
        FlowRunEnding: ``stop`` was set before the job ended (the job is left as it is).
    """
    logger = get_run_logger()
    spec = ref.spec(executor)
    executor, handle = spec.executor, spec.handle
    looks_like_error = orchestration.ErrorLines()

    def emit(line: str) -> None:
        (logger.warning if looks_like_error(line) else logger.info)("%s", line)

    status, _ = follow_log(executor, handle, emit, poll=poll, stop=stop.is_set if stop is not None else None)
    if not status.is_terminal:
        raise FlowRunEnding(
            f"stopped following job {handle.key} ({status.state.value}): its flow run is ending; the job is left "
            "to the flow's cancellation hook, or to a restart of the flow run, which re-attaches to it")
    artifacts.metrics_table(spec.name, executor, handle)
    if status.state is not JobState.SUCCEEDED:
        raise orchestration.job_error(spec, status, orchestration.known_secrets(executor), with_tail=False)
    return read_result(spec)


def cancel(ref: JobRef, *, timeout: float = 60.0, executor: Executor | None = None) -> JobState:
    """Cancel the job and wait (up to ``timeout`` s) until it is terminal; return its state.

    Idempotent: a finished job keeps its state. ``executor``: as for :func:`wait`.
    """
    spec = ref.spec(executor)
    report = orchestration.cancel_and_wait(spec.executor, spec.handle, timeout)
    get_run_logger().info("%s", report.describe())
    return report.state


def run(task: Any, executor: Executor | None = None, *, name: str | None = None) -> Any:
    """Submit (or re-attach to) the job, stream its logs, wait and return the task's value."""
    return wait(submit(task, executor, name=name), executor=executor)


# -- the Prefect tasks --------------------------------------------------------------------------------------------


def cancelled_state(exc: BaseException) -> Any:
    """Prefect's ``Cancelled`` state for a task run that ends on ``exc``, or None when ``exc`` is a failure.

    Cancelled: the job ended CANCELLED (:class:`JobFailedError` with that state), or the task run stopped following
    it because its flow run is ending (:class:`FlowRunEnding`). Prefect shows such a run as Cancelled, not Failed,
    and does not retry it. The state holds ``exc``, so that a future's ``result()`` (and a call of a
    :class:`NemorunTask`) raises it, as it would for a failure.
    """
    from prefect.states import Cancelled

    if isinstance(exc, FlowRunEnding) or (isinstance(exc, JobFailedError) and exc.state == JobState.CANCELLED.value):
        return Cancelled(message=str(exc), data=exc)
    return None


def prefect_outcome(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` for a Prefect task: what would end the task run Cancelled (:func:`cancelled_state`) is returned as
    that state instead of raised (Prefect takes a returned state as the run's final state); failures raise."""

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (JobFailedError, FlowRunEnding) as exc:
            state = cancelled_state(exc)
            if state is None:
                raise
            return state

    return body


class NemorunTask(Task):
    """A Prefect task whose body may return a Cancelled state (:func:`prefect_outcome`).

    Prefect hands a state that a task returned back to a direct call as it is; this call raises the exception it
    holds instead (the :class:`JobFailedError` or :class:`FlowRunEnding`), so that ``run_nemorun_task(...)`` in a
    flow never returns a State in place of the job's value. ``return_state=True`` still returns the state.
    """

    def __call__(self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any) -> Any:
        from prefect.states import State, raise_state_exception

        outcome = super().__call__(*args, return_state=return_state, wait_for=wait_for, **kwargs)
        if not return_state and isinstance(outcome, State) and outcome.is_cancelled():
            raise_state_exception(outcome)
        return outcome

    def with_options(self, **options: Any) -> "NemorunTask":
        copy = super().with_options(**options)
        copy.__class__ = type(self)  # Task.with_options builds a plain Task; keep this call behaviour
        return copy


def _job_name(parameters: dict[str, Any]) -> str:
    """The job's task name, from a task run's parameters (``name``, or the task's default name)."""
    if parameters.get("name"):
        return str(parameters["name"])
    ref = parameters.get("ref")
    if isinstance(ref, JobRef):
        return ref.name
    try:
        return default_name(normalize_task(parameters.get("task"), {}))
    except Exception:  # noqa: BLE001 - an invalid task fails in the run itself, with its own message
        return "nemorun-task"


def _run_name(action: str) -> Callable[..., str]:
    def name(parameters: dict[str, Any]) -> str:
        return f"{action}-{_job_name(parameters)}" if action else _job_name(parameters)

    return name


# No Prefect cache: re-attaching goes through the job key, and the inputs (configs, executors) need not hash. Task
# runs are named after the job (``train``, ``submit-train``...), not ``run_nemorun_task-<suffix>``.
run_nemorun_task = NemorunTask(prefect_outcome(run), name="run_nemorun_task", task_run_name=_run_name(""),
                               cache_policy=NO_CACHE)
submit_nemorun_task = prefect_task(submit, name="submit_nemorun_task", task_run_name=_run_name("submit"),
                                   cache_policy=NO_CACHE)
wait_nemorun_task = NemorunTask(prefect_outcome(wait), name="wait_nemorun_task", task_run_name=_run_name("wait"),
                                cache_policy=NO_CACHE)
cancel_nemorun_task = prefect_task(cancel, name="cancel_nemorun_task", task_run_name=_run_name("cancel"),
                                   cache_policy=NO_CACHE)

__all__ = ["FlowRunEnding", "JobRef", "NemorunTask", "cancel", "cancelled_state", "prefect_outcome",
           "cancel_nemorun_task", "run", "run_nemorun_task", "submit", "submit_nemorun_task", "wait", "wait_nemorun_task", "flow_run_dir", "job_key", "job_dir_for", "job_records", "record_job",
           "read_job_records", "recorded_job", "JobRecord"]
