"""The cells of the exactly-once fault matrix, shared by the launcher, Prefect and Airflow matrices.

A cell is (backend, kill point): an executor of :mod:`tests.integration._faults` whose process is killed at that
point, a marker file the job appends one line to per run (``count_run``), and the checks every cell ends with:
exactly one run, and nothing of the job left running on the backend (no live local process group, no running
container, nothing in ``squeue``). The marker lives where the job can write it: a host directory (mounted into the
containers for Docker), or the Slurm cluster user's job directory, read back over the cluster's SSH tunnel.

Real services only: a backend that is not running fails here (``tests/integration/services.py``), never skips.
"""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import time
import uuid
from typing import Any, Callable, Iterable

from nemorun_core.executors.base import Executor, JobHandle, JobState
from tests.integration import _faults, services

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("local", "docker", "slurm")
#: Where the Docker jobs find this repository's tests package.
DOCKER_TESTS = "/opt/nemorun-fault-matrix"
#: Seconds each matrix job runs: short enough for the budget.
JOB_SECONDS = 2.5
#: Seconds the job of a "while following" cell runs: the kill comes at the follower's second round that reads the
#: job RUNNING, and on two loaded cores (a CI machine) 2.5 s of job may end before a second round.
FOLLOWED_JOB_SECONDS = 10.0


def job_seconds(point: str) -> float:
    """How long the job of the cell killed at ``point`` runs."""
    return FOLLOWED_JOB_SECONDS if point.startswith("while_following") else JOB_SECONDS


def slurm_tunnel() -> Any:
    from nemorun_core.tunnel.ssh import SSHTunnel

    ssh, cluster = services.ssh(), services.slurm()
    return SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key, known_hosts=ssh.known_hosts,
                     job_dir=cluster.job_dir)


def marker_dir(backend: str, local_dir: str) -> str:
    """A fresh directory for one cell's markers that the job can write (created now, with ``local_dir``, where the
    cell keeps its own files: the Slurm job writes on the cluster instead)."""
    os.makedirs(local_dir, exist_ok=True)
    if backend != "slurm":
        return local_dir
    path = f"{services.slurm().job_dir}/fault-matrix/{uuid.uuid4().hex[:12]}"
    slurm_tunnel().run(f"mkdir -p {shlex.quote(path)}")
    return path


def executor(backend: str, kill_at: str = "", flag: str = "", marks: str = "", **settings: Any) -> Executor:
    """The killing executor of ``backend`` (``kill_at=""``: one that never kills), reaching the test services.

    ``marks`` is the marker directory: Docker mounts it into the containers at the same path.
    """
    fault = {"kill_at": kill_at, "flag": flag}
    if backend == "local":
        return _faults.LocalKillsItself(cancel_grace_s=1.0, **fault, **settings)
    if backend == "docker":
        # The job imports count_run from this repository's tests package, which Docker mounts only from the
        # submitting process's launch path (sys.path[0], the working directory): an Airflow worker has neither
        # pointing here (it reaches the tests through PYTHONPATH), so the package is mounted explicitly.
        svc = services.docker()
        volumes = [f"{os.path.join(REPO, 'tests')}:{DOCKER_TESTS}/tests:ro"] + ([f"{marks}:{marks}"] if marks else [])
        return _faults.DockerKillsItself(container_image=svc.python, docker_host=svc.host, cancel_grace_s=1.0,
                                         volumes=volumes, env_vars={"PYTHONPATH": DOCKER_TESTS}, **fault,
                                         **settings)
    if backend == "slurm":
        cluster = services.slurm()
        return _faults.SlurmKillsItself(tunnel=slurm_tunnel(), partition=cluster.partition, account=cluster.account,
                                        python=cluster.python, time="00:05:00", env_vars={"PYTHONPATH": REPO},
                                        **fault, **settings)
    raise ValueError(f"unknown backend {backend!r}; the matrix has {BACKENDS}")


def runs(backend: str, marker: str) -> int:
    """How many times the job ran: the lines of its marker file (0 when it never ran)."""
    if backend == "slurm":
        done = slurm_tunnel().run(f"cat {shlex.quote(marker)} 2>/dev/null || true")
        return len(done.stdout.splitlines())
    try:
        with open(marker) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def until(what: str, check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it is truthy; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def running_on_backend(ex: Executor, handle: JobHandle) -> list[str]:
    """What of the job the backend itself still runs, asked natively (not through the executor's status)."""
    if handle.backend == "local":
        pgid = int(handle.extra("pgid") or handle.job_id)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        alive = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                alive.append(f"local process {pid} (group {pgid})")
        return alive
    if handle.backend == "docker":
        import docker

        client = docker.DockerClient(base_url=services.docker().host)
        try:
            found = client.containers.list(filters={"label": f"nemorun.key={handle.key}", "status": "running"})
            return [f"container {c.name} ({c.status})" for c in found]
        finally:
            client.close()
    if handle.backend == "slurm":
        done = slurm_tunnel().run(f"squeue -h -o '%i %T' -j {shlex.quote(handle.job_id)} 2>/dev/null || true")
        return [f"slurm job {line}" for line in done.stdout.splitlines()
                if line.strip() and line.split()[-1] not in ("COMPLETED", "CANCELLED", "FAILED")]
    raise ValueError(f"unknown backend {handle.backend!r}")


def assert_nothing_running(ex: Executor, handle: JobHandle, timeout: float = 30.0) -> None:
    """The job is terminal for the executor and the backend runs nothing of it (waiting up to ``timeout`` s for a
    cancelled job's processes to go)."""
    until(f"job {handle.key} to be terminal", lambda: ex.status(handle).is_terminal, timeout)
    left: list[str] = []

    def gone() -> bool:
        left[:] = running_on_backend(ex, handle)
        return not left

    try:
        until(f"the backend to stop job {handle.key}", gone, timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"job {handle.key} ended for the executor but the backend still runs: {left}") from None


def assert_cancelled(ex: Executor, handle: JobHandle, timeout: float = 60.0) -> None:
    """The job ended CANCELLED, and nothing of it runs any more."""
    status = until(f"job {handle.key} to end", lambda: (s := ex.status(handle)).is_terminal and s, timeout)
    assert status.state is JobState.CANCELLED, f"job {handle.key}: {status}"
    assert_nothing_running(ex, handle, timeout)


def selected_backends(request: Any) -> list[str]:
    """The backends that the selected tests of ``request``'s module ask for (``-k``, markers), in matrix order: a
    module's cells of every such backend are run together, at once."""
    module = request.node.nodeid.split("::")[0]
    wanted = {item.callspec.params.get("backend") for item in request.session.items
              if item.nodeid.startswith(module + "::") and hasattr(item, "callspec")}
    return [b for b in BACKENDS if b in wanted]


def in_parallel(fn: Callable[[Any], Any], items: Iterable[Any]) -> dict[Any, Any]:
    """``{item: fn(item)}`` computed in threads (each cell mostly waits on processes and services); an exception is
    kept as the item's value, so one failing cell does not hide the others' outcomes."""
    items = list(items)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = {item: pool.submit(fn, item) for item in items}
    out = {}
    for item, future in futures.items():
        exc = future.exception()
        out[item] = exc if exc is not None else future.result()
    return out


def outcome(value: Any) -> Any:
    """Re-raise a cell's exception (kept by :func:`in_parallel`) in the test that reports that cell."""
    if isinstance(value, BaseException):
        raise value
    return value
