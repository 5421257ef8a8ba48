"""nemorun task runs as Prefect users expect them (issue 12): named after the job, Cancelled when their job or flow
run is cancelled, a failed job's traceback shown once, error-looking job lines at WARNING. On the real Prefect engine
(``prefect_harness``) and, for a cancellation through the API, a real ``prefect server`` serving the flow."""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
import time

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from tests.integration import _tasks
from tests.prefect._serving import (  # noqa: F401 (api, home: fixtures)
    api,
    cancel_through_api,
    create_run,
    file_lines,
    home,
    serving,
    task_runs_of,
    until,
    wait_for_deployment,
    wait_state,
)

pytestmark = pytest.mark.prefect


@pytest.fixture
def _home(tmp_path, monkeypatch) -> str:
    path = str(tmp_path / "home")
    monkeypatch.setenv("NEMORUN_HOME", path)
    return path


def _task_runs(flow_run_id) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=50)
    return {r.name: r for r in runs}


def _logs(flow_run_id) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                limit=200, offset=0)


def _artifacts(flow_run_id) -> list:
    from prefect import get_client
    from prefect.client.schemas.objects import Artifact

    # A raw request: Prefect 3.8's read_artifacts sends the filters it was not given as null (422).
    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "sort": "KEY_ASC", "limit": 100, "offset": 0}
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json=body)
    return [Artifact.model_validate(item) for item in response.json()]


def test_task_runs_are_named_after_their_job(prefect_harness: None, _home: str) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task, submit_nemorun_task, wait_nemorun_task

    @flow
    def named_flow() -> tuple:
        first = run_nemorun_task(run.Partial(_tasks.add, a=1, b=2), run.LocalExecutor(), name="train")
        unnamed = run_nemorun_task(run.Partial(_tasks.add, a=2, b=2), run.LocalExecutor())
        ref = submit_nemorun_task(run.Partial(_tasks.add, a=3, b=2), run.LocalExecutor(), name="evaluate")
        return first, unnamed, wait_nemorun_task(ref)

    state = named_flow(return_state=True)
    assert state.result() == (3, 4, 5)
    names = set(_task_runs(state.state_details.flow_run_id))
    assert names == {"train", "add", "submit-evaluate", "wait-evaluate"}, names
    assert not any(n.startswith("run_nemorun_task") for n in names)
    assert type(run_nemorun_task.with_options(retries=1)) is type(run_nemorun_task)  # keeps its call behaviour


def test_failed_job_traceback_is_shown_once_and_at_warning(prefect_harness: None, _home: str) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    @flow
    def failing_flow() -> None:
        run_nemorun_task(run.Partial(_tasks.fail, message="boom-once"), run.LocalExecutor(), name="breaks")

    state = failing_flow(return_state=True)
    assert state.is_failed(), state
    logs = _logs(state.state_details.flow_run_id)
    text = "\n".join(log.message for log in logs)
    # A line of the job's own traceback: in the streamed log, and not again in the errors Prefect logs.
    assert text.count("raise RuntimeError(message)") == 1, text
    assert "last lines of the log" not in text, text  # the errors do not quote the log again
    by_message = {log.message: log.level for log in logs}
    assert by_message["about to fail"] == logging.INFO  # the task's print
    assert by_message["Traceback (most recent call last):"] == logging.WARNING
    assert by_message["RuntimeError: boom-once"] == logging.WARNING
    assert by_message["    raise RuntimeError(message)"] == logging.WARNING
    (task_run,) = _task_runs(state.state_details.flow_run_id).values()
    message = task_run.state.message
    assert task_run.state.is_failed() and "boom-once" in message and "exit status 1" in message, message
    assert "log.out" in message and "Traceback" not in message, message


def _cancel_when_running(root: str, name: str, done: list) -> None:
    """Cancel the job of task ``name`` once its record has a handle and it runs (from this test's thread)."""
    from nemorun_core.experiment.jobref import JobRef

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(root, "prefect", "*", name, "prefect_job.json")):
            with open(path) as f:
                data = json.load(f)
            if data.get("handle"):
                ref = JobRef(data["name"], data["kind"], data["handle"], data["executor"])
                executor, handle = ref.load_executor(), ref.job_handle()
                if executor.status(handle).state is JobState.RUNNING:
                    executor.cancel(handle)
                    done.append(handle)
                    return
        time.sleep(0.2)


