"""A backend from another distribution (tests/fixtures/nemorun_echo_backend, registered through the
``nemorun.executors`` entry point) in nemorun_prefect's tasks and flows, on the real Prefect engine: nothing in
nemorun or nemorun_prefect names it."""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from nemorun_core.executors.registry import get as backend
from tests.integration import _tasks

pytestmark = [pytest.mark.prefect, pytest.mark.local]

SECRET = "tok_0a1b2c3d4e5f60718293"


def print_token(name: str) -> str:
    """Print an environment variable's value into the job log (to check that the run log never shows it)."""
    print(f"token is {os.environ[name]}", flush=True)
    return "printed"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _echo(**kwargs):
    return backend("echo").load()(**kwargs)


def _log_messages(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                limit=200, offset=0)
    return [log.message for log in logs]


def test_a_task_on_the_echo_backend_streams_its_log_redacted_and_returns_its_value(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    executor = _echo(banner="from prefect", env_vars={"HF_TOKEN": SECRET})

    @flow
    def echo_flow() -> list:
        return [run_nemorun_task(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=32),
                                             steps=2), executor, name="train"),
                run_nemorun_task(run.Partial(print_token, name="HF_TOKEN"), executor, name="peek")]

    state = echo_flow(return_state=True)
    assert state.is_completed(), state
    assert state.result() == [{"checkpoint": "/ckpt/h32", "hidden_size": 32}, "printed"]
    messages = _log_messages(state.state_details.flow_run_id)
    assert "[echo] from prefect: job train (key " in "\n".join(messages), messages
    assert "step 1 loss 0.500" in messages
    assert "token is <redacted>" in messages and not any(SECRET in m for m in messages), messages


def test_an_experiment_flow_on_the_echo_backend(prefect_harness: None) -> None:
    from nemorun_prefect import experiment_flow

    exp = run.Experiment("echo-graph", executor=_echo())
    train = exp.add(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), steps=1),
                    name="train")
    exp.add(run.Partial(_tasks.evaluate, checkpoint=train.output.checkpoint, hidden_size=2), name="eval")
    exp.add(run.Partial(_tasks.add, a=1, b=2), name="local-sum", executor=run.LocalExecutor())
    state = experiment_flow(exp, return_state=True)
    assert state.is_completed(), state
    assert state.result() == {"train": {"checkpoint": "/ckpt/h64", "hidden_size": 64},
                              "eval": "evaluated /ckpt/h64 (2)", "local-sum": 3}


def test_cancelling_the_flow_run_cancels_the_echo_job(prefect_harness: None) -> None:
    from prefect import flow
    from prefect.runtime import flow_run

    from nemorun_prefect import cancel_flow_jobs, submit_nemorun_task
    from nemorun_prefect.tasks import job_dir_for

    executor = _echo(cancel_grace_s=1.0)

    @flow
    def submit_only() -> str:
        submit_nemorun_task(run.Partial(_tasks.sleep_forever, child=False), executor, name="sleeper")
        return str(flow_run.id)

    run_id = submit_only()
    key = f"prefect-{run_id}/sleeper/0"
    handle = executor.find(key, job_dir_for(key))
    assert handle is not None and handle.backend == "echo" and not executor.status(handle).is_terminal
    assert cancel_flow_jobs(run_id, {"sleeper": executor}) == {"sleeper": JobState.CANCELLED}
    assert executor.status(handle).state is JobState.CANCELLED
