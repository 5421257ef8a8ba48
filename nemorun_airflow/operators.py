"""``NemorunOperator``: run one nemorun task (a ``run.Partial``, ``run.Config`` or ``run.Script``) on any executor.

    import nemorun_core as run
    from nemorun_airflow import NemorunOperator

    train = NemorunOperator(
        task_id="train",
        task=run.Partial(train_fn, lr=3e-4),
        executor=run.SlurmExecutor(partition="a100", account="dept", time="04:00:00"),
        connections={"ssh": "slurm_login"},            # the executor's "ssh" slot (its tunnel) from this connection
        overrides=["data.date={{ dag_run.run_after | ds }}", "lr={{ params.lr }}"],
        deferrable=True,
    )

The operator submits the job, streams its log lines into the task log and pushes a small dict to XCom: the job's
handle, final state, exit code, log location and the task's return value (when it is JSON and small). A job that
ends FAILED or CANCELLED fails the task with an ``AirflowException`` naming the job, its exit status and its log.

Re-attach, never resubmit. The job key is stable per task instance (dag id, run id, task id, map index) plus an
attempt number. A retried or cleared task first looks for its job, the way Airflow 3.3's ``ResumableJobMixin`` does:
the handle kept in the task state store is asked for its status (running or pending: follow it; succeeded: return its
result without running again; failed, cancelled or gone: submit a fresh job under the next attempt's key), and
``executor.find`` by key covers what the store cannot: a worker that died between submitting and recording the
handle, and Airflow versions without a task state store. Submitting, re-attaching and the record (written to the task
state store before the submission and again with the handle) are :func:`nemorun_core.orchestration.attach_or_submit`.

The rule for a clear: "a retry re-attaches to a running job", and a clear is treated as a retry, deferred or not.
Clearing a running (synchronous) task makes Airflow kill its try; ``on_kill`` then reads the task instance's state,
sees ``restarting`` and leaves the job running, and the new try re-attaches to it (a deliberate re-run of a
finished job is a new DAG run, or clearing after the job ended: a failed job gets a fresh attempt). Any other kill
(marked failed or success, run marked failed, ``execution_timeout``, worker shutdown) cancels the job, also when it
comes between the submission and the hand-over of a deferral to the triggerer, or after the hand-over but before a
triggerer has started the trigger (Airflow then drops the trigger without running it): the provider's listener
(:mod:`nemorun_airflow.listener`, run by the API server or scheduler that ends the task) cancels the job from what
the task stored. The listener acts for a synchronous task too, at once: the worker's ``on_kill`` comes only after its
next heartbeat (``[workers] min_heartbeat_interval``, 5 s by default) has told it that the task was ended; both
cancel through the job contract, and a job that has ended is not sent a second cancel. A clear never cancels.

The mixin itself is not inherited: its ``execute_resumable`` submits and polls in one synchronous call (no place to
defer to the triggerer), resubmits under the same external id space (nemorun needs a new key per attempt, or the
backend's idempotency would hand back the failed job), and reads the store only, without the ``find`` fallback.
The same decisions are made here, on :class:`~nemorun_core.executors.base.JobState` values instead of raw strings.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from nemorun_airflow.links import NemorunBackendLink, NemorunJobLogLink, log_url
from nemorun_airflow.templating import apply_fields, collect_fields
from nemorun_core import orchestration
from nemorun_core.errors import ConfigError, ExperimentError
from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus
from nemorun_core.executors.jobkey import JobKey

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nemorun_core.experiment.tasks import TaskSpec

#: Key of the task state store entry that holds ``{"attempt": n, "key": "...", "handle": {...} or None}`` of the
#: task instance's job (``handle`` None: recorded just before its submission); with a handle it adds ``executor``
#: (its config, secrets redacted) and ``connections`` (slot -> connection id) for nemorun_airflow/listener.py.
STATE_KEY = "nemorun_job"
#: The orchestrator's name in job directories: ``$NEMORUN_HOME/airflow/...``.
ORCHESTRATOR = "airflow"
#: Default limit for the task's return value in XCom (JSON bytes); larger values are left in the job directory.
XCOM_RESULT_MAX_BYTES = 64 * 1024
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_TEMPLATED = ("{{", "{%")


def job_key(dag_id: str, run_id: str, task_id: str, map_index: int = -1, attempt: int = 0) -> str:
    """The job key of a task instance's ``attempt``: ``airflow-<dag>-<run>-<hash>/<task>[-<map index>]/<attempt>``.

    Ids are made safe for file names, Slurm job names and container labels; the hash of the exact dag and run ids
    keeps two runs apart when their safe forms coincide.
    """
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:8]
    task = _slug(task_id, 60) + (f"-{map_index}" if map_index is not None and map_index >= 0 else "")
    return str(JobKey(f"airflow-{_slug(dag_id, 60)}-{_slug(run_id, 60)}-{digest}", task, int(attempt)))


def job_dir_for(key: str | JobKey) -> str:
    """Where the job's local files live: ``$NEMORUN_HOME/airflow/<run part>/<task part>[/attempt-N]``."""
    from nemorun_core.home import default_home

    return orchestration.job_dir(default_home(), ORCHESTRATOR, key)


