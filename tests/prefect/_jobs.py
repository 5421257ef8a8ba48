"""Task functions and a fault-injecting executor for the Prefect tests (module-level: the runner imports them)."""

from __future__ import annotations

import dataclasses
import os

from nemorun_core.executors.slurm import SlurmExecutor
from tests.integration._faults import DiesAfterSubmit, DiesAfterSubmitMixin, count_run, fail_first  # noqa: F401


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

