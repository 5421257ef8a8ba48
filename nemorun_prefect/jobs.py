"""A nemorun job as Prefect's ``JobBlock`` / ``JobRun``: saved once, triggered from any flow, like a Kubernetes job.

    import nemorun_core as run
    from nemorun_prefect.blocks import NemorunSlurmExecutor
    from nemorun_prefect.jobs import NemorunJob

    NemorunJob.from_task(run.Partial(train, lr=3e-4), NemorunSlurmExecutor.load("a100"), name="train").save("train")

    @flow
    async def train_flow():
        job = await NemorunJob.load("train")
        job_run = await job.trigger()            # submitted, or re-attached on a retry
        await job_run.wait_for_completion()      # the job's log in the flow run's log; raises if it failed
        return await job_run.fetch_result()      # the task's return value

:class:`NemorunJob` implements :class:`prefect.blocks.abstract.JobBlock` and :class:`NemorunJobRun` implements
:class:`prefect.blocks.abstract.JobRun`, with their method names and their ``async`` methods. The blocking work
(submitting, following the log, reading the result) runs in a worker thread, so the event loop is never blocked. A
sync flow calls them through ``prefect.utilities.asyncutils.run_coro_as_sync(job.trigger())``.

Exactly once: :meth:`NemorunJob.trigger` goes through :func:`nemorun_core.orchestration.attach_or_submit` with the
key ``prefect-<flow run id>/<name>/<attempt>`` (:func:`nemorun_prefect.tasks.job_key`), the same for every retry of
the flow run, so a retried or restarted flow run re-attaches to the job that runs or succeeded, and submits the next
attempt only after a failure. The job is recorded like one of ``submit_nemorun_task``
(:func:`nemorun_prefect.tasks.record_job`), so the flow's cancellation hook finds it. Outside a flow or task run,
each trigger is a new job (there is no run id to key it by).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from prefect.blocks.abstract import JobBlock, JobRun
from prefect.types import SecretDict
from pydantic import Field

from nemorun_core import orchestration
from nemorun_core.errors import ConfigError, ExperimentError, SerializationError
from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus, follow_log
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.experiment.jobref import JobRef, executor_config, result_spec
from nemorun_core.experiment.results import read_result
from nemorun_core.experiment.store import check_name
from nemorun_core.experiment.tasks import TaskSpec, default_name, normalize_task
from nemorun_prefect import tasks
from nemorun_prefect.blocks import DOCS_URL, LOGO_URL, AnyExecutorBlock, merge_secrets, split_secrets


class NemorunJobRun(JobRun[Any]):
    """One triggered nemorun job: its key, its handle, and the executor that follows it (not a block).

    Attributes:
        key: the job's key (``prefect-<flow run id>/<name>/<attempt>``).
        handle: the job's handle.
        reason: ``"submitted"`` by this trigger, or ``"found"`` / ``"remembered"``: an earlier trigger's job,
            re-attached.
    """

    def __init__(self, spec: TaskSpec, key: JobKey, handle: JobHandle, reason: str, *, poll: float = 1.0):
        self._spec = spec
        self.key = key
        self.handle = handle
        self.reason = reason
        self._poll = poll
        self._status: JobStatus | None = None

    def __repr__(self) -> str:
        return f"NemorunJobRun(key={str(self.key)!r}, backend={self.handle.backend!r}, job_id={self.handle.job_id!r})"

    @property
    def ref(self) -> JobRef:
        """The job as plain data (secrets redacted), for ``wait_nemorun_task`` / ``cancel_nemorun_task``."""
        return JobRef(self._spec.name, self._spec.kind, self.handle.to_dict(), executor_config(self._spec.executor))

    async def wait_for_completion(self) -> logging.Logger:
        """Follow the job to its end, each new log line (secrets redacted) to :attr:`logger` (the run logger in a
        flow or task run); return that logger, as the abstract class declares.

        Blocking for the job's duration (in a worker thread). Idempotent: a finished job's log is not sent again.

        Raises:
            JobFailedError: the job ended FAILED or CANCELLED: its state, exit status, log location and log tail,
                secrets scrubbed.
        """
        logger = self.logger
        if self._status is None or not self._status.is_terminal:
            self._status = await asyncio.to_thread(self._follow, logger)
        self._raise_if_failed()
        return logger  # type: ignore[return-value]

    async def fetch_result(self) -> Any:
        """The task's return value (None for a ``run.Script``), read from the job's result file.

        Raises:
            ExperimentError: the job has not ended yet (await :meth:`wait_for_completion` first), or its result
                file is missing or damaged.
            JobFailedError: the job failed or was cancelled.
        """
        if self._status is None or not self._status.is_terminal:
            self._status = await asyncio.to_thread(self._spec.executor.status, self.handle)
        if not self._status.is_terminal:
            raise ExperimentError(f"job {self.key} is {self._status.state.value}, it has no result yet: await "
                                  "wait_for_completion() first")
        self._raise_if_failed()
        spec = result_spec(self._spec.name, self._spec.kind, self._spec.executor, self.handle)
        return await asyncio.to_thread(read_result, spec)

    def _follow(self, logger: Any) -> JobStatus:
        status, _ = follow_log(self._spec.executor, self.handle, lambda line: logger.info("%s", line),
                               poll=self._poll)
        return status

    def _raise_if_failed(self) -> None:
        assert self._status is not None
        if self._status.state is not JobState.SUCCEEDED:
            spec = result_spec(self._spec.name, self._spec.kind, self._spec.executor, self.handle)
            raise orchestration.job_error(spec, self._status, orchestration.known_secrets(self._spec.executor))


class NemorunJob(JobBlock):
    """A nemorun task and the executor block that runs it, saved on the Prefect server; :meth:`trigger` runs it.

    Build it with :meth:`from_task`; in the UI, fill ``task`` with a task's serialized config and pick an executor
    block.
    """

    _block_type_name = "Nemorun Job"
    _block_type_slug = "nemorun-job"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = ("A nemorun task (run.Partial, run.Config or run.Script) and the executor block that runs it, "
                    "triggered from a flow like a Kubernetes job: trigger(), wait_for_completion(), fetch_result().")

    name: str = Field(
        description="The job's name within a flow run: the `<name>` of its key `prefect-<flow run id>/<name>/"
                    "<attempt>` (by which a retry re-attaches) and of its directory. Letters, digits, `-`, `_`, `.`.")
    task: dict[str, Any] = Field(
        description="The task as `nemorun_core.config.serialize.encode(task, payload=True)` gives it (a "
                    "run.Partial is `{\"_target_\": \"module:function\", \"_partial_\": true, ARGUMENT: VALUE...}`), "
                    "with every secret value replaced by `<redacted>` (the value is in 'task_secrets').")
    task_secrets: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="The secret values of the task's config, at their place in it: `{\"api_key\": \"...\"}`.")
    executor: AnyExecutorBlock = Field(  # type: ignore[valid-type]
        description="The executor block that runs the task: a typed one (Nemorun Slurm Executor, Nemorun Local "
                    "Executor...) or a Nemorun Executor (its config as JSON).")
    poll_s: float = Field(default=1.0, ge=0.05, description="Longest wait, in seconds, between two status reads "
                                                           "while following the job (backends that can wake the "
                                                           "follower answer earlier).")

    @classmethod
    def from_task(cls, task: Any, executor: Any, *, name: Optional[str] = None, poll_s: float = 1.0) -> "NemorunJob":
        """A block (not yet saved) for ``task`` on ``executor``.

        Args:
            task: a ``run.Partial``, ``run.Config`` or ``run.Script``; its config is copied, secret values split off.
            executor: an executor block (saved or not: ``NemorunSlurmExecutor.load("a100")``,
                ``executor_block(run.LocalExecutor())``).
            name: the job's name (default: the task function's name).

        Raises:
            ConfigError: ``task`` is not a task or cannot be serialized, or ``name`` is not a valid name.
        """
        from nemorun_core.config import serialize

        normalized = normalize_task(task, {})
        name = _checked_name(name or default_name(normalized))
        try:
            config = serialize.encode(normalized, payload=True)
        except SerializationError as exc:
            raise ConfigError(f"the task cannot be saved: {exc}", path="NemorunJob.task") from exc
        public, secret = split_secrets(config)
        return cls(name=name, task=public, task_secrets=SecretDict(secret or {}), executor=executor, poll_s=poll_s)

    def task_object(self) -> Any:
        """The task (``run.Partial``...), its secret values restored.

        Raises:
            ConfigError: the config is not a task's, or names a function that cannot be imported here.
        """
        from nemorun_core.config import serialize

        data = merge_secrets(self.task, self.task_secrets.get_secret_value() or {})
        try:
            return normalize_task(serialize.decode(data), {})
        except (SerializationError, ConfigError) as exc:
            raise ConfigError(f"{exc}; build the block with NemorunJob.from_task(run.Partial(fn, ...), ...), and "
                              "install the task's package where the flow runs", path="NemorunJob.task") from exc

    async def trigger(self) -> NemorunJobRun:
        """Submit the job, or re-attach to the one an earlier try of this flow run submitted; return its run.

        Blocks (in a worker thread) only until the backend accepted the job.

        Raises:
            ConfigError: the task or the executor block is invalid (nothing submitted).
            CapabilityError: the executor cannot find a job by its key (a retry could launch a second job).
            SubmissionError: the backend refused the job.
        """
        logger = self.logger
        return await asyncio.to_thread(self._trigger, logger)

    def _trigger(self, logger: Any) -> NemorunJobRun:
        executor: Executor = self.executor.executor()
        name = _checked_name(self.name)
        spec = TaskSpec(name, self.task_object(), executor.clone(), [])
        config = executor_config(spec.executor)

        def record(key: JobKey, handle: JobHandle | None) -> None:
            tasks.record_job(key, JobRef(spec.name, spec.kind, handle.to_dict() if handle else {}, config),
                             handle.job_dir if handle is not None and handle.job_dir else tasks.job_dir_for(key))

        attached = orchestration.attach_or_submit(spec, JobKey.parse(tasks.job_key(name)), tasks.job_dir_for,
                                                  record=record, log=lambda line: logger.info("%s", line))
        return NemorunJobRun(spec, attached.key, attached.handle, attached.reason, poll=self.poll_s)


def _checked_name(name: Any) -> str:
    try:
        return check_name(name, "job name")
    except ExperimentError as exc:
        raise ConfigError(str(exc), path="NemorunJob.name") from None


__all__ = ["NemorunJob", "NemorunJobRun"]