def _slug(text: str, limit: int) -> str:
    return (_SLUG.sub("-", str(text)).strip("-.") or "x")[:limit]


class NemorunOperator(BaseOperator):
    """Submit a nemorun task as a job, stream its log, wait (in the worker or the triggerer) and return a summary.

    Args:
        task: what to run: ``run.Partial`` (built, then called), ``run.Config`` (built) or ``run.Script``.
        executor: where to run it (default ``run.LocalExecutor()``).
        connections: the executor's credential slots -> Airflow connection ids (``{"ssh": "slurm_login"}``), each
            resolved by its connection type (:func:`~nemorun_airflow.hooks.resolve_credentials`) in every process
            that reaches the job, so no secret is ever stored with the DAG, in XCom or in trigger kwargs.
        ssh_conn_id: the ``"ssh"`` slot under its earlier name: ``ssh_conn_id="x"`` is ``connections={"ssh": "x"}``.
        name: the job's name (default: the task id).
        executor_fields: executor field -> a Jinja template for it, rendered when the task runs
            (``{"partition": "{{ params.partition }}", "env_vars": {"DAY": "{{ ds }}"}}``): any ``str`` or
            ``dict[str, str]`` field of the executor (a dict's keys are merged into the executor's). Templates
            written in the executor itself are rendered too, where its checks accept them (``env_vars`` values).
            The rendered executor is checked again; a template that cannot be rendered, or renders to a value the
            executor refuses, is a ConfigError naming the field, with a fix (:mod:`nemorun_airflow.templating`).
        overrides: ``path=value`` overrides in the ``nemorun`` command-line grammar, applied to ``task`` before
            submission; templated (``"data.date={{ dag_run.run_after | ds }}"``: ``ds`` exists only in runs with
            a logical date). Overrides without a template are checked when the DAG is parsed; a template that
            cannot be rendered is a ConfigError naming the override, with a fix.
        deferrable: wait in the triggerer instead of the worker (default: ``[operators] default_deferrable``).
        poll_interval: seconds between status and log polls.
        xcom_result_max_bytes: the task's return value goes to XCom only when its JSON is at most this long.
        references: where ``{name.output...}`` and ``{name.dir}`` in ``task`` find their values: experiment task
            name -> the Airflow task id whose XCom holds it (default: the name itself). Set by
            :func:`~nemorun_airflow.task_group.experiment_task_group`.
        airflow_executor: the Airflow executor that runs this task (BaseOperator's ``executor``, renamed here).
        **kwargs: passed to ``BaseOperator`` (``task_id``, ``retries``, ``pool``...).

    Raises:
        ConfigError, ExperimentError: at DAG parse time, for an invalid task, executor or override.
    """

    template_fields: Sequence[str] = ("overrides", "executor_fields")
    template_fields_renderers = {"overrides": "json", "executor_fields": "json"}
    ui_color = "#76b900"
    operator_extra_links = (NemorunJobLogLink(), NemorunBackendLink())

    def __init__(
        self,
        *,
        task: Any,
        executor: Executor | None = None,
        ssh_conn_id: str | None = None,
        connections: Mapping[str, str] | None = None,
        name: str | None = None,
        overrides: Sequence[str] | None = None,
        executor_fields: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        xcom_result_max_bytes: int = XCOM_RESULT_MAX_BYTES,
        references: Mapping[str, str] | None = None,
        airflow_executor: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(task, _PartialArgs):
            # A mapped instance, built from NemorunOperator.partial(): there ``executor`` is Airflow's.
            airflow_executor, executor, task = executor, task.executor, task.task
        # BaseOperator's own ``executor`` (which Airflow executor runs the task) is ``airflow_executor`` here.
        super().__init__(executor=airflow_executor, **kwargs)
        checked = _check_arguments(self.task_id, task=task, executor=executor, ssh_conn_id=ssh_conn_id, name=name,
                                   overrides=overrides, poll_interval=poll_interval,
                                   xcom_result_max_bytes=xcom_result_max_bytes, connections=connections)
        self.job_task, self.job_executor, self.job_name, self.overrides = checked
        self.executor_fields = collect_fields(self.job_executor, executor_fields, path=self.task_id)
        self.ssh_conn_id = ssh_conn_id
        from nemorun_airflow.hooks import connection_mapping

        self.connections = connection_mapping(self.job_executor, connections, ssh_conn_id, path=self.task_id)
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.xcom_result_max_bytes = xcom_result_max_bytes
        self.references = dict(references or {})
        self._following: tuple[Executor, JobHandle] | None = None
        self._instance: tuple[str, str, str, int] | None = None
        # (executor, key, job dir) of a submission in flight: a kill during it finds the job by key.
        self._submitting: tuple[Executor, JobKey, str] | None = None
        #: Extra link name -> URL of the job this try follows (:mod:`nemorun_airflow.links`).
        self.job_links: dict[str, str] = {}
        # OpenLineage facet fields of that job (:mod:`nemorun_airflow.lineage`).
        self._lineage: dict[str, Any] | None = None

    @classmethod
    def partial(cls, *, task_id: str, task: Any, executor: Executor | None = None,
                airflow_executor: str | None = None, **kwargs: Any) -> Any:
        """The arguments that every instance of a mapped task shares: ``NemorunOperator.partial(...).expand(...)``.

        Takes the constructor's arguments (``executor`` is the nemorun executor, ``airflow_executor`` Airflow's) and
        checks them when the DAG is parsed, as the constructor does; the expanded ones are checked when each instance
        starts, before anything is submitted. Each instance gets its own job key (the map index is part of it).

        The task and the executor are handed to Airflow as one opaque value: Airflow keeps the name ``executor`` for
        its own executor, and writes every partial argument it does not know into the serialized DAG with ``str()``,
        which would put the task's arguments and the executor's environment (secrets) there.

        Raises:
            ConfigError, ExperimentError: for an invalid task, executor or argument.
        """
        checks = {k: kwargs[k] for k in ("ssh_conn_id", "connections", "name", "overrides", "poll_interval",
                                         "xcom_result_max_bytes") if k in kwargs}
        job_task, job_executor, _, _ = _check_arguments(task_id, task=task, executor=executor, **checks)
        collect_fields(job_executor, kwargs.get("executor_fields"), path=task_id)
        if airflow_executor is not None:
            kwargs["executor"] = airflow_executor
        return super().partial(task_id=task_id, task=_PartialArgs(job_task, job_executor), **kwargs)

    # -- Airflow entry points -------------------------------------------------------------------------------------
    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Context, jinja_env: Any,
                                   seen_oids: set[int]) -> None:
        # The one rendering step that a plain task and a mapped instance both go through (a mapped task renders its
        # instance with this method, not with render_template_fields).
        try:
            super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        except Exception:
            if parent is self and ("overrides" in template_fields or "executor_fields" in template_fields):
                self._explain_render_error(context, jinja_env)
            raise
        if parent is self:
            # Before Airflow stores the rendered fields: secret values that overrides bring in are masked there too.
            _mask(self._secrets(self.job_executor))
            try:
                _mask(self._secrets(self._rendered_executor()))  # and those rendered into executor fields
            except ConfigError:
                pass  # execute() reports it

    def _explain_render_error(self, context: Context, jinja_env: Any) -> None:
        """Raise a ConfigError naming the override whose template failed, with a fix, instead of Jinja's error."""
        for i, text in enumerate(self.overrides or ()):
            if not isinstance(text, str):
                continue
            try:
                self.render_template(text, context, jinja_env)
            except Exception as exc:  # noqa: BLE001 - any template error: this is the one to explain
                raise ConfigError(
                    f"override {i} {text!r} cannot be rendered: {type(exc).__name__}: {exc}. {_render_hint(exc)}",
                    path=f"{self.task_id}.overrides") from None
        for name, value in (self.executor_fields or {}).items():
            for key, text in (value.items() if isinstance(value, Mapping) else [(None, value)]):
                try:
                    self.render_template(text, context, jinja_env)
                except Exception as exc:  # noqa: BLE001 - any template error: this is the one to explain
                    field = name if key is None else f"{name}[{key!r}]"
                    raise ConfigError(
                        f"executor field {field} {text!r} cannot be rendered: {type(exc).__name__}: {exc}. "
                        f"{_render_hint(exc)}", path=f"{self.task_id}.executor_fields.{name}") from None

    def execute(self, context: Context) -> dict[str, Any]:
        executor = self._executor()
        spec = self._spec(context, executor)
        secrets = self._secrets(executor, spec.task)
        _mask(secrets)
        self._instance = _instance_of(context)
        handle, status = self._attach_or_submit(spec, context)
        self._record_job(context, executor, handle)
        if status is not None and status.state is JobState.SUCCEEDED:
            self.log.info("job %s already succeeded: not run again", handle.key)
            if self._lineage is not None:
                self._lineage["state"] = status.state.value
            return self._summary(spec, handle, status, secrets)
        # From here until the trigger is registered (the task process has handed it over), a kill reaches on_kill:
        # the job is this process's to cancel. Kept when follow() raises: Airflow calls on_kill after an execution
        # timeout has unwound execute().
        self._following = (executor, handle)
        if self.deferrable:
            from nemorun_airflow.triggers import NemorunJobTrigger
            from nemorun_core.experiment.jobref import executor_config
            from nemorun_core.secrets import secret_digests

            config = executor_config(executor)
            store = context.get("task_state_store")
            if store is not None:
                # For the listener (nemorun_airflow/listener.py), which cancels the job when the task is ended before
                # a triggerer runs the trigger: what the trigger gets, from the store (secrets redacted, ids only).
                store.set(STATE_KEY, {"attempt": JobKey.parse(handle.key).attempt, "key": handle.key,
                                      "handle": handle.to_dict(), "executor": config,
                                      "connections": dict(self.connections)})
            self.defer(trigger=NemorunJobTrigger(handle=handle.to_dict(), executor=config,
                                                 connections=self.connections, offset=0,
                                                 poll_interval=self.poll_interval, masks=secret_digests(secrets)),
                       method_name="execute_complete")
        status, _ = follow(executor, handle, 0, self.poll_interval, self.log, secrets)
        self._following = None
        if self._lineage is not None:
            self._lineage["state"] = status.state.value
        return self._summary(spec, handle, status, secrets)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: print what the log gained since, then succeed or fail like ``execute``."""
        from nemorun_core.experiment.tasks import TaskSpec
        from nemorun_core.secrets import redact_text

        executor = self._executor()
        handle = JobHandle.from_dict(event["handle"])
        secrets = self._secrets(executor)
        if event.get("error"):
            raise AirflowException(f"following job {handle.key} ({handle.backend} {handle.job_id}) failed: "
                                   f"{event['error']}; the job may still be running: a retry re-attaches to it")
        for line in executor.logs(handle, offset=int(event.get("offset", 0))):
            self.log.info("%s", redact_text(line, secrets))
        status = JobStatus.from_dict(event["status"])
        self._record_job(context, executor, handle, status.state.value)
        return self._summary(TaskSpec(self.job_name, self.job_task, executor, []), handle, status, secrets)

    def on_kill(self) -> None:
        """Cancel the job this task process submitted or follows, unless the task instance was cleared to run again.

        Airflow calls this when the task is killed or times out: a user marked it failed or success, its run was
        marked failed, the worker is shutting down, or ``execution_timeout`` passed. Then the job is cancelled. A
        clear is different: Airflow kills the running try (its state becomes ``restarting``) and starts a new one,
        and "clear" means "run this task again", not "run a second job": the job is left running and the new try
        re-attaches to it through the task state store (or by key), as a retry does; a clear after the job ended
        gets its result (succeeded) or a fresh attempt (failed). The deferred path makes the same decision in
        :meth:`NemorunJobTrigger.on_kill <nemorun_airflow.triggers.NemorunJobTrigger.on_kill>`.

        The job is this process's from the moment its submission starts (it is then found by key) or it is
        re-attached, until its trigger is handed to Airflow, so a task killed while it submits or defers cancels it
        here too. The task instance's state is read
        through Airflow's API (a few seconds at most); when it cannot be read, the job is cancelled.
        """
        following = self._following
        if following is None and self._submitting is not None:
            # Killed while submitting: the backend may have accepted the job already; it is found by its key.
            executor, key, directory = self._submitting
            try:
                handle = executor.find(str(key), directory)
            except Exception as exc:  # noqa: BLE001 - the backend's errors are many kinds; say so and carry on
                self.log.warning("task killed while submitting job %s, which cannot be looked up: %s: %s", key,
                                 type(exc).__name__, exc)
                return
            following = None if handle is None else (executor, handle)
        if following is None:
            return
        executor, handle = following
        from nemorun_airflow.triggers import RERUN_STATES, read_task_state

        state = read_task_state(*self._instance) if self._instance is not None else "unknown"
        if state in RERUN_STATES:
            self.log.info("task cleared (now %s): job %s (%s %s) keeps running; the next try re-attaches to it",
                          state, handle.key, handle.backend, handle.job_id)
            return
        self.log.info("task killed (%s): cancelling job %s (%s %s)", state, handle.key, handle.backend,
                      handle.job_id)
        executor.cancel(handle)

    # -- steps ----------------------------------------------------------------------------------------------------
    def _rendered_executor(self) -> Executor:
        """The executor with the rendered ``executor_fields`` (ConfigError naming the field it refuses)."""
        return apply_fields(self.job_executor, self.executor_fields or {}, path=self.task_id)

    def _executor(self) -> Executor:
        from nemorun_airflow.hooks import resolve_credentials

        try:
            executor = self._rendered_executor()
        except ConfigError as exc:
            raise AirflowFailException(f"task {self.task_id!r}: {exc}") from exc  # a bad input: no retry
        return resolve_credentials(executor.clone(), self.connections)

    def _record_job(self, context: Context, executor: Executor, handle: JobHandle, state: str | None = None) -> None:
        """Remember the job for the extra links (pushed to XCom now, so they work while it runs) and lineage."""
        from nemorun_airflow.lineage import job_facet_fields

        self._lineage = job_facet_fields(executor, handle, state)
        urls = [(NemorunJobLogLink(), log_url(executor.log_location(handle))),
                (NemorunBackendLink(), log_url(executor.job_url(handle)))]
        self.job_links = {link.name: url for link, url in urls}
        for link, url in urls:
            try:
                context["ti"].xcom_push(key=link.xcom_key, value=url)
            except Exception as exc:  # noqa: BLE001 - a link is a convenience: the job goes on without it
                self.log.warning("cannot record the job's %s link: %s: %s", link.name, type(exc).__name__, exc)

    # -- OpenLineage (the provider calls these when it is installed; nemorun_airflow/lineage.py) -------------------
    def get_openlineage_facets_on_start(self) -> Any:
        """The ``nemorun`` run facet: the executor's backend (the job is not known yet when the task starts)."""
        from nemorun_airflow.lineage import job_facet_fields, operator_lineage

        return operator_lineage(self._lineage or job_facet_fields(self.job_executor))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The ``nemorun`` run facet: backend, job id, key, log location and the job's final state."""
        from nemorun_airflow.lineage import job_facet_fields, operator_lineage

        return operator_lineage(self._lineage or job_facet_fields(self.job_executor))

    def _spec(self, context: Context, executor: Executor) -> TaskSpec:
        """The task with the rendered overrides applied and references resolved, checked: nothing is submitted yet."""
        from nemorun_core.config.overrides import apply_overrides
        from nemorun_core.experiment.tasks import TaskSpec, check_task, referenced_tasks, resolve_references

        task = self.job_task
        try:
            if self.overrides:
                task = apply_overrides(copy.deepcopy(task), list(self.overrides))  # it edits in place
            if referenced_tasks(task):
                task = resolve_references(task, lambda dep, field: self._reference(context, dep, field))
            spec = TaskSpec(self.job_name, task, executor, [])
            check_task(spec)
        except (ConfigError, ExperimentError) as exc:
            # A bad input will not fix itself: no retry.
            raise AirflowFailException(f"task {self.task_id!r}: {exc}") from exc
        return spec

    def _reference(self, context: Context, dep: str, field: str) -> Any:
        task_id = self.references.get(dep, dep)
        value = context["ti"].xcom_pull(task_ids=task_id)
        if not isinstance(value, dict) or "handle" not in value:
            raise ExperimentError(
                f"'{{{dep}.{field}}}' refers to Airflow task {task_id!r}, which left no nemorun summary in XCom; "
                f"make {task_id!r} a NemorunOperator upstream of {self.task_id!r} (references maps experiment task "
                "names to task ids)")
        if field == "dir":
            return value["handle"]["job_dir"]
        if "result" not in value:
            raise ExperimentError(f"'{{{dep}.output}}': the result of {task_id!r} is not in XCom: "
                                  f"{value.get('result_note', 'it returned nothing')}")
        return value["result"]

    def _attach_or_submit(self, spec: TaskSpec, context: Context) -> tuple[JobHandle, JobStatus | None]:
        """The job to follow: the one this task instance submitted before when it can still be used, else a new one
        (:func:`nemorun_core.orchestration.attach_or_submit`, with the task state store as the remembered handle
        and the record, written before the submission too).

        Returns the handle and, for a job that existed, its status (None for a job submitted now).
        """
        ti = context["ti"]
        store = context.get("task_state_store")
        first = JobKey.parse(job_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, 0))
        saved = store.get(STATE_KEY) if store is not None else None
        remembered = None
        if isinstance(saved, dict):
            if saved.get("handle"):
                remembered = JobHandle.from_dict(saved["handle"])
            elif saved.get("key"):
                # Recorded just before a submission whose outcome is unknown: look from that attempt on, by key.
                first = JobKey.parse(saved["key"])

        config: dict[str, Any] | None = None

        def record(key: JobKey, handle: JobHandle | None) -> None:
            nonlocal config
            if handle is None:
                self._submitting = (spec.executor, key, job_dir_for(key))
            else:
                self._following = (spec.executor, handle)
            if store is not None:
                entry: dict[str, Any] = {"attempt": key.attempt, "key": str(key),
                                         "handle": handle.to_dict() if handle is not None else None}
                if handle is not None:
                    # For the listener (nemorun_airflow/listener.py), which cancels the job in the process that
                    # ends the task (the API server for a user's mark) at once, without waiting for this worker's
                    # next heartbeat to kill it: the executor's config (secrets redacted) and the connection ids.
                    from nemorun_core.experiment.jobref import executor_config

                    config = config or executor_config(spec.executor)
                    entry.update(executor=config, connections=dict(self.connections))
                store.set(STATE_KEY, entry)

        attached = orchestration.attach_or_submit(spec, first, job_dir_for, remembered=remembered, record=record,
                                                  log=lambda line: self.log.info("%s", line))
        return attached.handle, attached.status

    def _summary(self, spec: TaskSpec, handle: JobHandle, status: JobStatus, secrets: list[str]) -> dict[str, Any]:
        """The XCom value (:func:`nemorun_core.orchestration.job_summary`), or the task's failure for a job that did
        not succeed."""
        import dataclasses

        spec = dataclasses.replace(spec, handle=handle)
        if status.state is not JobState.SUCCEEDED:
            raise AirflowException(str(orchestration.job_error(spec, status, secrets)))
        return orchestration.job_summary(spec.name, spec.kind, spec.executor, handle, status,
                                         value_limit=self.xcom_result_max_bytes, secrets=secrets)

    def _secrets(self, executor: Executor, task: Any = None) -> list[str]:
        """Secret values this task knows of: secret-named executor settings and task arguments, and overrides."""
        return orchestration.known_secrets(executor, self.job_task, task, overrides=self.overrides or ())


