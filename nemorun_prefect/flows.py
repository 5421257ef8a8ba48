"""An ``Experiment`` as one Prefect flow: one Prefect task per experiment task, the graph mirroring its dependencies.

    import nemorun_core as run
    from nemorun_prefect import experiment_flow

    exp = run.Experiment("sweep")
    train = exp.add(run.Partial(train_fn, steps=10), name="train")
    exp.add(run.Partial(evaluate, checkpoint=f"{train.output.checkpoint}"), name="eval")
    results = experiment_flow(exp, max_concurrent=2)   # {"train": ..., "eval": ...}

Each experiment task becomes a ``nemorun-<name>`` task run that submits (or re-attaches to) its job through
:mod:`nemorun_prefect.tasks` (job key ``prefect-<flow run id>/<name>/<attempt>``), streams its log and returns its value.

* Dependencies: every task run gets its dependencies' futures (``wait_for`` and as inputs), so Prefect shows the same
  graph. A task whose dependency failed, was cancelled or was itself not run is not run, the Prefect way: Prefect
  leaves it in its ``NotReady`` (Pending) state, and it submits nothing. The flow's error names it and the
  dependencies it waited for.
* States: a task run whose job failed ends Failed; one whose job was cancelled, or that stopped following its job
  because the flow run is ending (cancelled, crashed), ends Cancelled (:func:`nemorun_prefect.tasks.cancelled_state`).
* References: ``{name.output...}`` is replaced by the dependency's returned value, ``{name.dir}`` by its job
  directory, as the core scheduler does.
* ``max_concurrent``: a semaphore (per flow run, in this process) around the job part of each task run. Task runs
  waiting for a slot show as Running in Prefect; no Prefect concurrency limit (server object) is created.
* The flow ends Failed when any task failed or was not run (:class:`ExperimentFlowError`, listing them); otherwise it
  returns ``{task name: value}``. Either way it first leaves a job-table artifact (see
  :mod:`nemorun_prefect.artifacts`); a cancelled or crashed flow run gets it from its hook, after its jobs are
  cancelled.
* Cancelling: ``on_cancellation`` and ``on_crashed`` hooks cancel every job the flow run submitted.
  :func:`on_cancellation_cancel_jobs` makes the same hook for any flow (one that calls ``run_nemorun_task`` itself,
  or runs experiment flows as subflows); :func:`cancel_flow_jobs` does it for any flow run id.

How a cancel reaches the jobs. Every submission first records the job (its key, job directory and executor config,
secrets redacted; then its handle) in Prefect itself (a ``nemorun-job`` artifact keyed by the flow run id) and in
``$NEMORUN_HOME/prefect/prefect-<flow run id>/<task>/prefect_job.json``, and the hook cancels what it finds there
(:func:`nemorun_prefect.tasks.job_records`), so it needs no state of the process that submitted, nor its
``$NEMORUN_HOME``. That matters because Prefect runs
the hooks of a run cancelled through the API or UI (state ``Cancelling``) not in the flow's process but in the
process that started it (``flow.serve()``, a worker), after killing the flow's process: the hooks of the flow
object it served, or, for a deployment loaded from an entrypoint, of the flow it loads again from that entrypoint.
Limits: the hook must reach the Prefect API the flow run used (it does: Prefect runs it from there), and the
backend of each job (a Local job only from the same machine); a flow run started in a plain Python
process has no one watching the API, so it is cancelled only by a signal to that process (Prefect's own rule); a job
whose submission was in flight when the flow's process was killed is found by its key if the backend has it by then.
See docs/prefect.md, "Deployments and served flows".
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from prefect import flow, get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from nemorun_core.errors import ExperimentError
from nemorun_core import orchestration
from nemorun_core.executors.base import Executor, JobHandle, JobState
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.experiment.tasks import referenced_tasks, resolve_references
from nemorun_prefect import artifacts
from nemorun_prefect import tasks as nr_tasks

# Per flow run id: the semaphore that enforces max_concurrent (absent: no limit).
_LIMITS: dict[str, threading.Semaphore] = {}
# Per flow run id: set when the flow's body ends, normally or not (cancelled, killed, Ctrl-C). Task runs then stop
# waiting for their jobs and submit nothing more, so that Prefect's task-runner shutdown, which waits for its worker
# threads, does not hold the dying process open until the jobs end.
_STOPS: dict[str, threading.Event] = {}


class DependencyFailedError(ExperimentError):
    """A task was not run because one of its dependencies failed or was not run.

    Experiment flows no longer raise it: such a task stays in Prefect's own ``NotReady`` state. Kept for code that
    catches it."""


class ExperimentFlowError(ExperimentError):
    """Some tasks of the experiment flow failed or were not run."""


def _run_experiment_task(task: Any, executor: Executor, name: str, upstream: dict[str, Any]) -> Any:
    """Body of one experiment task run: resolve references, submit/re-attach, wait. Prefect runs it only once every
    dependency completed (``wait_for``); ``upstream`` holds their futures (quoted, so that Prefect names the task
    run before it finds a dependency not completed) or values."""
    from prefect.futures import PrefectFuture
    from prefect.runtime import flow_run

    upstream = {dep: value.result() if isinstance(value, PrefectFuture) else value for dep, value in upstream.items()}

    def lookup(dep: str, field: str) -> Any:
        if dep not in upstream:
            raise ExperimentError(f"task {name!r} refers to {dep!r}, which is not one of its dependencies")
        if field == "dir":
            recorded = nr_tasks.recorded_job(dep)
            if recorded is not None and recorded[1].handle:
                return recorded[1].job_handle().job_dir
            return nr_tasks.job_dir_for(nr_tasks.job_key(dep))
        return upstream[dep]

    resolved = resolve_references(task, lookup) if referenced_tasks(task) else task
    limit, stop = _LIMITS.get(str(flow_run.id)), _STOPS.get(str(flow_run.id))

    def submit_and_wait() -> Any:
        if stop is not None and stop.is_set():
            raise ExperimentError(f"task {name!r} was not submitted: its flow run is ending")
        return nr_tasks.wait(nr_tasks.submit(resolved, executor, name=name), stop=stop, executor=executor)

    if limit is None:
        return submit_and_wait()
    with limit:
        get_run_logger().debug("task %s got a concurrency slot", name)
        return submit_and_wait()


run_experiment_task = prefect_task(nr_tasks.prefect_outcome(_run_experiment_task), name="run_experiment_task",
                                   cache_policy=NO_CACHE)


# Module functions, not code in the flow's closure: ``flow.serve()`` cloudpickles the closure by value into the
# flow run's process, with copies of the module globals it names, which the task runs would not see.
def _start_run(run_id: str, max_concurrent: int | None) -> None:
    if max_concurrent is not None:
        _LIMITS[run_id] = threading.Semaphore(max_concurrent)
    _STOPS[run_id] = threading.Event()


def _end_run(run_id: str) -> None:
    _LIMITS.pop(run_id, None)
    stop = _STOPS.pop(run_id, None)
    if stop is not None:
        stop.set()


def cancel_flow_jobs(flow_run_id: Any, executors: dict[str, Executor] | None = None, *,
                     timeout: float = 60.0) -> dict[str, JobState]:
    """Cancel every job that flow run ``flow_run_id`` submitted; return their final states by task name.

    The jobs are those the flow run recorded at submission (:func:`nemorun_prefect.tasks.job_records`: Prefect's
    own records, read through its API, so this works from a process with another ``$NEMORUN_HOME`` or on another
    machine, plus this machine's record files), and, for each task name in ``executors`` (task name -> executor)
    without a record, the job that executor finds by its key. A task in ``executors`` that has a record is cancelled
    through that executor rather than one built from the record (whose secrets are redacted). A record made just
    before its submission (no handle yet) is looked up by its key in its recorded job directory. Tasks with no job
    are left out; a job that could not be reached is ``UNKNOWN`` (the error is logged). Waits up to ``timeout`` s in
    all for the jobs to be terminal (:func:`nemorun_core.orchestration.cancel_all`). Idempotent: a finished job keeps
    its state.
    """
    from prefect.logging import get_logger

    logger = get_logger("nemorun_prefect")
    executors = executors or {}
    candidates: dict[str, tuple[str, Any, JobHandle | None, str | None]] = {}
    for name, record in nr_tasks.job_records(flow_run_id).items():
        ref = record.ref
        candidates[name] = (record.key, executors.get(name) or ref, ref.job_handle() if ref.handle else None,
                            record.job_dir)
    for name, executor in executors.items():
        candidates.setdefault(name, (nr_tasks.job_key(name, run_id=flow_run_id), executor, None, None))
    found: list[tuple[str, Executor, JobHandle]] = []
    states: dict[str, JobState] = {}
    for name, (key, source, handle, recorded_dir) in candidates.items():
        try:
            executor = source.load_executor() if isinstance(source, nr_tasks.JobRef) else source
            if handle is None:
                first = JobKey.parse(key)

                def dir_of(k: JobKey, first: JobKey = first, recorded_dir: str | None = recorded_dir) -> str:
                    return recorded_dir if k == first and recorded_dir else nr_tasks.job_dir_for(k)

                _, handle, _ = orchestration.find_attempt(executor, first, dir_of)
            if handle is not None:
                found.append((name, executor, handle))
        except Exception as exc:  # one unreachable backend must not keep the other jobs running
            logger.warning("could not cancel job %s: %s: %s", key, type(exc).__name__, exc)
            states[name] = JobState.UNKNOWN
    reports = orchestration.cancel_all([(executor, handle) for _, executor, handle in found], timeout)
    for (name, _, _), report in zip(found, reports):
        if report.error:
            logger.warning("%s", report.describe())
        states[name] = report.state
    return states


def _subflow_run_ids(flow_run_id: Any, depth: int = 8) -> list[Any]:
    """The ids of the subflow runs of ``flow_run_id``, their subflow runs and so on (one API call per level)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    found: list[Any] = []
    level = [flow_run_id]
    with get_client(sync_client=True) as client:
        for _ in range(depth):
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level)),
                sort=FlowRunSort.ID_DESC, limit=200)
            level = [r.id for r in runs if r.id not in found]
            if not level:
                break
            found += level
    return found


