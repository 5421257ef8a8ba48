"""An ``Experiment`` as one Prefect flow: one Prefect task per experiment task, the graph mirroring its dependencies.

    import nemorun_core as run
    from nemorun_prefect import experiment_flow

    exp = run.Experiment("sweep")
    train = exp.add(run.Partial(train_fn, steps=10), name="train")
    exp.add(run.Partial(evaluate, checkpoint=f"{train.output.checkpoint}"), name="eval")
    results = experiment_flow(exp, max_concurrent=2)   # {"train": ..., "eval": ...}

Each experiment task becomes a ``nemorun-<name>`` task run that submits (or re-attaches to) its job through
:mod:`nemorun_prefect.tasks` (job key ``prefect-<flow run id>/<name>/0``), streams its log and returns its value.

* Dependencies: every task run gets its dependencies' futures (``wait_for`` and as inputs, wrapped in
  ``allow_failure``), so Prefect shows the same graph. A task whose dependency failed (or was itself not run) does not
  submit anything: it ends Failed with :class:`DependencyFailedError` naming that dependency (Prefect's own behaviour,
  a ``NotReady`` Pending state that never ends, would leave the flow hanging).
* References: ``{name.output...}`` is replaced by the dependency's returned value, ``{name.dir}`` by its job
  directory, as the core scheduler does.
* ``max_concurrent``: a semaphore (per flow run, in this process) around the job part of each task run. Task runs
  waiting for a slot show as Running in Prefect; no Prefect concurrency limit (server object) is created.
* The flow ends Failed when any task failed or was not run (:class:`ExperimentFlowError`, listing them); otherwise it
  returns ``{task name: value}``.
* Cancelling: ``on_cancellation`` and ``on_crashed`` hooks cancel every job the flow run submitted, found by its key
  (``executor.find``). :func:`cancel_flow_jobs` does the same for any flow run id. The hooks are closures of this
  process: they run for a flow run cancelled or crashed in this process (Ctrl-C, SIGTERM, a worker's cancel that
  reaches the process); a deployment's flow loaded from an entrypoint needs its own hook calling
  :func:`cancel_flow_jobs`.
"""

from __future__ import annotations

import threading
from typing import Any

from prefect import allow_failure, flow, get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from nemorun_core.errors import ExperimentError
from nemorun_core.executors.base import Executor, JobState
from nemorun_core.experiment.tasks import referenced_tasks, resolve_references
from nemorun_prefect import tasks as nr_tasks

# Per flow run id: the semaphore that enforces max_concurrent (absent: no limit).
_LIMITS: dict[str, threading.Semaphore] = {}


class DependencyFailedError(ExperimentError):
    """A task was not run because one of its dependencies failed or was not run."""


class ExperimentFlowError(ExperimentError):
    """Some tasks of the experiment flow failed or were not run."""


def _run_experiment_task(task: Any, executor: Executor, name: str, upstream: dict[str, Any]) -> Any:
    """Body of one experiment task run: check the dependencies, resolve references, submit/re-attach, wait."""
    from prefect.runtime import flow_run

    for dep, value in upstream.items():
        if isinstance(value, BaseException):
            raise DependencyFailedError(
                f"task {name!r} was not run: its dependency {dep!r} failed ({type(value).__name__}: {value})")

    def lookup(dep: str, field: str) -> Any:
        if dep not in upstream:
            raise ExperimentError(f"task {name!r} refers to {dep!r}, which is not one of its dependencies")
        if field == "dir":
            return nr_tasks.job_dir_for(nr_tasks.job_key(dep))
        return upstream[dep]

    resolved = resolve_references(task, lookup) if referenced_tasks(task) else task
    limit = _LIMITS.get(str(flow_run.id))
    if limit is None:
        return nr_tasks.run(resolved, executor, name=name)
    with limit:
        get_run_logger().debug("task %s got a concurrency slot", name)
        return nr_tasks.run(resolved, executor, name=name)


run_experiment_task = prefect_task(_run_experiment_task, name="run_experiment_task", cache_policy=NO_CACHE)