class _PartialArgs:
    """The task and executor of a :meth:`NemorunOperator.partial`, kept from Airflow's serialized DAG: ``str()``
    names the task's target and the executor's class only."""

    __slots__ = ("task", "executor")

    def __init__(self, task: Any, executor: Executor) -> None:
        self.task = task
        self.executor = executor

    def __repr__(self) -> str:
        target = getattr(self.task, "__fn_or_cls__", None)
        what = getattr(target, "__qualname__", None) or type(self.task).__name__
        return f"<nemorun task {what} on {type(self.executor).__name__}>"


def follow(executor: Executor, handle: JobHandle, offset: int, poll_interval: float, log: Any,
           secrets: Sequence[str] = ()) -> tuple[JobStatus, int]:
    """Log the job's new lines (secrets redacted) until it is terminal; return its final status and the log offset
    reached. Blocks (:func:`nemorun_core.executors.base.follow_log`)."""
    from nemorun_core.executors.base import follow_log

    return follow_log(executor, handle, lambda line: log.info("%s", line), offset=offset, poll=poll_interval,
                      secrets=list(secrets))


def _instance_of(context: Context) -> tuple[str, str, str, int]:
    ti = context["ti"]
    return ti.dag_id, ti.run_id, ti.task_id, ti.map_index if ti.map_index is not None else -1


