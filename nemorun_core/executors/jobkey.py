"""The job key: which job of which run this is, as a typed value with one text form.

Every job is submitted under a key ``"<scope>/<task>/<attempt>"`` that the backend records (a Slurm job name, a
container label, the local job directory's handle), so that any later process can find the job again instead of
starting a second one:

* ``scope`` names the run the job belongs to: an experiment id, ``prefect-<flow run id>``,
  ``airflow-<dag>-<run>-<hash>``;
* ``task`` is the task's name within that run (an Airflow map index is part of it: ``train-3``);
* ``attempt`` counts the run's tries of that task from 0: a retry after a failure submits attempt ``n + 1``, a retry
  after a crash finds attempt ``n`` still running and re-attaches.

The key is parsed here and nowhere else; executors and orchestrators read its parts from a :class:`JobKey`.
"""

from __future__ import annotations

import dataclasses
import re

from nemorun_core.errors import ExecutorError

# What a part may hold: it goes into file names, Slurm job names and container labels unquoted.
_PART = re.compile(r"[A-Za-z0-9_.:@+=-]+")


@dataclasses.dataclass(frozen=True, order=True)
class JobKey:
    """A parsed job key.

    Attributes:
        scope: the run the job belongs to (an experiment id, an orchestrator's run).
        task: the task's name within the run.
        attempt: the run's try of the task, from 0.
    """

    scope: str
    task: str
    attempt: int = 0

    def __post_init__(self) -> None:
        for name in ("scope", "task"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _PART.fullmatch(value) or value in (".", ".."):
                raise ExecutorError(f"job key {name} {value!r} must be letters, digits and _ . : @ + = - "
                                    "(it becomes part of file names and backend job names)")
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) or self.attempt < 0:
            raise ExecutorError(f"job key attempt must be an int >= 0, got {self.attempt!r}")

    @classmethod
    def parse(cls, text: str) -> "JobKey":
        """Read ``"<scope>/<task>/<attempt>"``.

        Raises:
            ExecutorError: naming the text and the form it must have.
        """
        if not isinstance(text, str):
            raise ExecutorError(f"a job key must be a string '<scope>/<task>/<attempt>', got {text!r}")
        parts = text.split("/")
        if len(parts) != 3 or not parts[2].isdigit() or not parts[2].isascii():
            raise ExecutorError(f"{text!r} is not a job key; it must be '<scope>/<task>/<attempt>' with a "
                                "whole-number attempt, e.g. 'train_20260101_120000_a1b2c3/train/0'")
        return cls(parts[0], parts[1], int(parts[2]))

    def next_attempt(self) -> "JobKey":
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def with_attempt(self, attempt: int) -> "JobKey":
        return dataclasses.replace(self, attempt=attempt)

    @property
    def attempt_dir(self) -> str:
        """The sub-directory of the task's directory for this attempt: ``""`` for attempt 0 (the task's first job
        keeps the plain directory), ``attempt-<n>`` after it."""
        return "" if self.attempt == 0 else f"attempt-{self.attempt}"

    def __str__(self) -> str:
        return f"{self.scope}/{self.task}/{self.attempt}"


__all__ = ["JobKey"]
