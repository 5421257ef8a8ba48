"""nemorun_prefect on Ray (issue 14): a task and an experiment flow on RayExecutor through the same tasks as every
other backend, the dashboard as a link artifact, a retry that re-attaches, and a flow-run cancellation that stops
the Ray job.

Service: the Ray head of scripts/services/ray.sh (started by scripts/test.sh), reached through its bridge.
"""

from __future__ import annotations

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from tests.integration import _tasks, services
from tests.integration._faults import count_run
from tests.prefect._serving import (  # noqa: F401 (api, home: fixtures)
    api,
    cancel_through_api,
    create_run,
    home,
    serving,
    until,
    until_job_running,
    wait_for_deployment,
    wait_state,
)
from tests.prefect.test_artifacts import _artifacts

pytestmark = [pytest.mark.prefect, pytest.mark.ray]


def _executor() -> run.RayExecutor:
    return run.RayExecutor(address=services.ray().address)


def test_a_task_and_an_experiment_flow_run_as_ray_jobs_with_the_dashboard_linked(prefect_harness: None,
                                                                                  home: str) -> None:
    from prefect import flow

    from nemorun_prefect import experiment_flow, run_nemorun_task

    @flow(name="Ray_Flow")
    def on_ray() -> int:
        return run_nemorun_task(run.Partial(_tasks.add, a=20, b=22), _executor(), name="add")

    state = on_ray(return_state=True)
    assert state.is_completed(), state
    assert state.result() == 42
    links = {a.key: a for a in _artifacts(state.state_details.flow_run_id)}
    page = links["nemorun-ray-flow-add-backend"]
    assert f"({services.ray().address}/#/jobs/" in page.data, page.data

    exp = run.Experiment("prefect-on-ray")
    first = exp.add(run.Partial(_tasks.add, a=1, b=2), executor=_executor(), name="first")
    exp.add(run.Partial(_tasks.add, a=first.output, b=10), executor=_executor(), name="second",
            dependencies=[first])

    @flow
    def experiment() -> dict:
        return experiment_flow(exp)

    results = experiment()
    assert results["first"] == 3 and results["second"] == 13


def test_a_retried_task_re_attaches_to_its_ray_job_instead_of_submitting_twice(prefect_harness: None,
                                                                                home: str, tmp_path) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    marker = str(tmp_path / "runs")
    attempts = []

    @flow(retries=1)
    def twice() -> int:
        attempts.append(1)
        value = run_nemorun_task(run.Partial(count_run, marker=marker, value=5, seconds=0.5), _executor(),
                                 name="counted")
        if len(attempts) == 1:
            raise RuntimeError("the flow fails after its job, once")
        return value

    assert twice() == 5 and len(attempts) == 2
    with open(marker) as f:
        assert len(f.read().split()) == 1, "the Ray job ran twice"


def test_cancelling_the_flow_run_stops_its_ray_job(api: str, home: str, tmp_path) -> None:
    with serving(["-m", "tests.prefect._served", "ray_sleeper", "test-ray-cancel"], api, tmp_path) as served:
        flow_run_id = create_run(wait_for_deployment(served, "ray-sleeper/test-ray-cancel"))
        executor, handle = until_job_running(served, home, flow_run_id, "ray-sleeper", "the Ray job to run")
        cancel_through_api(flow_run_id)
        flow_run = wait_state(served, flow_run_id, "CANCELLED", "COMPLETED", "FAILED", "CRASHED")
        assert flow_run.state.is_cancelled(), (flow_run.state, served.log_tail())
    until("Ray to report the job stopped", lambda: executor.status(handle).state is JobState.CANCELLED,
          timeout=60)
