"""nemorun_prefect.tasks on the real Prefect engine, with LocalExecutor jobs."""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from tests.integration import _tasks
from tests.prefect import _jobs

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _task_runs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=50)


def _log_messages(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs go to the API in batches from a background worker
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                  limit=200, offset=0)
    return [log.message for log in logs]


def test_flow_returns_the_task_result_and_streams_its_log(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    @flow
    def train_flow() -> dict:
        return run_nemorun_task(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64),
                                            steps=2), run.LocalExecutor(), name="train")

    state = train_flow(return_state=True)
    assert state.is_completed(), state
    assert state.result() == {"checkpoint": "/ckpt/h64", "hidden_size": 64}
    messages = _log_messages(state.state_details.flow_run_id)
    assert "step 0 loss 1.000" in messages and "step 1 loss 0.500" in messages, messages


def test_failed_job_is_a_failed_task_state_naming_job_exit_status_and_log(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    @flow
    def failing_flow() -> None:
        run_nemorun_task(run.Partial(_tasks.fail, message="boom"), run.LocalExecutor(), name="breaks")

    state = failing_flow(return_state=True)
    assert state.is_failed(), state
    (task_run,) = _task_runs(state.state_details.flow_run_id)
    assert task_run.state.is_failed(), task_run.state
    message = task_run.state.message
    job_dir = os.path.join(os.environ["NEMORUN_HOME"], "prefect", f"prefect-{state.state_details.flow_run_id}",
                           "breaks")
    assert "job 'breaks' failed" in message, message
    assert "exit status 1" in message, message
    assert os.path.join(job_dir, "") in message, message  # the log's path
    assert "boom" in message, message  # the log's last lines


@pytest.mark.parametrize("let_finish", [False, True], ids=["job-running", "job-finished"])
def test_retry_reattaches_instead_of_resubmitting(prefect_harness: None, tmp_path, let_finish: bool) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    marker, flag = str(tmp_path / "runs"), str(tmp_path / "died")
    executor = _jobs.DiesAfterSubmit(flag=flag, let_finish=let_finish)

    @flow
    def retrying_flow() -> int:
        return run_nemorun_task.with_options(retries=1, retry_delay_seconds=0)(
            run.Partial(_jobs.count_run, marker=marker, value=7), executor, name="once")

    state = retrying_flow(return_state=True)
    assert state.is_completed(), state
    assert state.result() == 7
    assert os.path.exists(flag)  # the first try did die after submitting
    with open(marker) as f:
        assert len(f.read().splitlines()) == 1  # ... and the retry attached to that job: it ran once
    (task_run,) = _task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 2


def test_retry_after_a_failed_job_submits_a_fresh_attempt(prefect_harness: None, tmp_path) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    marker = str(tmp_path / "runs")

    @flow
    def retrying_flow() -> int:
        return run_nemorun_task.with_options(retries=1, retry_delay_seconds=0)(
            run.Partial(_jobs.fail_first, marker=marker), run.LocalExecutor(), name="flaky")

    state = retrying_flow(return_state=True)
    assert state.is_completed(), state
    assert state.result() == "succeeded on run 2"  # the failed job, then attempt 1
    task_dir = os.path.join(os.environ["NEMORUN_HOME"], "prefect", f"prefect-{state.state_details.flow_run_id}",
                            "flaky")
    assert os.path.isdir(os.path.join(task_dir, "attempt-1"))
    assert "first run fails on purpose" in "\n".join(_log_messages(state.state_details.flow_run_id))


def test_submit_wait_cancel_tasks_in_one_flow(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_core.executors.base import JobState
    from nemorun_prefect import JobRef, cancel_nemorun_task, submit_nemorun_task, wait_nemorun_task

    @flow
    def interleaved_flow() -> tuple:
        quick = submit_nemorun_task(run.Partial(_tasks.add, a=1, b=2), run.LocalExecutor(), name="quick")
        sleeper = submit_nemorun_task(run.Partial(_tasks.sleep_forever, child=False),
                                      run.LocalExecutor(cancel_grace_s=1.0), name="sleeper")
        assert isinstance(sleeper, JobRef)
        result = wait_nemorun_task(quick)
        cancelled = cancel_nemorun_task(sleeper)
        waited = wait_nemorun_task(sleeper, return_state=True)
        return result, cancelled, waited.is_cancelled(), waited.message

    state = interleaved_flow(return_state=True)
    assert state.is_completed(), state
    result, cancelled, wait_cancelled, message = state.result()
    assert result == 3
    assert cancelled is JobState.CANCELLED
    # A cancelled job ends its task run Cancelled (Prefect's state), not Failed (issue 12).
    assert wait_cancelled and "job 'sleeper' cancelled" in message, message


def test_job_ref_keeps_no_secret(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import submit_nemorun_task, wait_nemorun_task

    @flow
    def secret_flow():
        ref = submit_nemorun_task(run.Partial(_tasks.echo_env, names=["HF_TOKEN"]),
                                  run.LocalExecutor(env_vars={"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz"}),
                                  name="secret")
        return ref, wait_nemorun_task(ref)

    state = secret_flow(return_state=True)
    assert state.is_completed(), state
    ref, value = state.result()
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in repr(ref)
    assert value == {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz"}


def test_job_log_lines_reach_the_prefect_run_log_redacted(prefect_harness: None) -> None:
    # Prefect's run log is stored on the server: a job that prints its secrets must not put them there.
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    token, neutral = "tok-redact-0123456789", "neutral-redact-value"
    executor = run.LocalExecutor(env_vars={"API_TOKEN": token, "MY_VALUE": run.Secret(neutral)})

    @flow
    def leaky_flow() -> None:
        run_nemorun_task(run.Script(inline='echo "token=$API_TOKEN value=$MY_VALUE"; echo done'), executor,
                         name="leaky")

    state = leaky_flow(return_state=True)
    assert state.is_completed(), state
    messages = _log_messages(state.state_details.flow_run_id)
    assert "token=<redacted> value=<redacted>" in messages and "done" in messages, messages
    assert not any(token in m or neutral in m for m in messages), messages
