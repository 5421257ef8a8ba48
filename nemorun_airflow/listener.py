"""Cancel a task's job in the process that ends the task: at once, and also when no nemorun code runs for it.

A deferred :class:`~nemorun_airflow.operators.NemorunOperator` has handed its job to a trigger. Once a triggerer runs
that trigger, ending the task (marked failed, success or skipped; its run marked failed or success) reaches
:meth:`NemorunJobTrigger.on_kill <nemorun_airflow.triggers.NemorunJobTrigger.on_kill>`. Before that (no triggerer
running, none serving the task's trigger queue, a busy one), Airflow drops the trigger row without running any
nemorun code, and the job would keep running. Airflow 3 calls its task instance listeners in the process that
ends the task: the API server for a user's mark (``on_task_instance_failed`` / ``_success`` / ``_skipped``, once per
task instance, also for each running or deferred task instance of a run that is marked failed or success), the
scheduler for failures it detects itself. This listener, registered by the plugin :class:`NemorunListenerPlugin`
(``airflow.plugins`` entry point), cancels the job there.

It acts for a task that follows its job in its worker (synchronous) too, and for a deferred task whose trigger runs:
without it, a synchronous task's job is cancelled only when its worker's next heartbeat (every ``[workers]
min_heartbeat_interval`` seconds, 5 by default) learns that the task was ended and kills the task, whose ``on_kill``
cancels; a running trigger's ``on_kill`` comes when the triggerer's next loop notices its trigger was removed. Here
it is cancelled while the user's request is answered: the backend's own cancel latency, and the following process
sees the job end at its next poll. The later ``on_kill`` finds the job ended and sends nothing.

What it reads, in that process's database session: the task state store entry ``STATE_KEY`` of the task instance
(written by the operator as soon as it has a job: the handle, the executor's config with secrets redacted, the
connection ids), else the kwargs of the task instance's trigger row while it still exists (Airflow without a task state store;
a state store backend that keeps values elsewhere). The executor is rebuilt
(:func:`~nemorun_core.experiment.jobref.load_executor`), its credentials are read from the stored connection ids
(:func:`~nemorun_airflow.hooks.resolve_credentials`), and the job is cancelled through the job contract
(:func:`~nemorun_core.orchestration.cancel_and_wait`, which sends nothing for a job that has ended), so a trigger's
own ``on_kill`` and this listener may both act on one job.

When it does not cancel, the same rule as ``on_kill``: a task instance whose state says it runs again
(``up_for_retry``, a clear: :data:`~nemorun_airflow.triggers.RERUN_STATES`) keeps its job for the next try to
re-attach to (Airflow calls no listener for a clear); a task whose entry holds no job yet (recorded just before
its submission) is its worker's to cancel (``on_kill`` finds the job by key); a sensor's trigger (``cancel_on_kill`` False) follows a job that is not its own. In a task
process (a :class:`RuntimeTaskInstance`, not a database row) it does nothing: ``on_kill`` is there.

The listener never raises into Airflow: every failure is logged (``nemorun_airflow.listener``) with the job and why.
It blocks the caller for at most :data:`WAIT_SECONDS`; a slower backend is left to finish in a background thread.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

#: The trigger class whose rows this listener reads.
TRIGGER_CLASSPATH = "nemorun_airflow.triggers.NemorunJobTrigger"
#: Seconds the cancel waits for the job to reach a terminal state (it is sent either way).
CANCEL_GRACE = 10.0
#: Seconds the listener holds up Airflow's caller (an API request, the scheduler loop) at most.
WAIT_SECONDS = 15.0


def task_instance_ended(task_instance: Any) -> None:
    """Cancel the job that ``task_instance`` deferred, if it must be (the module docstring says when). Never raises.

    Blocks for up to :data:`WAIT_SECONDS` (reading the store and the backend); the cancel carries on in a daemon
    thread past that.
    """
    try:
        found = _job_of(task_instance)
    except Exception as exc:  # noqa: BLE001 - a listener must not fail Airflow's action: say why and carry on
        log.warning("nemorun: cannot read the job of task %s: %s: %s; a job it deferred is not cancelled here",
                    _name(task_instance), type(exc).__name__, exc)
        return
    if found is None:
        return
    thread = threading.Thread(target=_cancel, args=(task_instance, *found), name="nemorun-listener-cancel",
                              daemon=True)
    thread.start()
    thread.join(WAIT_SECONDS)
    if thread.is_alive():
        log.warning("nemorun: cancelling the job of task %s takes longer than %.0f s; it goes on in the background",
                    _name(task_instance), WAIT_SECONDS)


def _job_of(ti: Any) -> tuple[dict[str, Any], str] | None:
    """The stored job to cancel (its record: handle, executor, connections) and the task's state, or None."""
    models = sys.modules.get("airflow.models.taskinstance")
    if models is None or not isinstance(ti, models.TaskInstance):
        return None  # a task process: the operator's on_kill covers it
    from nemorun_airflow.triggers import RERUN_STATES

    state = _state(ti.state)
    record = _stored_record(ti) or _trigger_record(ti)
    if record is None:
        return None
    handle = record["handle"]
    if state in RERUN_STATES:
        log.info("nemorun: task %s is %s: job %s keeps running; the next try re-attaches to it", _name(ti), state,
                 handle.get("key"))
        return None
    return record, state


