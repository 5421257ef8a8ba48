"""Tunnels: how executors reach the machine where jobs are submitted (this one, or a login node over SSH).

Thin re-exports; names load on first use (PEP 562), so importing ``nemorun_core.tunnel.base`` (which every executor
does) does not load the SSH implementation, and nothing here imports paramiko.
"""

from __future__ import annotations

from nemorun_core.lazy import lazy_exports

TYPE_CHECKING = False

_EXPORTS: dict[str, str] = {
    "Tunnel": "nemorun_core.tunnel.base",
    "CommandResult": "nemorun_core.tunnel.base",
    "Forward": "nemorun_core.tunnel.base",
    "TunnelError": "nemorun_core.tunnel.base",
    "RemoteCommandError": "nemorun_core.tunnel.base",
    "LocalTunnel": "nemorun_core.tunnel.local",
    "SSHTunnel": "nemorun_core.tunnel.ssh",
    "known_hosts_name": "nemorun_core.tunnel.ssh",
    "SSHStats": "nemorun_core.tunnel._ssh_pool",
    "ssh_stats": "nemorun_core.tunnel._ssh_pool",
    "close_all": "nemorun_core.tunnel._ssh_pool",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("nemorun_core.tunnel", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nemorun_core.tunnel._ssh_pool import SSHStats, close_all, ssh_stats
    from nemorun_core.tunnel.base import CommandResult, Forward, RemoteCommandError, Tunnel, TunnelError
    from nemorun_core.tunnel.local import LocalTunnel
    from nemorun_core.tunnel.ssh import SSHTunnel, known_hosts_name