def cancel_flow_jobs(flow_run_id: Any, executors: dict[str, Executor], *, timeout: float = 60.0) -> dict[str, JobState]:
    """Cancel every job that flow run ``flow_run_id`` submitted for the named tasks; return their final states.

    ``executors`` maps each task name to the executor it ran on. Tasks with no job (never submitted) are left out.
    Waits up to ``timeout`` s in all for the jobs to be terminal. Idempotent: a finished job keeps its state.
    """
    import time

    found = {}
    for name, executor in executors.items():
        key = f"prefect-{flow_run_id}/{name}/0"
        handle = executor.find(key, nr_tasks.job_dir_for(key))
        if handle is not None:
            executor.cancel(handle)
            found[name] = (executor, handle)
    deadline = time.monotonic() + timeout
    states = {}
    for name, (executor, handle) in found.items():
        status = executor.status(handle)
        while not status.is_terminal and time.monotonic() < deadline:
            executor.wait_any([handle], 0.2)
            status = executor.status(handle)
        states[name] = status.state
    return states


def build_experiment_flow(exp: Any, *, max_concurrent: int | None = None) -> Any:
    """The Prefect flow (not run) for ``exp``; call it (``return_state=True`` works) to run it."""
    if getattr(exp, "_launched", False):
        raise ExperimentError(f"experiment {exp.id!r} was already launched; build the flow from a new Experiment")
    if max_concurrent is not None and max_concurrent < 1:
        raise ExperimentError(f"max_concurrent must be at least 1, got {max_concurrent!r}")
    specs = list(exp._tasks.values())  # insertion order is a topological order: dependencies are added first
    if not specs:
        raise ExperimentError(f"experiment {exp.name!r} has no tasks; add some with exp.add(...)")
    executors = {spec.name: spec.executor for spec in specs}

    def _cancel_hook(flow_obj: Any, flow_run: Any, state: Any) -> None:
        states = cancel_flow_jobs(flow_run.id, executors)
        from prefect.logging import get_logger

        get_logger("nemorun_prefect").info("flow run %s %s: jobs cancelled: %s", flow_run.id, state.name,
                                           {k: v.value for k, v in states.items()})

    @flow(name=f"experiment-{exp.name}", on_cancellation=[_cancel_hook], on_crashed=[_cancel_hook])
    def experiment(max_concurrent: int | None = max_concurrent) -> dict[str, Any]:
        from prefect.runtime import flow_run

        run_id = str(flow_run.id)
        if max_concurrent is not None:
            _LIMITS[run_id] = threading.Semaphore(max_concurrent)
        try:
            futures: dict[str, Any] = {}
            for spec in specs:
                deps = {d: allow_failure(futures[d]) for d in spec.dependencies}
                futures[spec.name] = run_experiment_task.with_options(
                    name=f"nemorun-{spec.name}", task_run_name=spec.name,
                ).submit(spec.task, spec.executor, spec.name, deps, wait_for=list(deps.values()))
            states = {name: fut.wait() or fut.state for name, fut in futures.items()}
        finally:
            _LIMITS.pop(run_id, None)
        bad = {name: s for name, s in states.items() if not s.is_completed()}
        if bad:
            raise ExperimentFlowError(
                "experiment tasks did not succeed: "
                + "; ".join(f"{name}: {s.name}: {s.message}" for name, s in bad.items()))
        return {name: fut.result() for name, fut in futures.items()}

    return experiment


def experiment_flow(exp: Any, *, max_concurrent: int | None = None, return_state: bool = False) -> Any:
    """Run ``exp`` (not yet run) as a Prefect flow; return ``{task name: value}`` (or the flow's final state).

    Raises:
        ExperimentFlowError: a task failed or was not run (unless ``return_state``).
        ExperimentError: the experiment was already launched, has no tasks, or ``max_concurrent`` < 1.
    """
    return build_experiment_flow(exp, max_concurrent=max_concurrent)(return_state=return_state)


__all__ = ["DependencyFailedError", "ExperimentFlowError", "build_experiment_flow", "cancel_flow_jobs",
           "experiment_flow", "run_experiment_task"]