def on_cancellation_cancel_jobs(*, timeout: float = 60.0, subflows: bool = True,
                                executors: dict[str, Executor] | None = None) -> Callable[[Any, Any, Any], None]:
    """A flow hook that cancels the nemorun jobs of the flow run, for ``on_cancellation`` (and ``on_crashed``).

        @flow(on_cancellation=[on_cancellation_cancel_jobs()])
        def train_flow():
            run_nemorun_task(run.Partial(train, steps=1000), executor, name="train")

    Args:
        timeout: seconds to wait in all for the cancelled jobs to be terminal.
        subflows: also cancel the jobs of the flow run's subflow runs (an ``experiment_flow`` called inside it),
            found through the Prefect API; when the API cannot be reached, only the flow run's own jobs.
        executors: task name -> executor, to find jobs that have no record (see :func:`cancel_flow_jobs`).

    Returns:
        The hook: it logs the final state of each job and never raises (Prefect would only log the error).
    """

    def cancel_nemorun_jobs(flow: Any, flow_run: Any, state: Any) -> None:
        from prefect.logging.loggers import flow_run_logger

        logger = flow_run_logger(flow_run, flow)  # to the flow run's log, wherever the hook runs
        run_ids = [flow_run.id]
        if subflows:
            try:
                run_ids += _subflow_run_ids(flow_run.id)
            except Exception as exc:
                logger.warning("could not list the subflow runs of %s: %s: %s", flow_run.id, type(exc).__name__,
                               exc)
        for run_id in run_ids:
            try:
                states = cancel_flow_jobs(run_id, executors if run_id == flow_run.id else None, timeout=timeout)
            except Exception as exc:
                logger.warning("could not cancel the jobs of flow run %s: %s: %s", run_id, type(exc).__name__, exc)
                continue
            logger.info("flow run %s %s: jobs cancelled: %s", run_id, state.name,
                        {k: v.value for k, v in states.items()})

    return cancel_nemorun_jobs


