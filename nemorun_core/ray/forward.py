"""``RayCluster.port_forward``: a loopback TCP forward from a port here to a port of the cluster's head.

Threads and blocking sockets (a handful of connections to a dashboard: no event loop needed). The listener binds
127.0.0.1 only. :meth:`PortForward.open` returns once the port answers: the listener is up and the target
accepted a test connection. Use it as a context manager, or call :meth:`PortForward.stop`.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional

from nemorun_core.errors import ConfigError, ExecutorError


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` cannot be bound here now."""
    with socket.socket() as probe:
        # As a server binds: connections of an earlier listener in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_port(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"must be a port number 1..65535, got {value!r}", path=path)


class PortForward:
    """A running forward 127.0.0.1:``port`` -> ``target_host``:``target_port``. Make it with :meth:`open`."""

    def __init__(self, port: int, target_host: str, target_port: int, listener: socket.socket):
        self.port, self.target_host, self.target_port = port, target_host, target_port
        self._listener = listener
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"ray-forward-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def open(cls, port: int, target_host: str, target_port: int, *, wait: float = 30.0) -> "PortForward":
        """Listen on 127.0.0.1:``port`` and forward each connection; return when the target answers.

        Raises:
            ConfigError: ``port`` is not a port or is in use here (naming ``port`` and the fix).
            ExecutorError: the target did not accept a connection within ``wait`` s.
        """
        check_port(port, "RayCluster.port_forward.port")
        check_port(target_port, "RayCluster.port_forward.target_port")
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as exc:
            listener.close()
            raise ConfigError(f"127.0.0.1:{port} is in use here ({exc.strerror}); pick a free port, e.g. "
                              f"port={free_port()}", path="RayCluster.port_forward.port") from None
        listener.listen(64)
        forward = cls(port, target_host, target_port, listener)
        deadline = time.monotonic() + wait
        while True:
            try:
                socket.create_connection((target_host, target_port), timeout=2).close()
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    listener.close()
                    raise ExecutorError(f"port_forward: {target_host}:{target_port} on the cluster does not "
                                        f"answer ({exc}); is the cluster running? (RayCluster.status())") from None
                time.sleep(0.2)
        forward._thread.start()
        return forward

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            try:
                far = socket.create_connection((self.target_host, self.target_port), timeout=10)
                far.settimeout(None)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._sockets.update((conn, far))
            for a, b in ((conn, far), (far, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self) -> None:
        """Close the listener and every forwarded connection. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass
            self._sockets.clear()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> "PortForward":
        return self

    def __exit__(self, *exc: Optional[object]) -> None:
        self.stop()