def _stored_record(ti: Any) -> dict[str, Any] | None:
    """The operator's task state store entry, when it holds a job (handle and executor)."""
    try:
        from airflow.state import TaskScope, get_state_backend
    except ImportError:  # Airflow before 3.3: no task state store
        return None
    from nemorun_airflow.operators import STATE_KEY

    scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                      map_index=ti.map_index if ti.map_index is not None else -1)
    raw = get_state_backend().get(scope, STATE_KEY)
    entry = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(entry, dict) and isinstance(entry.get("handle"), dict) and isinstance(entry.get("executor"), dict):
        return {"handle": entry["handle"], "executor": entry["executor"],
                "connections": dict(entry.get("connections") or {}), "source": "task state store"}
    return None


def _trigger_record(ti: Any) -> dict[str, Any] | None:
    """The kwargs of the task instance's nemorun trigger row, while the row exists; None for a sensor's trigger."""
    if getattr(ti, "trigger_id", None) is None:
        return None
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(Trigger, ti.trigger_id)
        if row is None or row.classpath != TRIGGER_CLASSPATH:
            return None
        kwargs = row.kwargs
    if not kwargs.get("cancel_on_kill", True):
        return None
    connections = dict(kwargs.get("connections") or {})
    if kwargs.get("ssh_conn_id"):
        connections["ssh"] = kwargs["ssh_conn_id"]
    return {"handle": dict(kwargs["handle"]), "executor": dict(kwargs["executor"]), "connections": connections,
            "source": "trigger row"}


def _cancel(ti: Any, record: dict[str, Any], state: str) -> None:
    """Rebuild the executor with its credentials and cancel the job; log the outcome. Never raises."""
    from nemorun_core.executors.base import Executor, JobHandle

    name = _name(ti)
    try:
        handle = JobHandle.from_dict(record["handle"])
    except Exception as exc:  # noqa: BLE001 - a malformed record: nothing to cancel, say so
        log.warning("nemorun: task %s ended (%s) but its %s holds no usable job handle: %s: %s", name, state,
                    record["source"], type(exc).__name__, exc)
        return
    try:
        from nemorun_airflow.hooks import resolve_credentials
        from nemorun_core import orchestration
        from nemorun_core.experiment.jobref import load_executor

        executor = load_executor(record["executor"])
        if not isinstance(executor, Executor):
            raise TypeError(f"the stored executor config builds a {type(executor).__name__}, not an executor")
        if record["connections"]:
            executor = resolve_credentials(executor, record["connections"])
        log.info("nemorun: task %s ended (%s): cancelling job %s (%s %s)", name, state, handle.key, handle.backend,
                 handle.job_id)
        report = orchestration.cancel_and_wait(executor, handle, grace=CANCEL_GRACE)
    except Exception as exc:  # noqa: BLE001 - the executor or its credentials could not be rebuilt
        log.warning("nemorun: cannot cancel job %s (%s %s) of task %s: %s: %s; cancel it by hand "
                    "(nemorun cancel, or the backend's own tool)", handle.key, handle.backend, handle.job_id, name,
                    type(exc).__name__, exc)
        return
    if report.error:
        log.warning("nemorun: cancelling job %s (%s %s) of task %s failed: %s", handle.key, handle.backend,
                    handle.job_id, name, report.error)
    elif report.requested:
        log.info("nemorun: job %s of task %s cancelled: %s", handle.key, name, report.status.state.name)
    else:
        log.info("nemorun: job %s of task %s had ended (%s): nothing to cancel", handle.key, name,
                 report.status.state.name)


def _state(state: Any) -> str:
    return "none" if state is None else str(getattr(state, "value", state))


def _name(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    suffix = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
    return f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}{suffix} of run {getattr(ti, 'run_id', '?')}"


class _Listener:
    """The hook implementations: each ending of a task instance goes to :func:`task_instance_ended`."""

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        task_instance_ended(task_instance)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        task_instance_ended(task_instance)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        task_instance_ended(task_instance)


class NemorunListenerPlugin(AirflowPlugin):
    """Registers nemorun's task instance listener in every Airflow process (``airflow.plugins`` entry point)."""

    name = "nemorun"
    listeners = [_Listener()]


__all__ = ["NemorunListenerPlugin", "task_instance_ended"]
