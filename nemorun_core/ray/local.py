"""A Ray cluster on this machine: ``ray start --head --block`` in a session of its own (``LocalExecutor``).

:func:`render_script` is the pure half: the exact bash script that runs (``RayCluster.start(dryrun=True)`` shows it):
the ``pre_ray_start_commands``, then ``exec`` of Ray's ``start --head --block`` with every port fixed (two local
clusters never fight over Ray's default ports, and on busy machines the agents' ports are known in advance) and a
short private ``--temp-dir`` (Ray's socket paths must stay under the kernel's 107 characters).

Every process of the cluster carries ``NEMORUN_RAY_CLUSTER=<state dir>`` in its environment (Ray's processes and
jobs inherit it from the script), which is how :meth:`LocalRayBackend.stop` finds them all, by pid, whatever
session a Ray worker put itself in: never ``ray stop``, which stops every Ray process of the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any, Optional, Sequence

from nemorun_core.errors import ConfigError
from nemorun_core.executors.files import write_atomic
from nemorun_core.ray.backend import ClusterNotReadyError, ClusterState, ClusterStatus, RayBackend, state_dir
from nemorun_core.ray.forward import PortForward, free_port, port_in_use

MARKER = "NEMORUN_RAY_CLUSTER"
STATE_FILE, SCRIPT_FILE, LOG_FILE = "state.json", "start.sh", "head.log"
#: Ray's own defaults, used when free (so a first local cluster is where Ray users expect it).
DEFAULT_PORTS = {"port": 6379, "dashboard-port": 8265, "ray-client-server-port": 10001,
                 "dashboard-agent-listen-port": 52365, "dashboard-agent-grpc-port": 52366,
                 "metrics-export-port": 52367, "runtime-env-agent-port": 52368, "node-manager-port": 52369,
                 "object-manager-port": 52370}
STOP_GRACE_S = 15.0


def render_script(*, name: str, marker_value: str, python: str, temp_dir: str, ports: dict[str, int],
                  resource_args: Sequence[str], pre_ray_start_commands: Sequence[str]) -> str:
    """The bash script that starts the head of cluster ``name`` in the foreground. Pure."""
    ray_start = [python, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--disable-usage-stats",
                 "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}",
                 *[f"--{flag}={port}" for flag, port in sorted(ports.items())], *resource_args]
    lines = [
        "#!/bin/bash",
        f"# Written by nemorun: the head of the local Ray cluster {name!r}.",
        "set -euo pipefail",
        f"export {MARKER}={shlex.quote(marker_value)}",
        "export RAY_USAGE_STATS_ENABLED=0",
        # Ray runs job entrypoints with the raylet's PATH: this interpreter's bin first, so `python` is this one.
        f"export PATH={shlex.quote(os.path.dirname(python))}:\"$PATH\"",
    ]
    if pre_ray_start_commands:
        lines.append("# pre_ray_start_commands")
        lines.extend(pre_ray_start_commands)
    lines.append("exec " + shlex.join(ray_start))
    return "\n".join(lines) + "\n"


class LocalRayBackend(RayBackend):
    """``RayCluster(executor=run.LocalExecutor())``: one node, this machine."""

    @property
    def dir(self) -> str:
        return state_dir(self.cluster.name)

    def default_python(self) -> str:
        return sys.executable

    def _temp_dir(self) -> str:
        digest = hashlib.sha256(os.path.abspath(self.dir).encode()).hexdigest()[:12]
        return os.path.join("/tmp", f"nemorun-ray-{digest}")

    def _state(self) -> Optional[dict[str, Any]]:
        try:
            with open(os.path.join(self.dir, STATE_FILE)) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _ports(self) -> dict[str, int]:
        taken: set[int] = set()
        ports = {}
        for flag, default in DEFAULT_PORTS.items():
            port = default
            while port in taken or port_in_use(port):
                port = free_port()
            taken.add(port)
            ports[flag] = port
        return ports

    def _check_size(self) -> None:
        if self.cluster.size.num_nodes != 1:
            raise ConfigError(f"a local Ray cluster is one node (this machine), got num_nodes="
                              f"{self.cluster.size.num_nodes}; use num_nodes=1, or an executor that spans nodes "
                              "(Ray on Slurm)", path="RayCluster.num_nodes")

    def render_start(self, pre_ray_start_commands: Sequence[str], ports: Optional[dict[str, int]] = None) -> str:
        self._check_size()
        return render_script(name=self.cluster.name, marker_value=self.dir, python=self.default_python(),
                             temp_dir=self._temp_dir(), ports=ports or self._ports(),
                             resource_args=self.cluster.size.ray_start_args(),
                             pre_ray_start_commands=list(pre_ray_start_commands))

    def dashboard_url(self) -> Optional[str]:
        state = self._state()
        return state["dashboard"] if state else None

    def start(self, *, timeout: float, pre_ray_start_commands: Sequence[str], wait_until_ready: bool) -> str:
        self._check_size()
        state = self._state()
        if state is not None and _running(state["pid"]):
            if wait_until_ready:
                self._wait(state, timeout, None)
            return state["dashboard"]
        if state is not None:
            self.stop()  # it died: clear what it left before starting again
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        ports = self._ports()
        script = self.render_start(pre_ray_start_commands, ports)
        script_path = os.path.join(self.dir, SCRIPT_FILE)
        write_atomic(script_path, script)
        log_path = os.path.join(self.dir, LOG_FILE)
        with open(log_path, "wb") as log:  # one start's log: its tail is what a failure shows
            proc = subprocess.Popen(["/bin/bash", script_path], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        state = {"pid": proc.pid, "dashboard": f"http://127.0.0.1:{ports['dashboard-port']}", "ports": ports,
                 "temp_dir": self._temp_dir(), "log": log_path, "started": time.time()}
        write_atomic(os.path.join(self.dir, STATE_FILE), json.dumps(state, indent=2, sort_keys=True))
        if wait_until_ready:
            self._wait(state, timeout, proc)
        return state["dashboard"]

    def _wait(self, state: dict[str, Any], timeout: float, proc: Optional[subprocess.Popen]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll() if proc is not None else (None if _running(state["pid"]) else -1)
            if code is not None:
                tail = _tail(state["log"])
                self.stop()
                raise ClusterNotReadyError(
                    f"the head node of Ray cluster {self.cluster.name!r} exited while starting (status {code}); "
                    f"its log is {state['log']}; last lines:\n{tail}")
            if _answers(state["dashboard"]):
                return
            if time.monotonic() > deadline:
                tail = _tail(state["log"])
                self.stop()
                raise ClusterNotReadyError(
                    f"the head node of Ray cluster {self.cluster.name!r} did not become ready in {timeout:g} s "
                    f"(its dashboard {state['dashboard']} never answered); it was stopped. Its log is "
                    f"{state['log']}; last lines:\n{tail}\nOn a loaded machine pass a longer start(timeout=...)")
            time.sleep(0.5)

    def status(self) -> ClusterStatus:
        state = self._state()
        if state is None:
            return ClusterStatus(ClusterState.NOT_STARTED, message=f"no cluster {self.cluster.name!r} was started")
        if not _running(state["pid"]):
            return ClusterStatus(ClusterState.FAILED, state["dashboard"], message="its head process has exited",
                                 log=state["log"])
        if _answers(state["dashboard"]):
            return ClusterStatus(ClusterState.RUNNING, state["dashboard"], nodes=1, log=state["log"])
        return ClusterStatus(ClusterState.STARTING, state["dashboard"], log=state["log"])

    def stop(self) -> None:
        from nemorun_core.executors.ray import client as C

        state = self._state()
        pids = _marked(self.dir)
        if state is not None and _running(state["pid"]):
            pids.add(state["pid"])
        _terminate(pids, state["pid"] if state else None)
        if state is not None:
            C.forget(state["dashboard"])
            shutil.rmtree(state.get("temp_dir") or self._temp_dir(), ignore_errors=True)
        try:
            os.unlink(os.path.join(self.dir, STATE_FILE))
        except FileNotFoundError:
            pass

    def port_forward(self, port: int, target_port: int) -> PortForward:
        # The head listens on this machine's loopback; Ray's default dashboard port means this cluster's dashboard.
        state = self._state()
        if state is not None and target_port == DEFAULT_PORTS["dashboard-port"]:
            target_port = state["ports"]["dashboard-port"]
        return PortForward.open(port, "127.0.0.1", target_port)


def _answers(dashboard: str) -> bool:
    """The Jobs API answers (a job list): the head, its dashboard and the job manager are up."""
    try:
        with urllib.request.urlopen(f"{dashboard}/api/jobs/", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def _marked(marker_value: str) -> set[int]:
    """Live processes whose environment carries ``NEMORUN_RAY_CLUSTER=<marker_value>``."""
    needle = f"{MARKER}={marker_value}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0") and _running(int(entry)):
                    found.add(int(entry))
        except OSError:
            continue
    return found


def _terminate(pids: set[int], leader: Optional[int]) -> None:
    """TERM the head's session and every marked process, wait, then KILL what is left."""
    def signal_all(sig: int) -> None:
        if leader is not None:
            try:
                os.killpg(leader, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    if not pids:
        return
    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        _reap(pids)
        pids = {p for p in pids if _running(p)}
        if not pids:
            return
        if leader is not None and pids == {leader}:
            # `ray start --block` stays after its processes have ended on TERM (it counts their exit as expected
            # and keeps watching): once it is alone there is nothing left for it to stop gracefully.
            break
        time.sleep(0.2)
    signal_all(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        _reap(pids)
        pids = {p for p in pids if _running(p)}
        time.sleep(0.1)


def _reap(pids: set[int]) -> None:
    """Collect those of ``pids`` that are our children (the head, when this process started it)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"
