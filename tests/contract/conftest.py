"""The backends of the contract suite: one :class:`Backend` entry per executor, built against its REAL service.

A new backend joins the suite with one more function in ``BACKENDS`` (and its pytest marker): it says how to make
its executor, a job running a POSIX shell body, a made-up handle, and how to count its backend calls and see that
nothing changed on the service. Services come from ``tests/integration/services.py``: a service that was not
started is an error (RuntimeError naming the script to run), never a skip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import subprocess
import time
import uuid
from typing import Any, Callable, ContextManager, Iterator

import pytest

import nemorun_core as run
from nemorun_core.executors.base import Executor, Job, JobHandle, JobState, JobStatus
from tests.integration import services

#: How a body is run everywhere (this machine, the busybox image, the Slurm nodes all have a POSIX /bin/sh).
SHELL = "/bin/sh"


@dataclasses.dataclass
class Backend:
    """One executor under test and the few backend-specific things the properties need.

    Attributes:
        name: the backend's name (also the test id).
        make: a new executor of this backend (keyword arguments override the suite's settings).
        job: ``job(name, body)``: a job with a fresh key whose command runs the shell ``body``.
        unknown: a made-up handle: a job id and key the backend never saw.
        calls: a context manager counting this backend's calls while it is open (``with calls() as n: ... n()``).
        untouched: a context manager asserting that nothing changed on the service or on disk while it was open.
        jobs_with_key: how many jobs the backend holds for a key (to show a second submit started none).
        own: the job's own lines of a log (a backend may add lines of its own to a job's log).
    """

    name: str
    make: Callable[..., Executor]
    job: Callable[[str, str], Job]
    unknown: Callable[[], JobHandle]
    calls: Callable[[], ContextManager[Callable[[], int]]]
    untouched: Callable[[Job], ContextManager[None]]
    jobs_with_key: Callable[[str], int]
    #: The job's own lines of a log, without lines the backend adds itself (a banner, a summary): the identity for
    #: backends that add none.
    own: Callable[[Any], list[str]] = list
    submitted: list[tuple[Executor, JobHandle]] = dataclasses.field(default_factory=list)

    def submit(self, ex: Executor, job: Job) -> JobHandle:
        """Submit and remember the job, so it is cancelled when the test ends whatever happens."""
        handle = ex.submit(job)
        self.submitted.append((ex, handle))
        return handle

    def wait(self, ex: Executor, handle: JobHandle, until: Callable[[JobStatus], bool] = lambda s: s.is_terminal,
             timeout: float = 60) -> JobStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = ex.status(handle)
            if until(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} job {handle.job_id} did not get there in {timeout} s: {status}")
            time.sleep(0.2)

    @staticmethod
    def terminal_state(status: JobStatus) -> JobState:
        assert status.is_terminal, status
        return status.state

    def wait_for_line(self, ex: Executor, handle: JobHandle, line: str, timeout: float = 60) -> None:
        """Until the job has printed ``line`` (so it runs, and its signal handlers are set)."""
        deadline = time.monotonic() + timeout
        while line not in list(ex.logs(handle)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} job {handle.job_id} never printed {line!r}: "
                                     f"{ex.status(handle)}, log {list(ex.logs(handle))}")
            time.sleep(0.2)


def _key(name: str) -> str:
    return f"contract-{uuid.uuid4().hex[:10]}/{name}/0"


def _tree(*roots: str) -> dict[str, float]:
    """Every path under ``roots`` with its modification time."""
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                out[path] = os.lstat(path).st_mtime
        if os.path.exists(root):
            out[root] = os.lstat(root).st_mtime
    return out


@contextlib.contextmanager
def _no_file_changes(*roots: str) -> Iterator[None]:
    before = _tree(*roots)
    yield
    assert _tree(*roots) == before, "dryrun created or changed files"


def _keyed_processes(key: str) -> dict[str, tuple[str, str]]:
    """``{pid: (parent pid, process group)}`` of this machine's live processes whose environment carries the job
    key (every executor that starts local processes sets ``NEMORUN_JOB_KEY``)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"NEMORUN_JOB_KEY={key}".encode() in env and stat[0] not in "ZX":
            found[pid] = (stat[1], stat[2])
    return found


