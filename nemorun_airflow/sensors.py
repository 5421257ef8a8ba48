"""``NemorunJobSensor``: wait for a nemorun job that was submitted elsewhere (an experiment, the CLI, another DAG).

    from nemorun_airflow import NemorunJobSensor

    wait = NemorunJobSensor(task_id="wait_train", experiment_id="{{ params.exp_id }}", task_name="train",
                            deferrable=True)

The job is named either by an experiment id and task name (read from the nemorun store, ``$NEMORUN_HOME``, which
the worker must see; a task its experiment has not submitted yet is waited for) or by its handle plus the executor
that reaches it (a handle dict, its JSON, or a template that renders to either, e.g. from another task's XCom). The
sensor succeeds when the job SUCCEEDED and fails (without retries) when it ended FAILED or CANCELLED. Killing the
sensor never cancels the job: it is not the sensor's.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from nemorun_core.errors import ConfigError, ExecutorError
from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus
from nemorun_core.executors.jobkey import JobKey

if TYPE_CHECKING:
    from airflow.sdk import Context


class NemorunJobSensor(BaseSensorOperator):
    """Wait until a nemorun job is terminal; succeed if it SUCCEEDED.

    Args:
        handle: the job's handle: a dict (``JobHandle.to_dict()``, or a NemorunOperator's XCom summary, which holds
            it under ``"handle"``), or its JSON; templated. Needs ``executor``.
        executor: the executor that reaches the job (its tunnel, its engine); with ``handle``.
        experiment_id: the id of an experiment in the nemorun store; templated. Needs ``task_name``.
        task_name: the task of that experiment; templated.
        connections: the executor's credential slots -> Airflow connection ids (``{"ssh": "slurm_login"}``),
            resolved by connection type (:func:`~nemorun_airflow.hooks.resolve_credentials`).
        ssh_conn_id: the ``"ssh"`` slot under its earlier name: ``ssh_conn_id="x"`` is ``connections={"ssh": "x"}``.
        deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
        airflow_executor: the Airflow executor that runs this task (BaseOperator's ``executor``, renamed here).
        **kwargs: passed to ``BaseSensorOperator`` (``poke_interval``, ``timeout``, ``mode``...).

    Raises:
        ConfigError: at DAG parse time, when neither or both ways of naming the job are given.
    """

    template_fields: Sequence[str] = ("handle", "experiment_id", "task_name")
    ui_color = "#a3d65c"

    def __init__(self, *, handle: Any = None, executor: Executor | None = None, experiment_id: str | None = None,
                 task_name: str | None = None, ssh_conn_id: str | None = None,
                 connections: dict[str, str] | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 airflow_executor: str | None = None, **kwargs: Any) -> None:
        # BaseOperator's own ``executor`` (which Airflow executor runs the task) is ``airflow_executor`` here.
        super().__init__(executor=airflow_executor, **kwargs)
        where = f"{self.task_id}"
        if (handle is None) == (experiment_id is None):
            raise ConfigError("give either handle= (with executor=) or experiment_id= (with task_name=)", path=where)
        if handle is not None and executor is None:
            raise ConfigError("handle= needs executor=: the executor that reaches the job (run.SlurmExecutor(...), "
                              "...)", path=f"{where}.executor")
        if executor is not None and not isinstance(executor, Executor):
            raise ConfigError(f"executor must be a nemorun executor, not {type(executor).__name__}",
                              path=f"{where}.executor")
        if experiment_id is not None and not task_name:
            raise ConfigError("experiment_id= needs task_name=: the experiment task to wait for",
                              path=f"{where}.task_name")
        self.handle = handle
        self.job_executor = executor
        self.experiment_id = experiment_id
        self.task_name = task_name
        self.ssh_conn_id = ssh_conn_id
        from nemorun_airflow.hooks import connection_mapping

        # An experiment's executor is known only when the sensor runs: its slots are checked then.
        self.connections = (connection_mapping(executor, connections, ssh_conn_id, path=where) if executor is not None
                            else {**(connections or {}), **({"ssh": ssh_conn_id} if ssh_conn_id else {})})
        self.deferrable = deferrable

    def execute(self, context: Context, event: Any = None) -> None:
        if not self.deferrable:
            return super().execute(context)
        target = self._target()
        if target.handle is None:
            # Not submitted yet (an experiment's driver submits it later): look again after poke_interval.
            self._unsubmitted(target)
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=self.poke_interval)), method_name="execute")
        if self._check(target.executor.status(target.handle), target):
            return None
        from nemorun_airflow.triggers import NemorunJobTrigger
        from nemorun_core.experiment.jobref import executor_config

        self.defer(trigger=NemorunJobTrigger(handle=target.handle.to_dict(), executor=executor_config(target.executor),
                                             connections=self.connections, offset=0,
                                             poll_interval=self.poke_interval, cancel_on_kill=False),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def poke(self, context: Context) -> bool:
        target = self._target()
        if target.handle is None:
            return self._unsubmitted(target)
        return self._check(target.executor.status(target.handle), target)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event.get("error"):
            # The backend stayed unreachable, not a job that failed: a retry (``retries``) waits again.
            raise AirflowException(f"following job {event['handle'].get('key')} failed: {event['error']}")
        self._check(JobStatus.from_dict(event["status"]), self._target())

    def _check(self, status: JobStatus, target: _Target) -> bool:
        handle = target.handle
        assert handle is not None
        self.log.info("job %s (%s %s): %s", handle.key, handle.backend, handle.job_id, status.state.value)
        if status.state is JobState.SUCCEEDED:
            return True
        if status.is_terminal:
            from nemorun_core.experiment.jobref import result_spec
            from nemorun_core.orchestration import job_error, known_secrets

            spec = result_spec(target.name, "partial", target.executor, handle)
            raise AirflowFailException(str(job_error(spec, status, known_secrets(target.executor))))
        return False

    def _unsubmitted(self, target: _Target) -> bool:
        """False (keep waiting) for an experiment task not submitted yet; fails for one that never will be."""
        status = target.status
        if status is not None and status.is_terminal:
            raise AirflowFailException(
                f"task {target.name!r} of experiment {self.experiment_id!r} ended {status.state.value} without "
                f"being submitted: {status.message or 'no job was started'}")
        self.log.info("task %s of experiment %s is not submitted yet", target.name, self.experiment_id)
        return False

    def _target(self) -> _Target:
        """What to watch: the executor (with the connection's tunnel), the handle (None: not submitted yet)."""
        from nemorun_airflow.hooks import resolve_credentials

        if self.experiment_id is not None:
            from nemorun_core.experiment.experiment import Experiment

            exp = Experiment.from_id(str(self.experiment_id))
            spec = exp.spec(str(self.task_name))
            return _Target(resolve_credentials(spec.executor, self.connections), spec.handle, spec.name, spec.status)
        handle = _parse_handle(self.handle, self.task_id)
        try:
            name = JobKey.parse(handle.key).task
        except ExecutorError:  # a handle from elsewhere, under a key of its own form
            name = handle.key
        return _Target(resolve_credentials(self.job_executor, self.connections), handle, name, None)


@dataclasses.dataclass
class _Target:
    executor: Executor
    handle: JobHandle | None
    name: str
    status: JobStatus | None


def _parse_handle(value: Any, task_id: str) -> JobHandle:
    """A handle from a dict, a NemorunOperator summary, JSON, or the Python repr a template renders a dict to."""
    data = value
    if isinstance(value, str):
        text = value.strip()
        try:
            data = json.loads(text)
        except ValueError:
            try:
                data = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                data = None
    if isinstance(data, dict) and isinstance(data.get("handle"), dict):
        data = data["handle"]
    if not isinstance(data, dict):
        raise AirflowFailException(f"task {task_id!r}: handle must be a job handle (a dict or its JSON), not "
                                   f"{str(value)[:200]!r}")
    return JobHandle.from_dict(data)


__all__ = ["NemorunJobSensor"]
