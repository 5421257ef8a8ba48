"""The Slurm executor: sbatch over a tunnel, batched status, dependencies, arrays, heterogeneous jobs."""

from nemorun_core.executors.slurm.details import SlurmJobDetails
from nemorun_core.executors.slurm.executor import SlurmExecutor, SlurmResources

__all__ = ["SlurmExecutor", "SlurmJobDetails", "SlurmResources"]
