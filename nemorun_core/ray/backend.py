"""The seam between :class:`~nemorun_core.ray.cluster.RayCluster` and where a cluster runs.

A backend starts, watches and stops one cluster and says where its dashboard is; ``RayCluster`` and ``RayJob`` do
everything else through the cluster's dashboard (Ray's Jobs API), the same on every backend. The backend is chosen by
the cluster's executor, by the executor's registry name (``nemorun_core/executors/registry.py``) in
:data:`BACKENDS`: ``LocalExecutor`` -> a ``ray start --head`` on this machine. Slurm (one sbatch job: the head on
the first node, workers on the others, the dashboard through the SSH tunnel), KubeRay, Lepton and DGX Cloud are
further rows of the same table, each a module implementing :class:`RayBackend`.

Each backend keeps what it started in a state directory of its own under ``$NEMORUN_HOME/ray/<cluster name>``, so
any process (a restarted script, an orchestrator worker) finds the cluster again by its name; no process-local state.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import importlib
import os
from typing import TYPE_CHECKING, Optional, Sequence

from nemorun_core.errors import ConfigError, NemorunError

if TYPE_CHECKING:  # pragma: no cover
    from nemorun_core.ray.cluster import RayCluster
    from nemorun_core.ray.forward import PortForward

#: The executor's registry name -> the backend class (``module:Class``) of clusters it runs.
BACKENDS: dict[str, str] = {
    "local": "nemorun_core.ray.local:LocalRayBackend",
}
#: A cluster given by ``address=`` (already running, started by someone else): attach only.
ATTACHED = "nemorun_core.ray.attached:AttachedRayBackend"


class ClusterState(str, enum.Enum):
    """Where a cluster is in its life."""

    NOT_STARTED = "NOT_STARTED"  #: nothing was started under this name (or it was stopped)
    STARTING = "STARTING"        #: started, its dashboard does not answer yet
    RUNNING = "RUNNING"          #: its dashboard answers
    FAILED = "FAILED"            #: what was started has exited on its own

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    """A snapshot of a cluster.

    Attributes:
        state: the :class:`ClusterState`.
        address: the dashboard's address (``http://127.0.0.1:8265``) when known.
        nodes: how many nodes have joined, when the backend knows.
        message: what went wrong, or a note.
        log: where the head's log is (a path), for people.
    """

    state: ClusterState
    address: Optional[str] = None
    nodes: Optional[int] = None
    message: str = ""
    log: Optional[str] = None


class ClusterNotReadyError(NemorunError):
    """The cluster did not become ready in time (it was torn down); the message names the node and its log."""


class RayBackend(abc.ABC):
    """Start, watch and stop one Ray cluster. Implementations are cheap to make (no I/O in ``__init__``)."""

    def __init__(self, cluster: "RayCluster"):
        self.cluster = cluster

    @abc.abstractmethod
    def render_start(self, pre_ray_start_commands: Sequence[str]) -> str:
        """Exactly what :meth:`start` runs (a shell script, an sbatch script, a manifest). Pure."""

    @abc.abstractmethod
    def start(self, *, timeout: float, pre_ray_start_commands: Sequence[str], wait_until_ready: bool) -> str:
        """Start the cluster unless it runs; return its dashboard address. Blocking until ready when asked;
        idempotent (a running cluster of this name is re-attached, not started twice).

        Raises:
            ClusterNotReadyError: not ready within ``timeout`` s, or it exited while starting; torn down first.
        """

    @abc.abstractmethod
    def status(self) -> ClusterStatus:
        """The cluster's state now. One cheap probe at most."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop everything the cluster started; idempotent, blocking until no process of it is left."""

    @abc.abstractmethod
    def dashboard_url(self) -> Optional[str]:
        """The dashboard's address if the cluster was started (from its state; no network call), else None."""

    def default_python(self) -> str:
        """The interpreter of Python tasks on the cluster's nodes."""
        return "python"

    def port_forward(self, port: int, target_port: int) -> "PortForward":
        """Forward 127.0.0.1:``port`` here to ``target_port`` on the head. The default suits a head whose ports
        are this machine's loopback; remote backends forward through their tunnel."""
        from nemorun_core.ray.forward import PortForward

        return PortForward.open(port, "127.0.0.1", target_port)


def state_dir(name: str) -> str:
    """``$NEMORUN_HOME/ray/<name>``: the state of the cluster called ``name``."""
    from nemorun_core.home import default_home

    return os.path.join(default_home(), "ray", name)


def backend_for(cluster: "RayCluster") -> RayBackend:
    """The backend of ``cluster``: attached for ``address=``, else the row of its executor's registry name.

    Raises:
        ConfigError: an executor that cannot run a Ray cluster (the message lists those that can).
    """
    if cluster.address is not None:
        target = ATTACHED
    else:
        executor = cluster.executor
        name = "local"
        if executor is not None:
            from nemorun_core.executors import registry

            entry = registry.for_class(type(executor))
            name = entry.name if entry is not None else type(executor).__name__
        if name not in BACKENDS:
            raise ConfigError(f"a Ray cluster cannot run on {type(executor).__name__} (backend {name!r}) yet; "
                              f"the executors that start one: {', '.join(sorted(BACKENDS))} "
                              "(run.LocalExecutor()), or pass address= of a running cluster",
                              path="RayCluster.executor")
        target = BACKENDS[name]
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(cluster)