# -- Local ------------------------------------------------------------------------------------------------------------
def _local(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> Backend:
    def make(**kw: Any) -> Executor:
        return run.LocalExecutor(**{"cancel_grace_s": 60.0, **kw})

    def job(name: str, body: str) -> Job:
        return Job(name, _key(name), [SHELL, "-c", body], os.path.join(tmp_path, "jobs", name))

    def unknown() -> JobHandle:
        return JobHandle.create("local", "4194999", _key("ghost"), os.path.join(tmp_path, "no-such-job"),
                                start="1", pgid="4194999")

    @contextlib.contextmanager
    def calls() -> Iterator[Callable[[], int]]:
        # Local has no service: what would be a backend call is a process started (reading /proc is not one).
        count = {"n": 0}
        real = subprocess.Popen.__init__

        def counting(self: Any, *args: Any, **kwargs: Any) -> None:
            count["n"] += 1
            real(self, *args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(subprocess.Popen, "__init__", counting)
            yield lambda: count["n"]

    @contextlib.contextmanager
    def untouched(job: Job) -> Iterator[None]:
        with calls() as n, _no_file_changes(tmp_path):
            yield
        assert n() == 0, "dryrun started a process"
        assert not os.path.exists(job.job_dir)

    def jobs_with_key(key: str) -> int:
        """Process groups of this machine whose processes carry the key in their environment."""
        return len({pgid for _ppid, pgid in _keyed_processes(key).values()})

    return Backend("local", make, job, unknown, calls, untouched, jobs_with_key)


# -- Docker -----------------------------------------------------------------------------------------------------------
def _docker(tmp_path: str) -> Backend:
    from nemorun_core.executors.docker import engine

    svc = services.docker()

    def make(**kw: Any) -> Executor:
        return run.DockerExecutor(**{"container_image": svc.busybox, "docker_host": svc.host, "network": "none",
                                     "cancel_grace_s": 60.0, **kw})

    def job(name: str, body: str) -> Job:
        return Job(name, _key(name), [SHELL, "-c", body], os.path.join(tmp_path, "jobs", name))

    def unknown() -> JobHandle:
        return JobHandle.create("docker", uuid.uuid4().hex * 2, _key("ghost"), os.path.join(tmp_path, "no-such-job"),
                                containers="", docker_host=svc.host)

    def calls() -> ContextManager[Callable[[], int]]:
        @contextlib.contextmanager
        def counting() -> Iterator[Callable[[], int]]:
            with engine.counting_requests(svc.host) as counted:
                yield lambda: counted["n"]
        return counting()

    @contextlib.contextmanager
    def untouched(job: Job) -> Iterator[None]:
        with calls() as n, _no_file_changes(tmp_path):
            yield
        assert n() == 0, "dryrun called the Docker engine"
        assert not engine.list_labelled(svc.host, f"nemorun.key={job.key}"), "dryrun created a container"

    def jobs_with_key(key: str) -> int:
        return len(engine.list_labelled(svc.host, f"nemorun.key={key}"))

    return Backend("docker", make, job, unknown, calls, untouched, jobs_with_key)


def _remove_docker_jobs(backend: Backend) -> None:
    from nemorun_core.executors.docker import engine

    host = services.docker().host
    client = engine.client(host)
    for _ex, handle in backend.submitted:
        for summary in engine.list_labelled(host, f"nemorun.key={handle.key}"):
            client.api.remove_container(summary["Id"], force=True, v=True)


# -- Slurm (over SSH) -------------------------------------------------------------------------------------------------
def _slurm() -> Backend:
    from nemorun_core.tunnel._ssh_pool import ssh_stats

    ssh, cluster = services.ssh(), services.slurm()

    def make(**kw: Any) -> Executor:
        tunnel = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                               known_hosts=ssh.known_hosts, job_dir=cluster.job_dir)
        return run.SlurmExecutor(**{"tunnel": tunnel, "partition": cluster.partition, "account": cluster.account,
                                    "python": cluster.python, "time": "00:05:00", **kw})

    probe = make()
    address = probe.tunnel.address

    def job(name: str, body: str) -> Job:
        return Job(name, _key(name), [SHELL, "-c", body], "/nonexistent-local")

    def unknown() -> JobHandle:
        key = _key("ghost")
        return JobHandle.create("slurm", "987654321", key, f"{cluster.job_dir}/{key.split('/')[0]}/ghost",
                                address=address, array="")

    @contextlib.contextmanager
    def calls() -> Iterator[Callable[[], int]]:
        before = ssh_stats(address).commands_run
        yield lambda: ssh_stats(address).commands_run - before

    @contextlib.contextmanager
    def untouched(job: Job) -> Iterator[None]:
        before = ssh_stats(address)
        yield
        after = ssh_stats(address)
        assert (after.commands_run, after.connections_opened) == (before.commands_run, before.connections_opened), \
            "dryrun ran a command on the cluster or connected to it"
        remote = probe.remote_dir(job, probe.job_root())
        assert not probe.tunnel.exists(remote), f"dryrun made the job directory {remote} on the cluster"

    def jobs_with_key(key: str) -> int:
        name = probe.job_name(Job(key.split("/")[1], key, [], ""))
        out = probe.tunnel.run(f"squeue --me -h -n {shlex.quote(name)} -o %i; "
                               f"sacct -X -n -P --name={shlex.quote(name)} -o JobID", check=False).stdout
        return len({line.strip() for line in out.splitlines() if line.strip()})

    return Backend("slurm", make, job, unknown, calls, untouched, jobs_with_key)


# -- Ray (the head of scripts/services/ray.sh, through its bridge) --------------------------------------------------
def _ray(tmp_path: str) -> Backend:
    from nemorun_core.executors.ray import client as ray_client

    svc = services.ray()

    def make(**kw: Any) -> Executor:
        return run.RayExecutor(**{"address": svc.address, **kw})

    def job(name: str, body: str) -> Job:
        return Job(name, _key(name), [SHELL, "-c", body], os.path.join(tmp_path, "jobs", name))

    def unknown() -> JobHandle:
        return JobHandle.create("ray", f"nemorun-ghost-{uuid.uuid4().hex[:10]}", _key("ghost"),
                                os.path.join(tmp_path, "no-such-job"), address=svc.address)

    @contextlib.contextmanager
    def calls() -> Iterator[Callable[[], int]]:
        with ray_client.counting_requests(svc.address) as counted:
            yield lambda: counted["n"]

    def jobs_with_key(key: str) -> int:
        jobs = ray_client.client(svc.address).list_jobs()
        return sum(1 for j in jobs if (j.metadata or {}).get("nemorun.key") == key)

    @contextlib.contextmanager
    def untouched(job: Job) -> Iterator[None]:
        ray_client.client(svc.address)  # made before counting: making a client is a version request
        with calls() as n, _no_file_changes(tmp_path):
            yield
        assert n() == 0, "dryrun called the Ray cluster"
        assert jobs_with_key(job.key) == 0, "dryrun submitted a Ray job"
        assert not os.path.exists(job.job_dir)

    return Backend("ray", make, job, unknown, calls, untouched, jobs_with_key)


# -- a third-party backend (tests/fixtures/nemorun_echo_backend, found through the registry's entry point) -----
def _echo(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> Backend:
    from nemorun_core.executors import registry

    local = _local(tmp_path, monkeypatch)  # same machine, same ways to observe it: processes and files
    echo_class = registry.get("echo").load()

    def make(**kw: Any) -> Executor:
        return echo_class(**{"cancel_grace_s": 60.0, **kw})

    def unknown() -> JobHandle:
        return JobHandle.create("echo", "4194999", _key("ghost"), os.path.join(tmp_path, "no-such-job"), start="1")

    def jobs_with_key(key: str) -> int:
        """Supervisors carrying the key: processes with the key whose parent does not have it (each job's
        supervisor and its task are in sessions of their own, so process groups would count two per job)."""
        keyed = _keyed_processes(key)
        return sum(1 for ppid, _pgid in keyed.values() if ppid not in keyed)

    def own(lines: Any) -> list[str]:
        return [line for line in lines if not line.startswith("[echo] ")]  # its banner and its end-of-job line

    return Backend("echo", make, local.job, unknown, local.calls, local.untouched, jobs_with_key, own)


BACKENDS = {
    "local": pytest.param("local", marks=pytest.mark.local),
    "echo": pytest.param("echo", marks=pytest.mark.local),
    "docker": pytest.param("docker", marks=pytest.mark.docker),
    "slurm": pytest.param("slurm", marks=[pytest.mark.slurm, pytest.mark.ssh]),
    "ray": pytest.param("ray", marks=pytest.mark.ray),
}


@pytest.fixture(params=list(BACKENDS.values()))
def backend(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Each backend of the suite against its real service; every job a test submitted is cancelled after it."""
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    name = request.param
    made = {"local": lambda: _local(str(tmp_path), monkeypatch), "echo": lambda: _echo(str(tmp_path), monkeypatch),
            "docker": lambda: _docker(str(tmp_path)),
            "slurm": _slurm, "ray": lambda: _ray(str(tmp_path))}[name]()
    yield made
    for ex, handle in made.submitted:
        try:
            if not ex.status(handle).is_terminal:
                ex.cancel(handle)
        except Exception:  # noqa: BLE001 - cleanup must reach every job; the test reported the failure
            pass
    if name == "docker":
        _remove_docker_jobs(made)