def build_experiment_flow(exp: Any, *, max_concurrent: int | None = None) -> Any:
    """The Prefect flow (not run) for ``exp``; call it (``return_state=True`` works) to run it."""
    if exp.launched:
        raise ExperimentError(f"experiment {exp.id!r} was already launched; build the flow from a new Experiment")
    if max_concurrent is not None and max_concurrent < 1:
        raise ExperimentError(f"max_concurrent must be at least 1, got {max_concurrent!r}")
    specs = exp.task_specs()  # insertion order is a topological order: dependencies are added first
    if not specs:
        raise ExperimentError(f"experiment {exp.name!r} has no tasks; add some with exp.add(...)")
    cancel_hook = _cancel_and_report(specs)

    @flow(name=f"experiment-{exp.name}", on_cancellation=[cancel_hook], on_crashed=[cancel_hook])
    def experiment(max_concurrent: int | None = max_concurrent) -> dict[str, Any]:
        from prefect.runtime import flow_run

        run_id = str(flow_run.id)
        _start_run(run_id, max_concurrent)
        try:
            futures: dict[str, Any] = {}
            for spec in specs:
                deps = {d: futures[d] for d in spec.dependencies}
                futures[spec.name] = run_experiment_task.with_options(
                    name=f"nemorun-{spec.name}", task_run_name=spec.name,
                ).submit(spec.task, spec.executor, spec.name, quote(deps), wait_for=list(deps.values()))
            for fut in futures.values():
                fut.wait()
            states = {name: fut.state for name, fut in futures.items()}
        finally:
            _end_run(run_id)
        artifacts.experiment_table(specs, run_id)  # before deciding the outcome: failed flows get one too
        failures = _failures(specs, states)
        if failures:
            raise ExperimentFlowError("experiment tasks did not succeed: " + "; ".join(failures))
        return {name: fut.result() for name, fut in futures.items()}

    return experiment


