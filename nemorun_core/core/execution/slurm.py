"""``nemo_run.core.execution.slurm``: :class:`nemorun_core.executors.slurm.SlurmExecutor`, its job details (custom
log paths) and its tunnels."""

from nemorun_core.executors.slurm import SlurmExecutor, SlurmJobDetails, SlurmResources
from nemorun_core.tunnel.local import LocalTunnel
from nemorun_core.tunnel.ssh import SSHTunnel

__all__ = ["LocalTunnel", "SSHTunnel", "SlurmExecutor", "SlurmJobDetails", "SlurmResources"]
