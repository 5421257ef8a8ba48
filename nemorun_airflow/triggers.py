"""``NemorunJobTrigger``: follow a nemorun job from Airflow's triggerer, with one backend poll per round for all jobs.

A deferred :class:`~nemorun_airflow.operators.NemorunOperator` (or :class:`~nemorun_airflow.sensors.NemorunJobSensor`)
hands the triggerer only plain, secret-free data: the job's handle, its executor's config with secrets redacted, the
``ssh`` connection id to rebuild the tunnel from, a log line offset, the poll interval, and salted digests of the
task's secret values. The trigger logs the job's new lines with those values redacted (they appear in the task's
log) and fires one event when the job is terminal: its status and the offset reached, from where
``execute_complete`` prints anything later.

Batching: all triggers of one triggerer process whose jobs run on the same executor config (and connection) share
one poller. Each round it makes a single ``executor.poll_many({handle: offset, ...})`` call in a worker thread, so
a hundred deferred Slurm tasks on one cluster cost one SSH round trip per round, not a hundred, and the event loop
never blocks on the backend.

Cancelling: ``on_kill`` (called by Airflow 3.3's triggerer only when a user acts on the deferred task: mark failed,
mark success, clear) cancels the job when the task instance has ended (marked failed or success, its run marked
failed). A cleared task instance is going to run again, and its next try re-attaches to the job, so the job is left
running (a clear means "run this task again", and a job that can still be used is never replaced). ``cleanup`` runs
on every exit, including a triggerer restart or the trigger moving to another triggerer, so it cancels nothing (it is
not overridden; the trigger leaves its poller when ``run`` ends): the job keeps running and is followed again
wherever the trigger resumes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from nemorun_core.executors.base import Executor, JobHandle, JobStatus

log = logging.getLogger(__name__)

# Consecutive failed poll rounds after which the waiting triggers fail (each failure is logged): a cluster that is
# unreachable for a moment must not fail every deferred task, one that stays unreachable must not hang them forever.
MAX_POLL_FAILURES = 5
# Task instance states after which a killed trigger's job is cancelled; any other state (none, scheduled, queued,
# running, deferred...) means the task was cleared and runs again. "unknown": the state could not be read.
_ENDED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed", "unknown"})
#: Task instance states, read while a task process is being killed, that mean "a new try of this task instance is
#: coming" (a clear: ``restarting`` while the killed try still runs, then none / scheduled / queued): its job is left
#: running for that try to re-attach to. Any other state (failed, success, running for an execution timeout or a
#: worker shutdown, unknown) cancels the job.
RERUN_STATES = frozenset({"restarting", "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule"})


def read_task_state(dag_id: str, run_id: str, task_id: str, map_index: int = -1, timeout: float = 3.0) -> str:
    """The task instance's state now, through the task runner's channel to Airflow (``"none"`` for no state,
    ``"unknown"`` when it cannot be read within ``timeout`` seconds).

    Blocking, at most ``timeout``. Safe to call from a signal handler: the request runs in a helper thread, so a
    request the interrupted code was making on the same channel cannot deadlock it (it times out instead).
    """
    import threading

    found: list[str] = []

    def ask() -> None:
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=[task_id], run_ids=[run_id],
                                                         map_index=map_index)
            found.append(_state_name(states, run_id, task_id, map_index))
        except Exception as exc:  # an older Airflow or a broken channel: a kill must still cancel
            log.warning("cannot read the state of task %s: %s: %s", task_id, type(exc).__name__, exc)

    thread = threading.Thread(target=ask, name="nemorun-task-state", daemon=True)
    thread.start()
    thread.join(timeout)
    return found[0] if found else "unknown"


def _state_name(states: dict[str, Any], run_id: str, task_id: str, map_index: int | None) -> str:
    key = task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"
    state = states.get(run_id, {}).get(key, "unknown")
    return "none" if state is None else str(getattr(state, "value", state))


class NemorunJobTrigger(BaseTrigger):
    """Fires one event when a nemorun job is terminal; logs its new lines meanwhile.

    The event's payload: ``{"handle": {...}, "status": {...}, "offset": n}``, or ``{"handle": {...}, "error": "..."}``
    when the job could not be followed (the executor could not be built, the backend stayed unreachable).

    Args:
        handle: the job's handle (``JobHandle.to_dict()``).
        executor: the executor's config from :func:`nemorun_core.experiment.jobref.executor_config` (secrets
            redacted; they come back from the triggerer's environment when it has them).
        connections: the executor's credential slots -> Airflow connection ids, resolved again here
            (:func:`~nemorun_airflow.hooks.resolve_credentials`): the kwargs name connections, never secrets.
        ssh_conn_id: the ``"ssh"`` slot under its earlier name (triggers serialized by an earlier nemorun).
        offset: the first log line (0-based) to log.
        poll_interval: seconds between polls.
        cancel_on_kill: cancel the job when the task is killed (False for a sensor: the job is not its own).
        masks: salted digests of the task's secret values (:func:`nemorun_core.secrets.secret_digests`), so that
            the job's lines are logged with them redacted although the triggerer is never given the values.
    """

    def __init__(self, handle: dict[str, Any], executor: dict[str, Any], ssh_conn_id: str | None = None,
                 offset: int = 0, poll_interval: float = 5.0, cancel_on_kill: bool = True,
                 masks: dict[str, Any] | None = None, connections: dict[str, str] | None = None) -> None:
        super().__init__()
        self.handle = dict(handle)
        self.executor = dict(executor)
        self.connections = {**(connections or {}), **({"ssh": ssh_conn_id} if ssh_conn_id else {})}
        self.offset = int(offset)
        self.poll_interval = float(poll_interval)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.masks = dict(masks or {})
        self._loaded: Executor | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("nemorun_airflow.triggers.NemorunJobTrigger", {
            "handle": self.handle, "executor": self.executor, "connections": self.connections,
            "offset": self.offset, "poll_interval": self.poll_interval, "cancel_on_kill": self.cancel_on_kill,
            "masks": self.masks,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from nemorun_core.secrets import secret_values

        handle = JobHandle.from_dict(self.handle)
        try:
            executor = await self._executor()
        except Exception as exc:
            yield TriggerEvent({"handle": self.handle, "error": f"cannot build the executor: {exc}"})
            return
        secrets = secret_values(_plain(executor))
        offset = self.offset
        poller = _poller_for(self._group_key(), executor)
        sub = poller.subscribe(handle, offset, self.poll_interval)
        try:
            while True:
                update = await sub.queue.get()
                if isinstance(update, BaseException):
                    yield TriggerEvent({"handle": self.handle, "error": f"polling the job failed {MAX_POLL_FAILURES} "
                                        f"times in a row; last error: {type(update).__name__}: {update}"})
                    return
                status, lines = update
                if lines and (secrets or self.masks):
                    lines = await asyncio.to_thread(self._redact, lines, secrets)
                for line in lines:
                    self.log.info("%s", line)
                offset += len(lines)
                if status.is_terminal:
                    yield TriggerEvent({"handle": self.handle, "status": status.to_dict(), "offset": offset})
                    return
        finally:
            poller.unsubscribe(sub)

    def _redact(self, lines: list[str], secrets: list[str]) -> list[str]:
        from nemorun_core.secrets import redact_digested, redact_text

        return [redact_digested(redact_text(line, secrets), self.masks) for line in lines]

    async def on_kill(self) -> None:
        """A user acted on the task: cancel the job, unless the task instance was cleared to run again (its next try
        re-attaches to the job). Idempotent; a finished job keeps its state."""
        if not self.cancel_on_kill:
            return
        handle = JobHandle.from_dict(self.handle)
        state = await self._task_state()
        if state not in _ENDED:
            self.log.info("task cleared (now %s): job %s (%s %s) keeps running; the next try re-attaches to it",
                          state or "none", handle.key, handle.backend, handle.job_id)
            return
        executor = await self._executor()
        self.log.info("task killed (%s): cancelling job %s (%s %s)", state, handle.key, handle.backend, handle.job_id)
        await asyncio.to_thread(executor.cancel, handle)

    async def _task_state(self) -> str | None:
        """The task instance's state now, through the triggerer's API client; ``"unknown"`` when it cannot be read
        (then the job is cancelled, as for any kill)."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return "unknown"
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = await asyncio.to_thread(RuntimeTaskInstance.get_task_states, dag_id=ti.dag_id,
                                             task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index)
        except Exception as exc:  # an older Airflow or a broken channel: a kill must still cancel
            self.log.warning("cannot read the state of task %s: %s; treating it as killed", ti.task_id, exc)
            return "unknown"
        state = _state_name(states, ti.run_id, ti.task_id, ti.map_index)
        return None if state == "none" else state

    async def _executor(self) -> Executor:
        if self._loaded is None:
            from nemorun_airflow.hooks import resolve_credentials
            from nemorun_core.experiment.jobref import load_executor  # the executor config the operator stored

            executor = await asyncio.to_thread(load_executor, self.executor)
            if self.connections:  # reads the connections: off the event loop
                executor = await asyncio.to_thread(resolve_credentials, executor, self.connections)
            self._loaded = executor
        return self._loaded

    def _group_key(self) -> str:
        return json.dumps({"executor": self.executor, "connections": self.connections}, sort_keys=True)