def _failures(specs: list[Any], states: dict[str, Any]) -> list[str]:
    """One line per task that did not complete: its state and message, or, for a task Prefect did not run, the
    dependencies that did not complete."""
    out = []
    for spec in specs:
        state = states[spec.name]
        if state.is_completed():
            continue
        if state.is_pending():
            waited = [d for d in spec.dependencies if not states[d].is_completed()]
            out.append(f"{spec.name}: {state.name}: not run, its dependencies {waited} did not complete")
        else:
            out.append(f"{spec.name}: {state.name}: {state.message}")
    return out


def _cancel_and_report(specs: list[Any]) -> Callable[[Any, Any, Any], None]:
    """The experiment flow's ``on_cancellation`` / ``on_crashed`` hook: cancel the flow run's jobs, then write its
    job table (the flow's body, interrupted, did not), which shows them cancelled. Never raises."""
    cancel = on_cancellation_cancel_jobs(subflows=False, executors={s.name: s.executor for s in specs})

    def cancel_nemorun_jobs(flow: Any, flow_run: Any, state: Any) -> None:
        cancel(flow, flow_run, state)
        artifacts.experiment_table(specs, flow_run.id, flow_name=flow.name)

    return cancel_nemorun_jobs


def experiment_flow(exp: Any, *, max_concurrent: int | None = None, return_state: bool = False) -> Any:
    """Run ``exp`` (not yet run) as a Prefect flow; return ``{task name: value}`` (or the flow's final state).

    Raises:
        ExperimentFlowError: a task failed or was not run (unless ``return_state``).
        ExperimentError: the experiment was already launched, has no tasks, or ``max_concurrent`` < 1.
    """
    return build_experiment_flow(exp, max_concurrent=max_concurrent)(return_state=return_state)


__all__ = ["DependencyFailedError", "ExperimentFlowError", "build_experiment_flow", "cancel_flow_jobs",
           "experiment_flow", "on_cancellation_cancel_jobs", "run_experiment_task"]
