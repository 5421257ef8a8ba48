"""NeMo Run's ``nemo_run.run.ray.job`` path: re-exports :mod:`nemorun_core.ray.job`."""

from nemorun_core.ray.job import RayJob

__all__ = ["RayJob"]
