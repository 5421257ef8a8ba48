"""Following a Slurm job while its SSH session is cut: the real sshd, the real cluster (issue 10 item 9).

A job prints one line a second for about 20 s while ``exp.run(tail_logs=True)`` follows it over SSH. The session
is cut under it in two ways:

- the real sshd process serving our connection is killed (as a restarted sshd or a dropped network would do);
- the connection goes through a TCP relay on 127.0.0.1 in front of the real sshd, and the relay drops every
  connection and refuses new ones for a while: an outage of the login node as the client sees it. The relay is
  used rather than stopping the shared sshd, so tests of others running at the same time keep their server.

Following must continue and print every line once, in order; with a short outage limit and the relay kept down,
it must fail with a message saying the job is still running and how to re-attach.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import BackendUnavailableError
from nemorun_core.tunnel.base import TunnelError
from nemorun_core.executors.base import JobState
from nemorun_core.executors.outage import OutageError
from nemorun_core.tunnel.ssh import ssh_stats
from tests.integration import services

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

LINES = 20
JOB = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 1; done"
EXPECTED = [f"line {i}" for i in range(1, LINES + 1)]


class Relay:
    """A TCP relay 127.0.0.1:port -> the real sshd that can cut every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listening = threading.Event()
        self.restore()

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listening.set()
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        """Drop every relayed connection and stop listening: new connections are refused until ``restore``."""
        self._listening.clear()
        time.sleep(0.5)  # the accept loop notices within its 0.2 s timeout and closes the listener
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self._sockets += [client, upstream]
                    self.accepted += 1
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def relay():
    ssh = services.ssh()
    relay = Relay((ssh.host, ssh.port))
    yield relay
    relay.cut()


def _executor(tunnel):
    cluster = services.slurm()
    return run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                             python=cluster.python, time="00:05:00")


def _direct_tunnel():
    ssh, cluster = services.ssh(), services.slurm()
    return run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key, known_hosts=ssh.known_hosts,
                         job_dir=cluster.job_dir)


def _relayed_tunnel(relay, tmp_path):
    """A tunnel through the relay; the host key is the real server's, listed under the relay's port."""
    ssh, cluster = services.ssh(), services.slurm()
    with open(ssh.known_hosts) as f:
        key = next(line.split(" ", 1)[1] for line in f if line.startswith(f"[{ssh.host}]:{ssh.port} "))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{ssh.host}]:{relay.port} {key}")
    return run.SSHTunnel(host=ssh.host, port=relay.port, user=ssh.user, identity=ssh.key,
                         known_hosts=str(known_hosts), job_dir=cluster.job_dir)


def _when_running(exp, then, *, timeout: float = 120) -> threading.Thread:
    """In a thread: once the job has printed its first lines (as seen by the follower), call ``then()``."""

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spec = exp._tasks.get("t")
            if spec is not None and spec.status is not None and spec.status.state is JobState.RUNNING:
                time.sleep(3)  # a few lines in
                then()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _printed_lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_following_survives_killed_sshd_sessions(home, capsys):
    tunnel = _direct_tunnel()
    executor = _executor(tunnel)
    exp = run.Experiment("ssh-cut")
    exp.add(run.Script(inline=JOB), executor=executor, name="t")
    before = ssh_stats(tunnel.address).connections_opened
    killed = []

    def kill_session_twice():
        for _ in range(2):
            # $PPID of a remote shell is the sshd process serving our pooled connection (the follower's too).
            pid = int(tunnel.run("echo $PPID").stdout)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            time.sleep(4)

    watcher = _when_running(exp, kill_session_twice)
    exp.run(tail_logs=True, quiet=True)
    watcher.join(timeout=60)
    assert len(killed) == 2, "the sessions were not cut while the job ran"
    assert exp.status(quiet=True)["t"]["state"] == "SUCCEEDED"
    assert _printed_lines(capsys) == EXPECTED
    assert ssh_stats(tunnel.address).connections_opened - before >= 2  # reconnected after each cut


def test_following_survives_a_login_node_outage(home, relay, tmp_path, capsys):
    executor = _executor(_relayed_tunnel(relay, tmp_path))
    exp = run.Experiment("ssh-outage")
    exp.add(run.Script(inline=JOB), executor=executor, name="t")
    outage = {}

    def outage_of_5s():
        outage["connections"] = relay.accepted
        relay.cut()
        outage["start"] = time.monotonic()
        time.sleep(5)
        relay.restore()

    watcher = _when_running(exp, outage_of_5s)
    exp.run(tail_logs=True, quiet=True)  # the default outage limit (300 s) is far longer than the outage
    watcher.join(timeout=60)
    assert "start" in outage, "the outage did not happen while the job ran"
    assert exp.status(quiet=True)["t"]["state"] == "SUCCEEDED"
    assert _printed_lines(capsys) == EXPECTED
    assert relay.accepted > outage["connections"]  # it reconnected after the outage


def test_outage_past_the_limit_says_the_job_still_runs_and_how_to_reattach(home, relay, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_OUTAGE_TIMEOUT", "3")
    executor = _executor(_relayed_tunnel(relay, tmp_path))
    exp = run.Experiment("ssh-gone")
    exp.add(run.Script(inline=JOB), executor=executor, name="t")
    cut = {}

    def cut_for_good():
        relay.cut()
        cut["at"] = time.monotonic()

    watcher = _when_running(exp, cut_for_good)
    with pytest.raises(OutageError) as info:
        exp.run(tail_logs=True, quiet=True)
    gave_up = time.monotonic()
    watcher.join(timeout=60)
    assert isinstance(info.value, BackendUnavailableError) and info.value.limit == 3
    assert gave_up - cut["at"] >= 3, "it gave up before the outage limit"
    handle = exp._tasks["t"].handle
    msg = str(info.value)
    assert "still running" in msg and f"slurm job {handle.job_id}" in msg and handle.key in msg
    assert f"nemorun experiment resume {exp.id}" in msg and f"nemorun experiment logs {exp.id} TASK -f" in msg
    assert "NEMORUN_OUTAGE_TIMEOUT" in msg and "cannot connect" in msg

    # The job did keep running, and the experiment can be re-attached once the login node is back.
    direct = _executor(_direct_tunnel())
    assert direct.status(handle).state in (JobState.RUNNING, JobState.SUCCEEDED)
    relay.restore()
    statuses = run.Experiment.from_id(exp.id).wait(timeout=120)
    assert statuses["t"].state is JobState.SUCCEEDED
    assert run.Experiment.from_id(exp.id).logs("t").splitlines() == EXPECTED


def test_auth_and_host_key_failures_are_not_outages(home, tmp_path):
    ssh = services.ssh()
    refused = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.bad_key,
                            known_hosts=ssh.known_hosts, job_dir="/tmp", use_agent=False)
    wrong_key = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                              known_hosts=ssh.wrong_known_hosts, job_dir="/tmp")
    for tunnel in (refused, wrong_key):
        start = time.monotonic()
        with pytest.raises(TunnelError) as info:
            tunnel.run("true")
        assert not isinstance(info.value, BackendUnavailableError), info.value
        assert time.monotonic() - start < 20
