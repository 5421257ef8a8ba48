"""nemorun_prefect tasks and experiment flows on the project's real Slurm cluster (over SSH) and Docker engine.

Services: scripts/services/sshd.sh, slurm.sh and docker.sh (started by scripts/test.sh). The flows run on the
``prefect_harness`` engine; the cancellation test serves its flow against the real ``prefect server``, as a
cancel through the API needs a process that watches for it.
"""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from nemorun_core.executors.base import Job, JobState
from tests.integration import _tasks, services
from tests.prefect import _jobs
from tests.prefect._serving import (  # noqa: F401 (api, home: fixtures)
    api,
    cancel_through_api,
    create_run,
    home,
    serving,
    task_runs_of,
    until,
    until_job_running,
    wait_for_deployment,
    wait_state,
)

pytestmark = pytest.mark.prefect


def _docker_executor() -> run.DockerExecutor:
    svc = services.docker()
    return run.DockerExecutor(container_image=svc.python, docker_host=svc.host, network="none")


@pytest.fixture
def backend(request, home: str, tmp_path):
    """(name, executor factory) for one real backend; the test's Docker containers are removed afterwards."""
    if request.param == "slurm":
        yield "slurm", _jobs.slurm_executor
        return
    yield "docker", _docker_executor
    import docker

    client = docker.DockerClient(base_url=services.docker().host)
    try:
        for c in client.containers.list(all=True, filters={"label": "nemorun.job_dir"}):
            if c.labels.get("nemorun.job_dir", "").startswith(str(tmp_path)):
                c.remove(force=True)
    finally:
        client.close()


def _records(home: str, flow_run_id) -> dict:
    from nemorun_prefect.tasks import read_job_records

    return {name: ref for name, (_, ref) in
            read_job_records(os.path.join(home, "prefect", f"prefect-{flow_run_id}")).items()}


def task_run_counts(flow_run_id) -> dict:
    return {name: t.run_count for name, t in task_runs_of(flow_run_id).items()}


@pytest.mark.parametrize("backend", [pytest.param("slurm", marks=[pytest.mark.slurm, pytest.mark.ssh]),
                                     pytest.param("docker", marks=pytest.mark.docker)], indirect=True)
def test_task_and_experiment_flow_run_on_the_backend(prefect_harness: None, backend, home: str) -> None:
    from prefect import flow

    from nemorun_prefect import experiment_flow, run_nemorun_task

    name, make_executor = backend

    @flow
    def one_task() -> int:
        return run_nemorun_task(run.Partial(_tasks.add, a=20, b=22), make_executor(), name="add")

    state = one_task(return_state=True)
    assert state.is_completed(), state
    assert state.result() == 42
    assert _records(home, state.state_details.flow_run_id)["add"].handle["backend"] == name

    exp = run.Experiment(f"on-{name}")
    train = exp.add(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), steps=2),
                    executor=make_executor(), name="train")
    exp.add(run.Partial(_tasks.evaluate, checkpoint=f"{train.output.checkpoint}",
                        hidden_size=f"{train.output.hidden_size}"), executor=make_executor(), name="eval")
    state = experiment_flow(exp, return_state=True)
    assert state.is_completed(), state
    assert state.result() == {"train": {"checkpoint": "/ckpt/h64", "hidden_size": 64},
                              "eval": "evaluated /ckpt/h64 (64)"}
    flow_run_id = state.state_details.flow_run_id
    task_runs = task_runs_of(flow_run_id)
    assert set(task_runs) == {"train", "eval"}
    assert all(t.state.is_completed() for t in task_runs.values()), {n: t.state for n, t in task_runs.items()}
    records = _records(home, flow_run_id)
    assert {n: r.handle["backend"] for n, r in records.items()} == {"train": name, "eval": name}


@pytest.mark.slurm
@pytest.mark.ssh
@pytest.mark.parametrize("let_finish", [False, True], ids=["job-running", "job-finished"])
def test_retry_reattaches_to_the_slurm_job(prefect_harness: None, home: str, tmp_path, let_finish: bool) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    flag = str(tmp_path / "died")
    executor = _jobs.slurm_executor(_jobs.SlurmDiesAfterSubmit, flag=flag, let_finish=let_finish)

    @flow
    def retrying_flow() -> int:
        # The marker is relative: the job writes it in its own directory on the cluster (the job's cwd).
        return run_nemorun_task.with_options(retries=1, retry_delay_seconds=0)(
            run.Partial(_jobs.count_run, marker="runs.txt", value=7), executor, name="once")

    state = retrying_flow(return_state=True)
    assert state.is_completed(), state
    assert state.result() == 7
    assert os.path.exists(flag)  # the first try did die after submitting
    flow_run_id = state.state_details.flow_run_id
    assert list(task_run_counts(flow_run_id).values()) == [2]  # one task run, tried twice
    handle = _records(home, flow_run_id)["once"].job_handle()
    runs = executor.tunnel.read_bytes(f"{handle.job_dir}/runs.txt").decode().splitlines()
    assert len(runs) == 1, runs  # the job ran once...
    job_name = executor.job_name(Job(name="once", key=handle.key, command=[], job_dir=""))
    # Accounting records reach sacct a moment after the events: wait for this job's, then count them all.
    submitted = until("the job in sacct", lambda: (ids := executor.tunnel.run(
        f"sacct -X -n -P --name {job_name} -o JobID -S now-1hour").stdout.split()) and handle.job_id in ids and ids,
        timeout=30)
    assert submitted == [handle.job_id]  # ...and was submitted once


@pytest.mark.slurm
@pytest.mark.ssh
def test_cancelling_the_flow_run_cancels_its_slurm_job(api: str, home: str, tmp_path) -> None:
    with serving(["-m", "tests.prefect._served", "slurm_sleeper", "test-slurm-cancel"], api, tmp_path) as served:
        flow_run_id = create_run(wait_for_deployment(served, "slurm-sleeper/test-slurm-cancel"))
        executor, handle = until_job_running(served, home, flow_run_id, "slurm-sleeper", "the Slurm job to run")
        cancel_through_api(flow_run_id)
        flow_run = wait_state(served, flow_run_id, "CANCELLED", "COMPLETED", "FAILED", "CRASHED")
        assert flow_run.state.is_cancelled(), (flow_run.state, served.log_tail())

    # Slurm's accounting says so too (records reach sacct a moment after the job ends).
    def accounted():
        out = executor.tunnel.run(f"sacct -X -n -P -j {handle.job_id} -o State").stdout.split()
        return out and out[0] == "CANCELLED" and out
    until("sacct to report the job CANCELLED", accounted, timeout=30)
    assert executor.status(handle).state is JobState.CANCELLED