def _plain(executor: Executor) -> Any:
    from nemorun_core.config import serialize

    try:
        return serialize.encode(executor, payload=True)
    except Exception:
        return {}


class _Subscription:
    """One trigger's place in a poller: its job, the next log line it wants, and where its updates arrive."""

    def __init__(self, handle: JobHandle, offset: int, interval: float) -> None:
        self.handle = handle
        self.offset = offset
        self.interval = interval
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


class _Poller:
    """Polls every subscribed job of one executor config with one ``poll_many`` call per round.

    Lives on one event loop; starts its round loop with the first subscriber and ends when the last one leaves.
    A round delivers to each subscriber its job's status and the lines past its own offset (two triggers may follow
    one job from different offsets); a subscriber that got a terminal status is dropped at once.
    """

    def __init__(self, key: str, executor: Executor) -> None:
        self.key = key
        self.executor = executor
        self.subscribers: list[_Subscription] = []
        self.closed = False
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, handle: JobHandle, offset: int, interval: float) -> _Subscription:
        sub = _Subscription(handle, offset, interval)
        self.subscribers.append(sub)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"nemorun-poller-{id(self)}")
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    async def _run(self) -> None:
        failures = 0
        try:
            while self.subscribers:
                subs = list(self.subscribers)
                offsets: dict[JobHandle, int] = {}
                for sub in subs:
                    offsets[sub.handle] = min(sub.offset, offsets.get(sub.handle, sub.offset))
                try:
                    results = await asyncio.to_thread(self.executor.poll_many, offsets)
                except Exception as exc:  # the backend's errors are many kinds; each is reported, none kills the loop
                    failures += 1
                    log.warning("nemorun poll of %d job(s) failed (%d in a row): %s", len(offsets), failures, exc)
                    if failures >= MAX_POLL_FAILURES:
                        for sub in subs:
                            sub.queue.put_nowait(exc)
                            self.unsubscribe(sub)
                else:
                    failures = 0
                    self.rounds += 1
                    for sub in subs:
                        self._deliver(sub, offsets[sub.handle], results[sub.handle])
                if not self.subscribers:
                    break
                await asyncio.sleep(min(sub.interval for sub in self.subscribers))
        finally:
            # No await between the last check of subscribers and this: a trigger subscribing now gets a new poller.
            self.closed = True
            pollers = _POLLERS.get(asyncio.get_running_loop())
            if pollers is not None and pollers.get(self.key) is self:
                del pollers[self.key]

    def _deliver(self, sub: _Subscription, base: int, result: tuple[JobStatus, list[str]]) -> None:
        status, lines = result
        mine = lines[sub.offset - base:]
        sub.offset += len(mine)
        sub.queue.put_nowait((status, mine))
        if status.is_terminal:
            self.unsubscribe(sub)


# Pollers by event loop, then by executor config. Module level because the triggers of one triggerer process share
# nothing else: each is built from its own kwargs. Keyed by loop (weakly) since asyncio objects belong to one loop
# (dag.test() runs each trigger in a fresh one).
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Poller]] = weakref.WeakKeyDictionary()


def _poller_for(key: str, executor: Executor) -> _Poller:
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(key)
    if poller is None or poller.closed:
        poller = pollers[key] = _Poller(key, executor)
    return poller


__all__ = ["MAX_POLL_FAILURES", "NemorunJobTrigger"]
