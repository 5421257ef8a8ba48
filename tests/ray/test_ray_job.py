"""RayJob and RayCluster(address=) on the test run's Ray head (scripts/services/ray.sh)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from nemorun_core.executors.ray import client as ray_client
from nemorun_core.run.ray import ClusterState, RayCluster, RayJob

pytestmark = pytest.mark.ray


@pytest.fixture
def cluster(ray_service, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    return RayCluster(name=f"shared-{uuid.uuid4().hex[:6]}", address=ray_service.address)


def _wait(job: RayJob, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (status := job.status()).is_terminal:
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    return status


def test_start_logs_status_and_a_restart_reattaches(cluster):
    assert cluster.status().state is ClusterState.RUNNING
    job = RayJob(name="hello", cluster=cluster)
    handle = job.start(command="echo one; sleep 3; echo two")
    again = RayJob(name="hello", cluster=cluster).start(command="echo one; sleep 3; echo two")
    assert again == handle, "a restarted script re-attaches to the running job instead of submitting it twice"
    jobs = ray_client.client(cluster.address).list_jobs()
    assert sum(1 for j in jobs if j.submission_id == handle.job_id) == 1
    seen: list[str] = []
    assert job.logs(follow=True, emit=seen.append) == 2
    assert seen == ["one", "two"]
    assert job.status().state is JobState.SUCCEEDED and job.status().exit_code == 0
    # Ended: the next start is a new attempt, not the old job again.
    third = job.start(command="echo three")
    assert third.job_id != handle.job_id and third.key.endswith("/1")
    assert _wait(job).state is JobState.SUCCEEDED
    lines: list[str] = []
    job.logs(follow=False, emit=lines.append)
    assert lines == ["three"]


def test_a_failed_job_has_rays_exit_code_and_the_log_tail(cluster):
    job = RayJob(name="fails", cluster=cluster)
    job.start(command="echo about to fail; exit 3")
    status = _wait(job)
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "about to fail" in status.message


def test_stop_ends_the_job_cancelled_and_is_idempotent(cluster):
    job = RayJob(name="long", cluster=cluster)
    job.start(command="echo ready; sleep 300")
    deadline = time.monotonic() + 120
    while job.status().state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    job.stop()
    assert _wait(job).state is JobState.CANCELLED
    job.stop()
    cluster.stop()  # attached: nothing of the shared head is stopped
    assert cluster.status().state is ClusterState.RUNNING


def test_workdir_and_runtime_env_yaml_reach_the_job(cluster, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("import os\nprint('mode', os.environ['MODE'])\n")
    env_file = tmp_path / "runtime_env.yaml"
    env_file.write_text("env_vars:\n  MODE: fast\n")
    job = RayJob(name="wd", executor=run.RayExecutor(address=cluster.address))
    job.start(command="python train.py", workdir=str(project), runtime_env_yaml=str(env_file))
    assert _wait(job).state is JobState.SUCCEEDED, job.status()
    lines: list[str] = []
    job.logs(follow=False, emit=lines.append)
    assert lines == ["mode fast"]


def test_port_forward_reaches_the_dashboard(cluster):
    from urllib.request import urlopen

    from nemorun_core.ray.forward import free_port

    port = free_port()
    with cluster.port_forward(port=port, target_port=8265) as forward:
        with urlopen(f"http://127.0.0.1:{port}/api/version", timeout=10) as answer:
            assert json.load(answer)["ray_version"] == "2.60.0"
    with pytest.raises(OSError):
        urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5)
    forward.stop()  # idempotent
