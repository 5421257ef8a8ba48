"""NeMo Run's ``nemo_run.run.ray.cluster`` path: re-exports :mod:`nemorun_core.ray.cluster`."""

from nemorun_core.ray.cluster import RayCluster

__all__ = ["RayCluster"]
