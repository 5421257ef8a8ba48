"""Experiments on RayExecutor, against the test run's Ray head: results, dependencies, max_concurrent, metrics,
a Script task, and the job's dashboard link."""

from __future__ import annotations

import time

import pytest

import nemorun_core as run
from nemorun_core.executors.base import Job, JobState

pytestmark = pytest.mark.ray


def square(x: int) -> int:
    run.log_metrics({"x": x})
    time.sleep(1)
    return x * x


def total(values: list) -> int:
    return sum(values)


@pytest.fixture
def executor(ray_service, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    return run.RayExecutor(address=ray_service.address)


def test_an_experiment_runs_as_ray_jobs_with_dependencies_and_a_limit(executor):
    with run.Experiment("ray-exp") as exp:
        refs = [exp.add(run.Partial(square, x=i), name=f"sq{i}", executor=executor) for i in range(4)]
        exp.add(run.Partial(total, values=[r.output for r in refs]), name="sum", executor=executor,
                dependencies=refs)
        exp.add(run.Script(inline="echo script says hi"), name="script", executor=executor)
        exp.run(max_concurrent=2)
    assert exp.result("sum") == 0 + 1 + 4 + 9
    assert [exp.result(f"sq{i}") for i in range(4)] == [0, 1, 4, 9]
    assert exp.metrics("sq3")[-1]["x"] == 3
    assert "script says hi" in exp.logs("script")


def test_the_dashboard_link_of_a_job(executor, tmp_path):
    job = Job("link", "links-1/link/0", ["/bin/sh", "-c", "true"], str(tmp_path / "job"))
    handle = executor.submit(job)
    assert executor.job_url(handle) == f"{executor.address}/#/jobs/{handle.job_id}"
    deadline = time.monotonic() + 120
    while not executor.status(handle).is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert executor.status(handle).state is JobState.SUCCEEDED
