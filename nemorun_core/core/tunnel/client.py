"""``nemo_run.core.tunnel.client``: the tunnels (:mod:`nemorun_core.tunnel`)."""

from nemorun_core.tunnel.base import Tunnel
from nemorun_core.tunnel.local import LocalTunnel
from nemorun_core.tunnel.ssh import SSHTunnel

__all__ = ["LocalTunnel", "SSHTunnel", "Tunnel"]
