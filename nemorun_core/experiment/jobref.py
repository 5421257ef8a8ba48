"""A submitted job as plain data, for orchestrators that keep it in their own state (a Prefect result, XCom, a
trigger's kwargs, Airflow's task state store) and follow the job from another process later.

A :class:`JobRef` holds the job's handle and its executor's serialized config with every secret redacted, so it can
be stored anywhere; :meth:`JobRef.load_executor` brings the secrets back from the reading process's environment (see
:func:`nemorun_core.secrets.restore`).

Finding the job again (attempt walking, attach-or-submit) is :mod:`nemorun_core.orchestration`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from nemorun_core.executors.base import Executor, JobHandle
from nemorun_core.experiment.tasks import TaskSpec


def executor_config(executor: Executor) -> dict[str, Any]:
    """The executor's serialized config (the runner's payload form), secrets replaced by ``"<redacted>"``."""
    from nemorun_core.config import serialize
    from nemorun_core.secrets import redact

    return redact(serialize.encode(executor, payload=True))


def load_executor(config: Mapping[str, Any]) -> Executor:
    """Build the executor from :func:`executor_config`'s output; redacted values come back from the environment."""
    from nemorun_core.config import serialize
    from nemorun_core.secrets import restore

    return serialize.decode(restore(dict(config)), build=True)


@dataclasses.dataclass(frozen=True)
class JobRef:
    """A submitted job, as plain data: safe to keep in an orchestrator's state (secrets are redacted).

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
        return cls(spec.name, spec.kind, handle.to_dict(), executor_config(spec.executor))

    def job_handle(self) -> JobHandle:
        return JobHandle.from_dict(self.handle)

    def load_executor(self) -> Executor:
        return load_executor(self.executor)

    def spec(self, executor: Executor | None = None) -> TaskSpec:
        """A TaskSpec that is enough to read status, logs and the result (not to resubmit: the task is absent).

        Args:
            executor: use this executor instead of building one from :attr:`executor` (a process that already has
                it, with its secrets and tunnel, saves the rebuild).
        """
        return result_spec(self.name, self.kind, executor or self.load_executor(), self.job_handle())


def result_spec(name: str, kind: str, executor: Executor, handle: JobHandle) -> TaskSpec:
    """A TaskSpec for reading a job's status, logs, result and failure (its task is absent: not for submitting)."""
    return _ResultSpec(name, None, executor, [], handle=handle, kind_=kind)


@dataclasses.dataclass
class _ResultSpec(TaskSpec):
    kind_: str = "partial"

    @property
    def kind(self) -> str:
        return self.kind_


__all__ = ["JobRef", "executor_config", "load_executor", "result_spec"]