def _mask(secrets: Sequence[str]) -> None:
    """Register the values with Airflow's secrets masker (task log, rendered fields)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # an Airflow 3 without it: nemorun's own redaction still applies
        return
    for value in secrets:
        mask_secret(value)


def _check_importable(task: Any, task_id: str) -> None:
    """Refuse functions and classes defined in the DAG file itself: Airflow imports DAG files under a made-up module
    name (``unusual_prefix_<hash>_<file>``) that no job process can import."""
    import fiddle as fdl

    def visit(node: Any, path: str) -> None:
        if isinstance(node, fdl.Buildable):
            target = node.__fn_or_cls__
            module = getattr(target, "__module__", "") or ""
            if module.startswith("unusual_prefix_"):
                name = getattr(target, "__qualname__", repr(target))
                raise ConfigError(
                    f"{name} is defined in the DAG file, which jobs cannot import (Airflow loads DAG files under a "
                    "private module name); move it to a module that the job can import: an installed package, or a "
                    "directory on the job's PYTHONPATH (executor env_vars)", path=path or f"{task_id}.task")
            for key, value in node.__arguments__.items():
                visit(value, f"{path or task_id + '.task'}.{key}")
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f"{path}[{i}]")
        elif isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{path}[{key!r}]")

    visit(task, "")


def _check_arguments(task_id: str, *, task: Any, executor: Any, ssh_conn_id: str | None = None,
                     name: str | None = None, overrides: Any = None, poll_interval: Any = 5.0,
                     xcom_result_max_bytes: Any = XCOM_RESULT_MAX_BYTES,
                     connections: Any = None) -> tuple[Any, Executor, str, list[str]]:
    """The constructor's checks (also run by ``partial``); returns the task, executor, job name and overrides."""
    from nemorun_core.experiment.store import check_name
    from nemorun_core.experiment.tasks import normalize_task

    job_task = normalize_task(task, {})
    _check_importable(job_task, task_id)
    job_executor = _check_executor(executor, task_id)
    from nemorun_airflow.hooks import connection_mapping

    connection_mapping(job_executor, connections, ssh_conn_id, path=task_id)  # slots declared, ids well-formed
    job_name = check_name(name or _slug(task_id, 128), "job name")
    checked_overrides = _check_overrides(overrides, job_task, task_id)
    if not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise ConfigError(f"poll_interval must be a positive number of seconds, not {poll_interval!r}",
                          path=f"{task_id}.poll_interval")
    if not isinstance(xcom_result_max_bytes, int) or xcom_result_max_bytes < 0:
        raise ConfigError(f"xcom_result_max_bytes must be an int >= 0, not {xcom_result_max_bytes!r}",
                          path=f"{task_id}.xcom_result_max_bytes")
    return job_task, job_executor, job_name, checked_overrides


