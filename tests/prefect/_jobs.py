"""Task functions and a fault-injecting executor for the Prefect tests (module-level: the runner imports them)."""

from __future__ import annotations

import dataclasses
import os

from nemorun_core.executors.base import Job, JobHandle
from nemorun_core.executors.local import LocalExecutor


def count_run(marker: str, value: int) -> int:
    """Append one line to ``marker`` per run, so a test can count how many times the job really ran."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"counted run, returning {value}", flush=True)
    return value


@dataclasses.dataclass(kw_only=True)
class DiesAfterSubmit(LocalExecutor):
    """A LocalExecutor whose first ``submit`` starts the job and then raises, as if the Prefect process had died.

    ``flag`` is a file: absent means "first try" (it is created, then the error raised). With ``let_finish`` the job
    is first followed to its end, so the retry finds a completed job.
    """

    flag: str = ""
    let_finish: bool = False

    def submit(self, job: Job) -> JobHandle:
        handle = super().submit(job)
        if os.path.exists(self.flag):
            return handle
        if self.let_finish:
            while not self.status(handle).is_terminal:
                self.wait_any([handle], 0.1)
        open(self.flag, "w").close()
        raise RuntimeError(f"injected: the submitting process died after submitting {job.key}")
