"""nemorun_prefect against a real ``prefect server``: served deployments, restart re-attach, API cancellation.

Every flow run here is started by a serving subprocess (``flow.serve()`` or ``serve()`` of an entrypoint
deployment, as users run them), created and cancelled through the client, and its states are read back through
the client. The serving processes see the server through ``PREFECT_API_URL``; this process only inside the
``api`` fixture.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from nemorun_core.executors.base import JobState
from tests.prefect._serving import (  # noqa: F401 (api, home: fixtures)
    api,
    cancel_through_api,
    create_run,
    file_lines,
    home,
    log_messages,
    pid_alive,
    read_flow_run,
    recorded_job,
    serving,
    task_runs_of,
    until,
    wait_for_deployment,
    wait_state,
)

pytestmark = pytest.mark.prefect


# -- a served deployment ------------------------------------------------------------------------------------------
def test_served_example_runs_a_flow_run_created_through_the_client(api: str, home: str, tmp_path) -> None:
    args = [os.path.join("examples", "prefect_serve.py"), "--name", "test-serve", "--steps", "2",
            "--step-seconds", "0.1"]
    with serving(args, api, tmp_path) as served:
        deployment_id = wait_for_deployment(served, "experiment-prefect-serve/test-serve")
        flow_run_id = create_run(deployment_id)
        flow_run = wait_state(served, flow_run_id)

        assert flow_run.state.is_completed(), (flow_run.state, served.log_tail())
        assert flow_run.deployment_id == deployment_id
        assert flow_run.state.result() == {
            "prepare": {"rows": 1000},
            "train": {"checkpoint": "ckpt-2", "loss": 0.25},
            "evaluate": "ckpt-2: ok",
        }
        task_runs = task_runs_of(flow_run_id)
        assert set(task_runs) == {"prepare", "train", "evaluate"}
        assert all(t.state.is_completed() for t in task_runs.values()), {n: t.state for n, t in task_runs.items()}
        messages = until("the job's log lines in the flow run's logs",
                          lambda: (m := log_messages(flow_run_id)) and "evaluating ckpt-2" in m and m, served,
                          timeout=30)
        assert "prepared 1000 rows" in messages and "step 1: loss=0.2500 (1000 rows)" in messages, messages


# -- restart: the flow-run process dies, the flow run is served again --------------------------------------------
@pytest.mark.parametrize("job_finished", [False, True], ids=["job-running", "job-finished"])
def test_restarted_flow_run_reattaches_to_its_job(api: str, home: str, tmp_path, job_finished: bool) -> None:
    from prefect import get_client
    from prefect.states import Scheduled

    marks = tmp_path / "marks"
    marks.mkdir()
    runs = str(marks / "runs")
    args = ["-m", "tests.prefect._served", "counted", "test-restart"]
    env = {"NEMORUN_TEST_MARKS": str(marks), "NEMORUN_TEST_SECONDS": "3"}

    with serving(args, api, tmp_path, **env) as first:
        flow_run_id = create_run(wait_for_deployment(first, "counted/test-restart"))
        until("the job to start", lambda: file_lines(runs), first)
        first.kill(signal.SIGKILL)  # the serving process and the flow-run process, without any cleanup
    executor, handle = recorded_job(home, flow_run_id, "counted")
    if job_finished:
        deadline = time.monotonic() + 60
        while not executor.status(handle).is_terminal and time.monotonic() < deadline:
            executor.wait_any([handle], 1.0)
        assert executor.status(handle).state is JobState.SUCCEEDED
    else:
        assert executor.status(handle).state is JobState.RUNNING  # it survived the flow-run process
    assert read_flow_run(flow_run_id).state.is_running()  # nobody told the server

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Scheduled(message="restarted by the test"), force=True)
    with serving(args, api, tmp_path, **env) as second:
        flow_run = wait_state(second, flow_run_id)
        assert flow_run.state.is_completed(), (flow_run.state, second.log_tail())
        assert flow_run.state.result() == 7
        assert flow_run.run_count == 2
        until("the re-attach message in the flow run's logs",
               lambda: any(m.startswith("re-attaching to job prefect-") for m in log_messages(flow_run_id)), second,
               timeout=30)
    assert len(file_lines(runs)) == 1, "the job ran more than once"
    assert recorded_job(home, flow_run_id, "counted")[1] == handle  # the same job


# -- cancelling through the API ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flow_name, entrypoint, jobs", [
    ("sleepers", False, {"sleeper": ""}),
    ("sleepers", True, {"sleeper": ""}),
    ("plain_with_subflow", True, {"direct": "", "sub": "subflow"}),
], ids=["experiment-flow-served", "experiment-flow-from-entrypoint", "user-flow-with-hook-and-subflow"])
def test_cancelling_a_flow_run_through_the_api_cancels_its_jobs(api: str, home: str, tmp_path, flow_name: str,
                                                                entrypoint: bool, jobs: dict) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    marks = tmp_path / "marks"
    marks.mkdir()
    flow_names = {"sleepers": "experiment-served-sleepers", "plain_with_subflow": "plain-with-subflow"}
    args = ["-m", "tests.prefect._served", flow_name, "test-cancel"] + (["--entrypoint"] if entrypoint else [])
    with serving(args, api, tmp_path, NEMORUN_TEST_MARKS=str(marks)) as served:
        flow_run_id = create_run(wait_for_deployment(served, f"{flow_names[flow_name]}/test-cancel"))
        # Every job runs (its marker holds the task's pid and its child's pid) before the cancel.
        pids = {name: until(f"job {name} to start", lambda n=name: file_lines(str(marks / n)), served)[0]
                for name in jobs}
        cancel_through_api(flow_run_id)
        flow_run = wait_state(served, flow_run_id, "CANCELLED", "COMPLETED", "FAILED", "CRASHED")
        assert flow_run.state.is_cancelled(), (flow_run.state, served.log_tail())

        run_ids = {"": flow_run_id}
        if "subflow" in jobs.values():
            with get_client(sync_client=True) as client:
                (sub,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
                    sort=FlowRunSort.ID_DESC, limit=10)
            run_ids["subflow"] = sub.id
        for name, owner in jobs.items():
            executor, handle = recorded_job(home, run_ids[owner], name)
            assert executor.status(handle).state is JobState.CANCELLED, (name, served.log_tail())
            for pid in map(int, pids[name].split()):
                until(f"process {pid} of job {name} to be gone", lambda p=pid: not pid_alive(p), served,
                       timeout=10)
        if flow_name == "sleepers":
            # The task run stopped waiting when the flow's process was told to stop, instead of holding it open
            # until Prefect's kill grace period (30 s) ran out.
            message = task_runs_of(flow_run_id)["sleeper"].state.message
            assert "stopped following job" in message, message
        until("the hook's report in the flow run's logs",
               lambda: any("jobs cancelled" in m for m in log_messages(flow_run_id)), served, timeout=30)


def test_terminated_flow_process_cancels_its_jobs_and_exits(api: str, home: str, tmp_path) -> None:
    """A flow run in a plain process (no Runner): SIGTERM crashes it, and its on_crashed hook cancels the job, in
    that process, which then exits (its task runs stop following their jobs instead of holding it open)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with serving(["-m", "tests.prefect._served", "sleepers", "--run"], api, tmp_path,
                 NEMORUN_TEST_MARKS=str(marks)) as process:
        pids = until("the job to start", lambda: file_lines(str(marks / "sleeper")), process)[0]
        os.kill(process.proc.pid, signal.SIGTERM)
        process.proc.wait(30)
        assert process.proc.returncode != 0
    (run_dir,) = os.listdir(os.path.join(home, "prefect"))
    flow_run_id = run_dir.removeprefix("prefect-")
    executor, handle = recorded_job(home, flow_run_id, "sleeper")
    assert executor.status(handle).state is JobState.CANCELLED, process.log_tail()
    for pid in map(int, pids.split()):
        until(f"process {pid} of the job to be gone", lambda p=pid: not pid_alive(p), process, timeout=10)
    assert read_flow_run(flow_run_id).state.is_crashed()


def test_job_records_for_the_hooks_hold_no_secret(api: str, home: str) -> None:
    from prefect import flow

    import nemorun_core as run
    from nemorun_prefect import run_nemorun_task
    from tests.integration import _tasks

    token = "hf_abcdefghijklmnopqrstuvwxyz"

    @flow
    def secret_flow() -> dict:
        return run_nemorun_task(run.Partial(_tasks.echo_env, names=["HF_TOKEN"]),
                                run.LocalExecutor(env_vars={"HF_TOKEN": token}), name="secret")

    state = secret_flow(return_state=True)
    assert state.result() == {"HF_TOKEN": token}  # the job got it...
    record = os.path.join(home, "prefect", f"prefect-{state.state_details.flow_run_id}", "secret", "prefect_job.json")
    with open(record) as f:
        text = f.read()
    assert token not in text and '"HF_TOKEN": "<redacted>"' in text, text  # ...the record names it only
