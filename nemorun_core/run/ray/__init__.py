"""NeMo Run's ``nemo_run.run.ray`` path: re-exports :mod:`nemorun_core.ray` (one class, one identity)."""

from nemorun_core.ray import ClusterNotReadyError, ClusterState, ClusterStatus, PortForward, RayCluster, RayJob

__all__ = ["ClusterNotReadyError", "ClusterState", "ClusterStatus", "PortForward", "RayCluster", "RayJob"]
