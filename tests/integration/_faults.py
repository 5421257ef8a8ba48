"""Job functions that count their runs, an executor that "dies" after submitting, and executors whose process is
killed with SIGKILL at a chosen point: what the re-attach and fault-matrix tests of the launcher and of both
orchestrators (tests/integration, tests/prefect, tests/airflow) use to prove a job ran exactly once. Module-level, so
job and orchestrator processes import them."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Mapping, Sequence

from nemorun_core.executors.base import Job, JobHandle, JobState, JobStatus
from nemorun_core.executors.docker import DockerExecutor
from nemorun_core.executors.local import LocalExecutor
from nemorun_core.executors.slurm import SlurmExecutor


def count_run(marker: str, value: int, seconds: float = 0.0) -> int:
    """Append one line to ``marker`` per run (so a test counts real runs), optionally sleep, return ``value``."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"counted run, returning {value}", flush=True)
    time.sleep(seconds)
    return value


def fail_first(marker: str) -> str:
    """Fail on the first run (counted in ``marker``), succeed on the next ones."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(marker) as f:
        runs = len(f.read().splitlines())
    if runs == 1:
        raise RuntimeError("first run fails on purpose")
    return f"succeeded on run {runs}"


@dataclasses.dataclass(kw_only=True)
class DiesAfterSubmitMixin:
    """Put before an executor class: its first ``submit`` starts the job and then raises, as if the submitting
    process (a Prefect flow run, an Airflow worker) had died before it could record the handle.

    ``flag`` is a file: absent means "first try" (it is created, then the error raised). With ``let_finish`` the job
    is first followed to its end, so the retry finds a completed job.
    """

    flag: str = ""
    let_finish: bool = False

    def submit(self, job: Job) -> JobHandle:
        handle = super().submit(job)  # type: ignore[misc]
        if os.path.exists(self.flag):
            return handle
        while self.let_finish and not self.status(handle).is_terminal:  # type: ignore[attr-defined]
            self.wait_any([handle], 0.1)  # type: ignore[attr-defined]
        open(self.flag, "w").close()
        raise RuntimeError(f"injected: the submitting process died after submitting {job.key}")


@dataclasses.dataclass(kw_only=True)
class DiesAfterSubmit(DiesAfterSubmitMixin, LocalExecutor):
    """A LocalExecutor that dies after its first submission (see :class:`DiesAfterSubmitMixin`)."""


# -- kill -9 at a chosen point: the exactly-once fault matrix (tests/*/test_fault_matrix.py) ----------------------
#: Where :class:`KillsItselfMixin` kills its process: before the submission reaches the backend; right after the
#: backend accepted the job (before the caller could record the handle); after the first round of following a
#: running job; the first time a status read says the job ended (before the caller could act on it).
KILL_POINTS = ("before_submit", "after_accept", "while_following", "after_end")

# Following rounds seen per flag file, in this process (a test helper's own bookkeeping, not an executor's state:
# an executor instance may be cloned or rebuilt from its config between two rounds).
_ROUNDS: dict[str, int] = {}


@dataclasses.dataclass(kw_only=True)
class KillsItselfMixin:
    """Put before an executor class: the process that uses it gets SIGKILL at ``kill_at`` (one of
    :data:`KILL_POINTS`), once.

    ``flag`` is a file: absent means "first time" (it is created just before the kill, so the process that retries or
    restarts, which sees it, runs through). No cleanup of any kind runs in the killed process: no ``finally``, no
    ``atexit``, no orchestrator hook, exactly as with ``kill -9`` from outside.
    """

    kill_at: str = ""
    flag: str = ""

    def _die(self, point: str) -> None:
        if self.kill_at != point or not self.flag or os.path.exists(self.flag):
            return
        fd = os.open(self.flag, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, f"{point} {os.getpid()}\n".encode())
        os.fsync(fd)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def _rounds(self, statuses: list[JobStatus]) -> None:
        """One following round that read ``statuses``: die while following (from the second round on, with the job
        still running) or after the end (the first terminal status)."""
        if any(s.is_terminal for s in statuses):
            self._die("after_end")
        elif any(s.state is JobState.RUNNING for s in statuses):
            _ROUNDS[self.flag] = _ROUNDS.get(self.flag, 0) + 1
            if _ROUNDS[self.flag] >= 2:
                self._die("while_following")

    def submit(self, job: Job) -> JobHandle:
        self._die("before_submit")
        handle = super().submit(job)  # type: ignore[misc]
        self._die("after_accept")
        return handle

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        statuses = super().status_many(handles)  # type: ignore[misc]
        self._rounds(list(statuses.values()))
        return statuses

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        polled = super().poll_many(offsets)  # type: ignore[misc]
        self._rounds([status for status, _ in polled.values()])
        return polled


@dataclasses.dataclass(kw_only=True)
class LocalKillsItself(KillsItselfMixin, LocalExecutor):
    """A LocalExecutor whose process is killed at ``kill_at`` (see :class:`KillsItselfMixin`)."""


@dataclasses.dataclass(kw_only=True)
class DockerKillsItself(KillsItselfMixin, DockerExecutor):
    """A DockerExecutor whose process is killed at ``kill_at`` (see :class:`KillsItselfMixin`)."""


@dataclasses.dataclass(kw_only=True)
class SlurmKillsItself(KillsItselfMixin, SlurmExecutor):
    """A SlurmExecutor whose process is killed at ``kill_at`` (see :class:`KillsItselfMixin`)."""


@dataclasses.dataclass(kw_only=True)
class WithDashboard(LocalExecutor):
    """A LocalExecutor whose backend has "a UI of its own" (as Ray's dashboard): ``job_url`` names the job's page,
    for the orchestrators' backend links."""

    dashboard: str = "http://127.0.0.1:8265"

    def job_url(self, handle: JobHandle) -> str | None:
        return f"{self.dashboard}/#/jobs/{handle.job_id}"
