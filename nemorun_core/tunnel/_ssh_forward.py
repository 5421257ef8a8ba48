"""Local port forwarding over SSH ``direct-tcpip`` channels (what ``ssh -L`` does), for ``SSHTunnel.forward``.

A listening socket on 127.0.0.1 and a small daemon thread that accepts connections; each accepted connection gets
its own channel (opened through a callback, so a dropped SSH connection is re-opened for the next client) and a
daemon thread copying bytes both ways. Daemon threads, because a forward left open must not keep the process alive.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from nemorun_core.tunnel.base import Forward

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
# How often blocked threads look at the closed flag: bounds how long close() takes.
_POLL_S = 0.2


class SSHForward(Forward):
    """``127.0.0.1:local_port`` here -> ``remote_host:remote_port`` as seen from the SSH server.

    Args:
        open_channel: called with the client's ``(host, port)`` for each accepted connection; returns a paramiko
            channel already connected to the target, or raises.
        local_port: port to listen on here (0: a free one, see ``local_port`` afterwards).
        label: ``remote_host:remote_port via user@host:port``, for logs.
    """

    def __init__(self, open_channel: Callable[[tuple[str, int]], Any], local_port: int, label: str):
        self._open_channel = open_channel
        self.label = label
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Any] = set()  # live sockets and channels, closed by close()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", local_port))
            self._listener.listen(64)
            # accept() with a timeout: closing a socket does not wake a thread blocked in accept() on every OS.
            self._listener.settimeout(_POLL_S)
        except OSError:
            self._listener.close()
            raise
        self.local_port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"nemorun-forward-{self.local_port}")
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return f"<SSHForward 127.0.0.1:{self.local_port} -> {self.label} ({state})>"

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break  # the listener was closed
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client, peer), daemon=True,
                             name=f"nemorun-forward-{self.local_port}-{peer[1]}").start()

    def _serve(self, client: socket.socket, peer: tuple[str, int]) -> None:
        try:
            chan = self._open_channel(peer)
        except Exception as exc:  # noqa: BLE001 - one failed client must not stop the forward
            log.warning("forward %s: cannot open a channel for %s:%s: %s", self.label, peer[0], peer[1], exc)
            client.close()
            return
        with self._lock:
            if self._closed.is_set():
                chan.close()
                client.close()
                return
            self._open.update((client, chan))
        try:
            self._pump(client, chan)
        except OSError as exc:
            log.debug("forward %s: connection from %s ended: %s", self.label, peer, exc)
        finally:
            with self._lock:
                self._open.difference_update((client, chan))
            chan.close()
            client.close()

    def _pump(self, client: socket.socket, chan: Any) -> None:
        # Half-closes are passed on (EOF from the client -> shutdown_write on the channel and back), so
        # request/response protocols that signal the end of a request by closing their write side still work.
        sources = [client, chan]
        while sources and not self._closed.is_set():
            ready, _, _ = select.select(sources, [], [], _POLL_S)
            if client in ready:
                data = client.recv(_CHUNK)
                if data:
                    chan.sendall(data)
                elif chan.eof_received:
                    break  # both sides are done: a full close, whose EOF and CLOSE paramiko keeps in order
                else:
                    # A lone EOF can cross the target's CLOSE (paramiko#1115) and make the server drop the whole
                    # connection; only sent while the target is still talking, where it is needed.
                    chan.shutdown_write()
                    sources.remove(client)
            if chan in ready:
                data = chan.recv(_CHUNK)
                if data:
                    client.sendall(data)
                else:
                    try:
                        client.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    sources.remove(chan)
            if chan.closed and chan not in sources:
                break  # the target closed and everything it sent has been passed on: nothing can flow any more

    def close(self) -> None:
        """Stop listening and close every forwarded connection. Idempotent; returns within about 0.2 s."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            live, self._open = list(self._open), set()
        self._listener.close()
        for endpoint in live:
            try:
                endpoint.close()
            except OSError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2 * _POLL_S)