def test_a_job_cancelled_while_followed_ends_the_task_run_cancelled(prefect_harness: None, _home: str) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    @flow
    def cancelled_flow() -> None:
        run_nemorun_task(run.Partial(_tasks.sleep_forever, child=False), run.LocalExecutor(cancel_grace_s=1.0),
                         name="sleeper")

    done: list = []
    canceller = threading.Thread(target=_cancel_when_running, args=(_home, "sleeper", done), daemon=True)
    canceller.start()
    state = cancelled_flow(return_state=True)
    canceller.join(10)
    assert done, "the job was never seen running"
    task_run = _task_runs(state.state_details.flow_run_id)["sleeper"]
    assert task_run.state.is_cancelled(), task_run.state
    assert "job 'sleeper' cancelled" in task_run.state.message, task_run.state.message
    assert task_run.run_count == 1  # a cancelled job is not retried
    # The call in the flow raised the job's error (not returned Prefect's state in place of the value).
    assert state.is_failed() and "job 'sleeper' cancelled" in state.message, state


def test_cancelling_a_served_experiment_flow_run_ends_its_task_runs_cancelled_with_a_job_table(
        api: str, home: str, tmp_path) -> None:  # noqa: F811 (fixtures)
    marks = tmp_path / "marks"
    marks.mkdir()
    args = ["-m", "tests.prefect._served", "sleepers", "test-conventions-cancel"]
    with serving(args, api, tmp_path, NEMORUN_TEST_MARKS=str(marks)) as served:
        flow_run_id = create_run(wait_for_deployment(served, "experiment-served-sleepers/test-conventions-cancel"))
        until("the job to start", lambda: file_lines(str(marks / "sleeper")), served)
        cancel_through_api(flow_run_id)
        flow_run = wait_state(served, flow_run_id, "CANCELLED", "COMPLETED", "FAILED", "CRASHED")
        assert flow_run.state.is_cancelled(), (flow_run.state, served.log_tail())
        task_run = task_runs_of(flow_run_id)["sleeper"]
        assert task_run.state.is_cancelled(), (task_run.state, served.log_tail())
        assert "stopped following job" in task_run.state.message, task_run.state.message

        def table():
            tables = [a for a in _artifacts(flow_run_id) if a.type == "table"]
            return tables[0] if tables else None

        artifact = until("the job table of the cancelled flow run", table, served, timeout=60)
    assert artifact.key == "nemorun-experiment-served-sleepers-jobs"
    (row,) = json.loads(artifact.data)
    assert row["task"] == "sleeper" and row["state"] == JobState.CANCELLED.value, row
    assert list(row)[:4] == ["task", "state", "duration (s)", "message"], list(row)


def test_error_lines_are_told_from_ordinary_output() -> None:
    from nemorun_core.orchestration import ErrorLines

    lines = {
        "about to fail": False, "step 1 loss 0.500": False, "loss: 0.1": False, "no errors so far": False,
        "Traceback (most recent call last):": True, '  File "train.py", line 3, in <module>': True,
        "    raise ValueError(x)": True, "": True,
        "During handling of the above exception, another exception occurred:": True,
        "ValueError: bad lr": True,  # ends the traceback
        "back to normal": False, "ERROR:root:disk full": True, "slurmstepd: error: *** JOB 7 CANCELLED": True,
        "train.py:9: UserWarning: deprecated": True, "KeyError": True,
    }
    guess = ErrorLines()
    assert {line: guess(line) for line in lines} == lines


def test_experiment_dependencies_are_prefect_dependencies(prefect_harness: None, _home: str) -> None:
    # The dependencies reach the task runs through wait_for (their values quoted), which Prefect's graph shows.
    from nemorun_prefect import experiment_flow

    exp = run.Experiment("graph-edges")
    first = exp.add(run.Partial(_tasks.add, a=1, b=1), name="first")
    exp.add(run.Partial(_tasks.add, a=f"{first.output}", b=1), name="second", dependencies=[first])
    state = experiment_flow(exp, return_state=True)
    assert state.result() == {"first": 2, "second": 3}
    runs = _task_runs(state.state_details.flow_run_id)
    upstream = {str(i.id) for i in runs["second"].task_inputs.get("wait_for", [])}
    assert upstream == {str(runs["first"].id)}, runs["second"].task_inputs
