"""scripts/services/unix_bridge.py: TCP over a socket file, both ends, including a connect made before the inner end
exists (how the Ray test head is reached from the host)."""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time

from tests.ray.conftest import REPO

BRIDGE = os.path.join(REPO, "scripts", "services", "unix_bridge.py")


class _Echo(socketserver.StreamRequestHandler):
    def handle(self):
        data = self.rfile.read()  # until the client shuts down its side: half-close must pass through
        self.wfile.write(b"echo:" + data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def test_a_connection_made_before_the_inner_end_exists_goes_through(tmp_path):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sock, port = str(tmp_path / "b.sock"), _free_port()
    outer = subprocess.Popen([sys.executable, BRIDGE, "tcp-to-unix", "--listen", f"127.0.0.1:{port}", "--unix", sock])
    inner = None
    try:
        _wait_listening(port)
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(b"early bytes")
        client.shutdown(socket.SHUT_WR)
        time.sleep(0.5)  # the inner end starts only now
        inner = subprocess.Popen([sys.executable, BRIDGE, "unix-to-tcp", "--unix", sock, "--connect",
                                  f"127.0.0.1:{server.server_address[1]}"])
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        assert answer == b"echo:early bytes"
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    finally:
        for proc in (outer, inner):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        server.shutdown()
    assert not os.path.exists(sock), "the inner end removes its socket file when stopped"


def test_only_loopback_addresses_are_accepted(tmp_path):
    out = subprocess.run([sys.executable, BRIDGE, "tcp-to-unix", "--listen", "0.0.0.0:1", "--unix",
                          str(tmp_path / "s")], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "only loopback" in out.stderr
