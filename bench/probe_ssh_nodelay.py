"""Probe: the cost of one remote command on nemorun's pooled SSH connection, with and without TCP_NODELAY.

    eval "$(bash scripts/services/sshd.sh env)"
    .venvs/prefect/bin/python bench/probe_ssh_nodelay.py

Prints the median of 30 of: ``transport.open_session()``, ``tunnel.run("true")`` and ``tunnel.run("cat >/dev/null",
stdin=12 KB)`` (about one Slurm submission's size), first as nemorun connects today, then with ``TCP_NODELAY`` set on
the transport's socket from here (nemorun_core is not changed). Uses the private ``SSHTunnel._connection()``.
"""

from __future__ import annotations

import os
import socket
import statistics
import time

import nemorun_core as run


def measure(nodelay: bool) -> dict[str, float]:
    e = os.environ
    tunnel = run.SSHTunnel(host=e["NEMORUN_TEST_SSH_HOST"], port=int(e["NEMORUN_TEST_SSH_PORT"]),
                           user=e["NEMORUN_TEST_SSH_USER"], identity=e["NEMORUN_TEST_SSH_KEY"],
                           known_hosts=e["NEMORUN_TEST_SSH_KNOWN_HOSTS"], job_dir="/tmp", keepalive_interval=0)
    tunnel.close()
    conn = tunnel._connection()
    if nodelay:
        conn.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tunnel.run("true")
    samples: dict[str, list[float]] = {"open_session_ms": [], "run_true_ms": [], "run_12KB_stdin_ms": []}
    for _ in range(30):
        t = time.perf_counter()
        conn.transport.open_session().close()
        samples["open_session_ms"].append(time.perf_counter() - t)
    for _ in range(30):
        t = time.perf_counter()
        tunnel.run("true")
        samples["run_true_ms"].append(time.perf_counter() - t)
    for _ in range(30):
        t = time.perf_counter()
        tunnel.run("cat > /dev/null", stdin=b"x" * 12000)
        samples["run_12KB_stdin_ms"].append(time.perf_counter() - t)
    tunnel.close()
    return {k: round(1000 * statistics.median(v), 2) for k, v in samples.items()}


if __name__ == "__main__":
    print("as nemorun connects:", measure(False))
    print("with TCP_NODELAY:   ", measure(True))
