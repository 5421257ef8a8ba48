"""The process-wide pool of SSH connections behind every ``SSHTunnel``, and its counters.

Why module-level state (the one place nemorun keeps it, like ``multiprocessing``'s fork server): executors, and the
tunnels inside them, are plain configuration that gets deep-copied per task, pickled into orchestrator workers and
rebuilt from the experiment store. A connection held by the object would be lost (or, worse, shared by accident)
at every copy, and each ``status`` poll would pay a fresh SSH handshake. Keeping connections here lets every copy
of a tunnel for the same login reuse one connection, and keeps the objects themselves trivially copyable and
picklable. The key is ``(user, host, port, identity, identity_env, known_hosts, host_key_policy)``: the login plus
the settings under which its host key was verified, so no tunnel borrows a connection checked more laxly than it
asks for. Counters are kept per ``user@host:port``.

Thread-safe: one lock guards the table, and one lock per entry serializes opening it, so a slow connect to one host
does not block calls to another. Fork-safe: paramiko's transport thread does not survive ``fork``, so a child process
forgets (without closing: the socket is shared with the parent) every connection it inherited.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

from nemorun_core.errors import BackendUnavailableError
from nemorun_core.tunnel.base import TunnelError


class ConnectionLostError(TunnelError, BackendUnavailableError):
    """The SSH server could not be reached, or the connection to it dropped: the host is unavailable for now.

    Both a ``TunnelError`` (what callers of a tunnel catch) and a ``BackendUnavailableError`` (what a follower of
    a job retries through a bounded outage: ``nemorun_core.executors.outage``). Authentication and host-key failures
    are plain ``TunnelError``s, never this: they do not heal by waiting. A command whose connection dropped after
    it was sent may have run: a caller retries it only when running it twice is harmless (a status poll, a
    submission that is idempotent by key).
    """


@dataclasses.dataclass(frozen=True)
class SSHStats:
    """Counters for one ``user@host:port`` in this process, since it started (for benchmarks and tests).

    Attributes:
        connections_opened: SSH connections opened (handshake + authentication), reconnects included.
        commands_run: commands sent with ``run`` (each one ``exec`` on a channel of a pooled connection).
    """

    connections_opened: int = 0
    commands_run: int = 0


class Connection:
    """One open paramiko client plus its lazily opened SFTP session."""

    def __init__(self, client: Any):
        self.client = client
        self._sftp: Any = None
        # paramiko's SFTPClient is one request/response stream: calls from several threads are serialized here.
        self.sftp_lock = threading.RLock()

    @property
    def transport(self) -> Any:
        return self.client.get_transport()

    def active(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def sftp(self) -> Any:
        """The SFTP session (opened on first use). Call with ``sftp_lock`` held."""
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        except Exception:  # noqa: BLE001 - closing a dead session must not mask the caller's error
            pass
        self.client.close()

    def abandon(self) -> None:
        """In a forked child: close only this process's copy of the socket, so nothing can ever be written on it.

        The parent's connection is untouched (the kernel keeps its socket open while the parent holds it).
        Writing on it from here, which paramiko's finalizers would do when the objects are collected, would send
        a packet out of the parent's cipher sequence and make the server drop the parent's connection.
        """
        transport = self.client.get_transport()
        sock = getattr(transport, "sock", None)
        if sock is not None:
            sock.close()


@dataclasses.dataclass
class _Slot:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    conn: Connection | None = None


class Pool:
    """Connections by key, counters by address. Use the module's ``POOL``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple, _Slot] = {}
        self._stats: dict[str, dict[str, int]] = {}
        self._inherited: list[Connection] = []
        self._atexit = False
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=self._forget_after_fork)

    def _forget_after_fork(self) -> None:
        # In a forked child the parent's transports have no reader thread and their sockets are shared with the
        # parent: never use or close them here (a clean close sends a disconnect on the parent's connection).
        # They are kept referenced rather than dropped, because paramiko's finalizers (Channel.__del__) take
        # locks that a parent thread may have held at the moment of the fork, and would hang this process.
        # Fresh locks for the same reason.
        inherited = [slot.conn for slot in self._slots.values() if slot.conn is not None]
        self._lock = threading.Lock()
        self._slots = {}
        for conn in inherited:
            conn.abandon()
        self._inherited.extend(inherited)

    def _slot(self, key: tuple) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            if not self._atexit:
                # Closing cleanly at exit avoids paramiko's transport threads racing interpreter shutdown.
                atexit.register(self._close_at_exit)
                self._atexit = True
            return slot

    def get(self, key: tuple, address: str, opener: Callable[[], Any]) -> Connection:
        """The live connection for ``key``, opening one (with ``opener``) if there is none or it has dropped."""
        slot = self._slot(key)
        with slot.lock:
            if slot.conn is not None and slot.conn.active():
                return slot.conn
            if slot.conn is not None:
                slot.conn.close()
                slot.conn = None
            conn = Connection(opener())
            slot.conn = conn
            self.count(address, "connections_opened")
            return conn

    def discard(self, key: tuple, conn: Connection) -> None:
        """Close ``conn`` if it is still the pooled one (another thread may have replaced it already)."""
        slot = self._slot(key)
        with slot.lock:
            if slot.conn is conn:
                slot.conn = None
        conn.close()

    def close(self, key: tuple) -> None:
        slot = self._slot(key)
        with slot.lock:
            conn, slot.conn = slot.conn, None
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        """Close every pooled connection (idempotent; they reopen on next use)."""
        with self._lock:
            keys = list(self._slots)
        for key in keys:
            self.close(key)

    def _close_at_exit(self) -> None:
        # paramiko logs each closed channel; at interpreter exit its handlers' streams may be closed already (a
        # test runner's capture, a logging config torn down first), and every message would print a traceback.
        import logging

        for name in [n for n in logging.root.manager.loggerDict if n == "paramiko" or n.startswith("paramiko.")]:
            logging.getLogger(name).disabled = True  # each logger checks only its own flag
        self.close_all()

    def count(self, address: str, counter: str) -> None:
        with self._lock:
            stats = self._stats.setdefault(address, {})
            stats[counter] = stats.get(counter, 0) + 1

    def stats(self, address: str) -> SSHStats:
        with self._lock:
            return SSHStats(**self._stats.get(address, {}))


POOL = Pool()


def ssh_stats(address: str) -> SSHStats:
    """Counters for ``user@host:port`` (an ``SSHTunnel.address``) in this process.

    Example:
        >>> before = ssh_stats(tunnel.address)
        >>> tunnel.run("true")
        >>> ssh_stats(tunnel.address).commands_run - before.commands_run
        1
    """
    return POOL.stats(address)


def close_all() -> None:
    """Close every pooled SSH connection of this process; later calls reconnect."""
    POOL.close_all()
