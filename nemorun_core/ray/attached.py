"""A Ray cluster that someone else started: ``RayCluster(address="http://127.0.0.1:8265")``.

Attach only: ``start`` checks that the dashboard answers, ``stop`` leaves the cluster running (it is not ours to
stop; the jobs this process submitted are stopped by ``RayJob.stop``).
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from nemorun_core.errors import ConfigError
from nemorun_core.executors.ray import client as C
from nemorun_core.ray.backend import ClusterNotReadyError, ClusterState, ClusterStatus, RayBackend
from nemorun_core.ray.local import _answers


class AttachedRayBackend(RayBackend):
    """The cluster at ``RayCluster.address``."""

    def dashboard_url(self) -> Optional[str]:
        return C.normalize(self.cluster.address)

    def render_start(self, pre_ray_start_commands: Sequence[str]) -> str:
        if pre_ray_start_commands:
            raise ConfigError("pre_ray_start_commands run before `ray start`, and this cluster (address="
                              f"{self.cluster.address!r}) is already running; run them where it was started",
                              path="RayCluster.start.pre_ray_start_commands")
        return f"# attach to the running Ray cluster at {self.dashboard_url()} (nothing is started)\n"

    def start(self, *, timeout: float, pre_ray_start_commands: Sequence[str], wait_until_ready: bool) -> str:
        self.render_start(pre_ray_start_commands)
        address = self.dashboard_url()
        deadline = time.monotonic() + timeout
        while wait_until_ready and not _answers(address):
            if time.monotonic() > deadline:
                raise ClusterNotReadyError(f"the Ray cluster at {address} did not answer in {timeout:g} s; is it "
                                           "running? (this nemorun did not start it)")
            time.sleep(0.5)
        return address

    def status(self) -> ClusterStatus:
        address = self.dashboard_url()
        if _answers(address):
            return ClusterStatus(ClusterState.RUNNING, address)
        return ClusterStatus(ClusterState.FAILED, address, message=f"its dashboard {address} does not answer")

    def stop(self) -> None:
        """Nothing: the cluster is not ours."""

    def port_forward(self, port: int, target_port: int):
        """To the dashboard's own host and port for Ray's dashboard port (8265), else to ``target_port`` on the
        dashboard's host."""
        from urllib.parse import urlsplit

        from nemorun_core.ray.forward import PortForward

        parts = urlsplit(self.dashboard_url())
        host = parts.hostname or "127.0.0.1"
        if target_port == 8265 and parts.port:
            target_port = parts.port
        return PortForward.open(port, host, target_port)
