"""The Ray backend: jobs on a Ray cluster through its Jobs API (see ``executor.py``)."""

from nemorun_core.executors.ray.executor import RayExecutor

__all__ = ["RayExecutor"]