def _check_executor(executor: Any, task_id: str) -> Executor:
    if executor is None:
        from nemorun_core.executors.local import LocalExecutor

        return LocalExecutor()
    if not isinstance(executor, Executor):
        raise ConfigError(f"executor must be a nemorun executor (run.LocalExecutor(), run.SlurmExecutor(...), ...), "
                          f"not {type(executor).__name__}", path=f"{task_id}.executor")
    return executor


# Template variables that a run triggered without a logical date (`{"logical_date": null}` through the REST API, the
# UI's default trigger on Airflow 3) does not have.
_DATED = ("ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "logical_date", "data_interval_start",
          "data_interval_end", "prev_ds", "next_ds", "yesterday_ds", "tomorrow_ds")


def _render_hint(exc: Exception) -> str:
    message = str(exc)
    if type(exc).__name__ == "UndefinedError" and any(f"'{name}'" in message for name in _DATED):
        return ("This run has no logical date (Airflow 3 triggers runs without one unless given): use "
                "'{{ dag_run.run_after | ds }}' for the run's date, or trigger the run with a logical_date.")
    if type(exc).__name__ == "UndefinedError":
        return ("Use a variable every run has ({{ run_id }}, {{ params.NAME }}, {{ dag_run.run_after | ds }}), or "
                "give it a default: {{ params.NAME | default('x') }}.")
    return "Fix the Jinja template of this override."


def _check_overrides(overrides: Any, task: Any, task_id: str) -> list[str]:
    """Check what can be checked at parse time: the list's type, the syntax of every override without a template,
    and that those before the first templated one apply to the task (later ones may depend on a templated value)."""
    from nemorun_core.config import grammar
    from nemorun_core.config.overrides import apply_overrides

    if overrides is None:
        return []
    if isinstance(overrides, str) or not isinstance(overrides, (list, tuple)) or not all(
            isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides must be a list of 'path=value' strings, not {overrides!r}",
                          path=f"{task_id}.overrides")
    templated = [any(t in o for t in _TEMPLATED) for o in overrides]
    for text, is_template in zip(overrides, templated):
        if not is_template:
            grammar.parse(text)
    leading = list(overrides[:templated.index(True)] if True in templated else overrides)
    if leading:
        apply_overrides(copy.deepcopy(task), leading)
    # The same list, not a copy: Airflow renders no value that a mapped task got from XCom, and knows it by identity.
    return overrides if isinstance(overrides, list) else list(overrides)


__all__ = ["NemorunOperator", "STATE_KEY", "XCOM_RESULT_MAX_BYTES", "follow", "job_dir_for", "job_key"]
