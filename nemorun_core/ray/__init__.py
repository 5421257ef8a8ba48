"""Ray clusters and jobs: :class:`RayCluster` (start, status, port forward, stop, wherever its executor runs it)
and :class:`RayJob` (a command as a Ray job). Experiment tasks run on Ray through ``run.RayExecutor``.

Importing this package does not import Ray: its SDK is loaded by the first call that talks to a cluster.
Also reachable as ``nemorun_core.run.ray`` (NeMo Run's module path) and ``run.ray``.
"""

from nemorun_core.ray.backend import ClusterNotReadyError, ClusterState, ClusterStatus
from nemorun_core.ray.cluster import RayCluster
from nemorun_core.ray.forward import PortForward
from nemorun_core.ray.job import RayJob

__all__ = ["ClusterNotReadyError", "ClusterState", "ClusterStatus", "PortForward", "RayCluster", "RayJob"]
