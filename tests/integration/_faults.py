"""Job functions that count their runs, and an executor that "dies" after submitting: what the re-attach tests of
both orchestrators (tests/prefect, tests/airflow) use to prove a job ran exactly once. Module-level, so job
processes import them."""

from __future__ import annotations

import dataclasses
import os
import time

from nemorun_core.executors.base import Job, JobHandle
from nemorun_core.executors.local import LocalExecutor


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
