"""Task functions and a fault-injecting executor for the Prefect tests (module-level: the runner imports them)."""

from __future__ import annotations

import dataclasses
import os

from nemorun_core.executors.slurm import SlurmExecutor
from tests.integration._faults import DiesAfterSubmit, DiesAfterSubmitMixin, count_run, fail_first  # noqa: F401


def count_and_sleep(marker: str, value: int, seconds: float) -> int:
    """Like :func:`count_run`, counting at the start, then sleep ``seconds``: a job that is still running for a
    while after it has been counted."""
    import time

    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"counted run, sleeping {seconds} s", flush=True)
    time.sleep(seconds)
    print(f"slept, returning {value}", flush=True)
    return value


@dataclasses.dataclass(kw_only=True)
class SlurmDiesAfterSubmit(DiesAfterSubmitMixin, SlurmExecutor):
    """A SlurmExecutor that dies after its first submission (see :class:`DiesAfterSubmitMixin`)."""


def slurm_executor(cls: type = SlurmExecutor, **kwargs) -> SlurmExecutor:
    """A ``cls`` (a SlurmExecutor) for the project's Slurm cluster, reached over its SSH server
    (``tests/integration/services.py``); the cluster's python imports this repository."""
    from nemorun_core.tunnel.ssh import SSHTunnel
    from tests.integration import services

    ssh, cluster = services.ssh(), services.slurm()
    tunnel = SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key, known_hosts=ssh.known_hosts,
                       job_dir=cluster.job_dir)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return cls(tunnel=tunnel, partition=cluster.partition, account=cluster.account, python=cluster.python,
               time="00:05:00", env_vars={"PYTHONPATH": repo}, **kwargs)

