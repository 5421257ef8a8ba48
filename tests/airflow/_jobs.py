"""Task functions and fault-injecting executors for the Airflow tests (module-level: job processes import them)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence

from nemorun_core.executors.base import Job, JobHandle, JobStatus
from nemorun_core.executors.local import LocalExecutor
from tests.integration._faults import DiesAfterSubmit, count_run, fail_first  # noqa: F401


def train_with_token(hidden_size: int, api_token: str, steps: int = 2) -> dict:
    """Uses a secret argument and a secret environment variable, prints both, and returns them among other data."""
    for step in range(steps):
        print(f"step {step} of h{hidden_size} token={api_token} wandb={os.environ.get('WANDB_API_KEY')}", flush=True)
    return {"checkpoint": f"/ckpt/h{hidden_size}", "steps": steps, "api_token": api_token,
            "echo": f"token was {api_token}", "wandb": os.environ.get("WANDB_API_KEY")}


@dataclasses.dataclass(kw_only=True)
class DiesWhileFollowing(LocalExecutor):
    """A LocalExecutor whose first ``wait_any`` raises (the worker died while following the job), and that has no
    ``find``: only the handle kept in Airflow's task state store can re-attach to the job."""

    flag: str = ""

    def find(self, key: str, job_dir: str) -> JobHandle | None:
        return None

    def wait_any(self, handles: Sequence[JobHandle], timeout: float) -> None:
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            raise RuntimeError("injected: the worker died while following the job")
        super().wait_any(handles, timeout)


@dataclasses.dataclass(kw_only=True)
class CountingLocalExecutor(LocalExecutor):
    """A LocalExecutor that appends the job keys of every ``poll_many`` call to ``calls`` (one JSON list a line)."""

    calls: str = ""

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        with open(self.calls, "a") as f:
            f.write(json.dumps(sorted(h.key for h in offsets)) + "\n")
        return super().poll_many(offsets)


@dataclasses.dataclass(kw_only=True)
class UnreachableLocalExecutor(LocalExecutor):
    """A LocalExecutor whose backend never answers a poll (a cluster that stays unreachable)."""

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        raise ConnectionError("injected: the backend is unreachable")


def sweep_point(marker: str, x: int) -> dict:
    """One point of a sweep: append ``x`` to ``marker`` (one line per run), return a result that depends on ``x``."""
    with open(marker, "a") as f:
        f.write(f"{x}\n")
    print(f"sweep point x={x}", flush=True)
    return {"x": x, "square": x * x}


@dataclasses.dataclass(kw_only=True)
class DiesAfterSubmitOf(DiesAfterSubmit):
    """:class:`DiesAfterSubmit` for the jobs whose key contains ``key_part`` only; other jobs are submitted as usual
    (one mapped instance of a task dies, its siblings do not)."""

    key_part: str = ""

    def submit(self, job: Job) -> JobHandle:
        if self.key_part not in job.key:
            return LocalExecutor.submit(self, job)
        return super().submit(job)


@dataclasses.dataclass(kw_only=True)
class SlowHandover(LocalExecutor):
    """A LocalExecutor whose ``submit`` returns ``delay`` seconds after the job started: it widens the moment between
    the backend accepting a job and the operator deferring it (about a second on a loaded worker) so that a test can
    kill the task inside it."""

    delay: float = 0.0

    def submit(self, job: Job) -> JobHandle:
        handle = super().submit(job)
        time.sleep(self.delay)
        return handle
