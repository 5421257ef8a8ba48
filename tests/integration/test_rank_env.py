"""Every backend's processes see the same rank environment (``nemorun_core/executors/ranks.py``).

One job of two processes per backend, against the real services (Local: this machine's processes; Docker: the
engine of scripts/services/docker.sh; Slurm: the cluster of scripts/services/slurm.sh over the SSH server): each
process writes the distributed-training variables it sees into the job directory, read back with ``fetch_file``.
"""

from __future__ import annotations

import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.executors import ranks
from nemorun_core.executors.base import Executor, Job, JobState
from tests.integration import services

# Every name a distributed job might be given (more than nemorun sets: a backend that set another would show).
CANDIDATES = (*ranks.PROCESS_VARS, *ranks.NODE_VARS, "ROLE_RANK", "ROLE_WORLD_SIZE", "TORCHELASTIC_RUN_ID")
BODY = ("env | grep -E '^(" + "|".join(CANDIDATES) + ")=' | sort > \"$NEMORUN_JOB_DIR/env.$RANK.tmp\" && "
        "mv \"$NEMORUN_JOB_DIR/env.$RANK.tmp\" \"$NEMORUN_JOB_DIR/env.$RANK\"")


def _local(tmp_path) -> tuple[Executor, str]:
    return run.LocalExecutor(ntasks_per_node=2), str(tmp_path / "jobs" / "ranks")


def _docker(tmp_path) -> tuple[Executor, str]:
    svc = services.docker()
    return (run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="host", ntasks_per_node=2),
            str(tmp_path / "jobs" / "ranks"))


def _slurm(tmp_path) -> tuple[Executor, str]:
    ssh, cluster = services.ssh(), services.slurm()
    tunnel = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                           known_hosts=ssh.known_hosts, job_dir=cluster.job_dir)
    ex = run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                           python=cluster.python, time="00:05:00", ntasks_per_node=2)
    return ex, "/nonexistent-local"


BACKENDS = [
    pytest.param(_local, id="local", marks=pytest.mark.local),
    pytest.param(_docker, id="docker", marks=pytest.mark.docker),
    pytest.param(_slurm, id="slurm", marks=[pytest.mark.slurm, pytest.mark.ssh]),
]


def _run(make, tmp_path) -> dict[int, dict[str, str]]:
    """The rank environment each process of a two-process job saw, by rank."""
    ex, job_dir = make(tmp_path)
    job = Job("ranks", f"ranks-{uuid.uuid4().hex[:10]}/ranks/0", ["/bin/sh", "-c", BODY], job_dir)
    handle = ex.submit(job)
    try:
        deadline = time.monotonic() + 120
        while not (status := ex.status(handle)).is_terminal:
            assert time.monotonic() < deadline, f"{handle.backend} job did not end: {status}"
            time.sleep(0.3)
        assert status.state is JobState.SUCCEEDED, (status, ex.log_tail(handle))
        seen = {}
        for rank in (0, 1):
            data = ex.fetch_file(handle, f"env.{rank}")
            assert data is not None, f"{handle.backend}: rank {rank} wrote no env.{rank} (RANK unset?)"
            seen[rank] = dict(line.split("=", 1) for line in data.decode().splitlines())
        return seen
    finally:
        if not ex.status(handle).is_terminal:
            ex.cancel(handle)


@pytest.mark.parametrize("make", BACKENDS)
def test_each_process_gets_the_rank_environment(make, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    seen = _run(make, tmp_path)
    for rank, env in seen.items():
        assert set(env) == set(ranks.PROCESS_VARS), env
        assert env["RANK"] == env["NEMORUN_RANK"] == env["LOCAL_RANK"] == str(rank)
        assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["NODE_RANK"], env["GROUP_RANK"]) == ("2", "2", "0", "0")
        assert 1 <= int(env["MASTER_PORT"]) <= 65535 and env["MASTER_ADDR"]
    assert seen[0]["MASTER_ADDR"] == seen[1]["MASTER_ADDR"] and seen[0]["MASTER_PORT"] == seen[1]["MASTER_PORT"]


@pytest.mark.local
@pytest.mark.docker
@pytest.mark.slurm
@pytest.mark.ssh
def test_local_docker_and_slurm_processes_see_the_same_names_and_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    by_backend = {}
    for param in BACKENDS:
        (make,) = param.values
        by_backend[param.id] = _run(make, tmp_path / param.id)
    names = {backend: {rank: sorted(env) for rank, env in seen.items()} for backend, seen in by_backend.items()}
    assert names["local"] == names["docker"] == names["slurm"], names
    # the same values too, apart from where rank 0 listens (this machine, or the cluster's first node)
    where = ("MASTER_ADDR", "MASTER_PORT")
    values = {backend: {rank: {k: v for k, v in env.items() if k not in where} for rank, env in seen.items()}
              for backend, seen in by_backend.items()}
    assert values["local"] == values["docker"] == values["slurm"], values
    assert by_backend["local"][0]["MASTER_ADDR"] == by_backend["docker"][0]["MASTER_ADDR"] == ranks.LOOPBACK


@pytest.mark.local
def test_a_local_job_takes_a_free_port_when_its_preferred_one_is_taken(tmp_path):
    import socket

    ex = run.LocalExecutor(ntasks_per_node=2, working_dir=str(tmp_path))
    job = Job("ranks", "ranks-port/ranks/0", ["/bin/sh", "-c", "true"], str(tmp_path / "job"))
    preferred = ranks.preferred_port(job.key)
    assert ex.prepare(job, dry=True).master_port == preferred, "a dry plan shows the preferred port"
    with socket.socket() as holder:
        holder.bind((ranks.LOOPBACK, preferred))
        holder.listen()
        plan = ex.prepare(job)
    assert plan.master_port is not None and plan.master_port != preferred
    assert ex.render(job, plan).text.count(f"MASTER_PORT={plan.master_port} ") == 2, "both ranks get the plan's port"
