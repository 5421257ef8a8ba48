"""``RayCluster``: a Ray cluster's life (start, status, port forward, stop), wherever its executor runs it.

Two shapes, as the spec writes them::

    cluster = RayCluster(name="research", executor=run.LocalExecutor())       # where it runs
    cluster.start(timeout=600, pre_ray_start_commands=["pip install -r requirements.txt"])

    cluster = RayCluster(num_nodes=1, gpus_per_node=0, memory_per_node="8GB")  # what it is made of (here: local)
    run.RayExecutor(cluster=cluster)                                          # started at the first submission

Plus ``RayCluster(address="http://host:8265")`` for a cluster someone else started (attach only). The work is done
by a backend (:mod:`nemorun_core.ray.backend`) chosen by the executor; this class checks the settings and keeps
no process-local state: a cluster is found again by its name from any process.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional, Sequence

from nemorun_core.errors import ConfigError
from nemorun_core.ray.backend import ClusterStatus, RayBackend, backend_for
from nemorun_core.ray.forward import PortForward, check_port
from nemorun_core.ray.sizes import ClusterSize

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
#: How long ``start`` waits for the cluster by default: a loaded machine takes a minute for one node.
DEFAULT_TIMEOUT_S = 600.0


def check_commands(value: Any, path: str) -> list[str]:
    """``pre_ray_start_commands``: None or a list of shell command strings."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f"must be a list of shell commands (one string each), got {value!r}; e.g. "
                          "['pip install -r requirements.txt']", path=path)
    return list(value)


@dataclasses.dataclass(kw_only=True)
class RayCluster:
    """A Ray cluster.

    Args:
        name: the cluster's name (letters, digits, ``_.-``): how any process finds it again.
        executor: where it runs: ``run.LocalExecutor()`` (a head on this machine). Default with sizes: local.
        num_nodes: nodes of the cluster (head included).
        cpus_per_node, gpus_per_node: what each node offers Ray (default: what the node has).
        memory_per_node: memory each node offers Ray: bytes or a size (``"64GB"``, ``"512MiB"``).
        address: instead of an executor, the dashboard of a cluster already running (attach only).
    """

    name: str = "nemorun-ray"
    executor: Any = None
    num_nodes: Optional[int] = None
    cpus_per_node: Optional[int] = None
    gpus_per_node: Optional[int] = None
    memory_per_node: Any = None
    address: Optional[str] = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse bad settings (each error names the field and the fix); nothing is started."""
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"{self.name!r} is not a cluster name: use letters, digits, '_', '.', '-' (at most 63, "
                              "starting with a letter or digit), e.g. 'research-cluster'", path="RayCluster.name")
        sizes = (self.num_nodes, self.cpus_per_node, self.gpus_per_node, self.memory_per_node)
        if self.executor is None and self.address is None and all(v is None for v in sizes):
            raise ConfigError("a RayCluster needs to know where it runs or what it is made of: pass executor= "
                              "(e.g. run.LocalExecutor()) or its sizes (num_nodes=, gpus_per_node=, "
                              "memory_per_node=), or address= of a running cluster", path="RayCluster.executor")
        if self.address is not None:
            if self.executor is not None:
                raise ConfigError("give executor= (a cluster nemorun starts) or address= (one already running), "
                                  "not both", path="RayCluster.address")
            if not isinstance(self.address, str) or not self.address.strip():
                raise ConfigError(f"must be a dashboard address such as 'http://127.0.0.1:8265', got "
                                  f"{self.address!r}", path="RayCluster.address")
        self.size  # checks the sizes

    @property
    def size(self) -> ClusterSize:
        return ClusterSize.of("RayCluster", self.num_nodes, self.cpus_per_node, self.gpus_per_node,
                              self.memory_per_node)

    def backend(self) -> RayBackend:
        """The backend that runs this cluster (chosen by the executor; see :mod:`nemorun_core.ray.backend`)."""
        return backend_for(self)

    # -- life -------------------------------------------------------------------------------------------------------
    def start(self, timeout: float = DEFAULT_TIMEOUT_S, pre_ray_start_commands: Optional[Sequence[str]] = None,
              wait_until_ready: bool = True, dryrun: bool = False) -> Optional[str]:
        """Start the cluster (or re-attach to the running one of this name) and return its dashboard address.

        Args:
            timeout: seconds to wait for the cluster to be ready; past it the cluster is torn down and the error
                names the node that did not join and where its log is.
            pre_ray_start_commands: shell commands run on every node before ``ray start``.
            wait_until_ready: return only when the cluster answers (else as soon as it was started).
            dryrun: print and return exactly what would run; start nothing.

        Raises:
            ConfigError: a bad argument (nothing started).
            ClusterNotReadyError: not ready within ``timeout`` (torn down).
        """
        commands = check_commands(pre_ray_start_commands, "RayCluster.start.pre_ray_start_commands")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"must be a number of seconds > 0, got {timeout!r}", path="RayCluster.start.timeout")
        backend = self.backend()
        if dryrun:
            text = backend.render_start(commands)
            print(text, end="")
            return text
        return backend.start(timeout=float(timeout), pre_ray_start_commands=commands,
                             wait_until_ready=wait_until_ready)

    def status(self) -> ClusterStatus:
        """The cluster's state, its dashboard address and where its log is."""
        return self.backend().status()

    def dashboard_url(self) -> Optional[str]:
        """The dashboard address of the started cluster, None when it was not started. No network call."""
        return self.backend().dashboard_url()

    def default_python(self) -> str:
        """The interpreter of Python tasks on the cluster's nodes."""
        return self.backend().default_python()

    def port_forward(self, port: int = 8265, target_port: int = 8265) -> PortForward:
        """Forward 127.0.0.1:``port`` here to ``target_port`` on the cluster's head (8265: its dashboard); returns
        when the port answers. End it with ``stop()`` or use it as a context manager.

        Raises:
            ConfigError: ``port`` is in use here, or not a port (nothing started).
        """
        check_port(port, "RayCluster.port_forward.port")
        check_port(target_port, "RayCluster.port_forward.target_port")
        from nemorun_core.ray.forward import port_in_use, free_port

        if port_in_use(port):
            raise ConfigError(f"127.0.0.1:{port} is in use here; pick a free port, e.g. port={free_port()}",
                              path="RayCluster.port_forward.port")
        return self.backend().port_forward(port, target_port)

    def stop(self) -> None:
        """Stop the cluster: no Ray process of it is left when this returns. Idempotent."""
        self.backend().stop()
