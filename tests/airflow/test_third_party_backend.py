"""A backend from another distribution (tests/fixtures/nemorun_echo_backend, registered through the
``nemorun.executors`` entry point) under NemorunOperator and NemorunJobSensor on the real Airflow engine
(dag.test(), triggers inline), sync and deferrable: nothing in nemorun or nemorun_airflow names it."""

from __future__ import annotations

import json

import pytest

from nemorun_core.executors.base import JobHandle
from tests.airflow._dagrun import run_dag, states, write_dag, xcoms

pytestmark = [pytest.mark.airflow, pytest.mark.local]

SECRET = "tok_99887766554433221100"


def test_operator_sync_and_deferrable_with_references_and_no_secret_in_xcom_or_log(airflow_db, capfd) -> None:
    dag = write_dag("nr_echo", """
from nemorun_core.executors.registry import get as backend

echo = backend("echo").load()(banner="from airflow", env_vars={"WANDB_API_KEY": C["token"]})
with DAG("nr_echo", schedule=None, start_date=START) as dag:
    train = NemorunOperator(task_id="train", task=run.Partial(_jobs.train_with_token, hidden_size=16,
                                                              api_token=C["token"]),
                            executor=echo, poll_interval=0.2)
    evaluate = NemorunOperator(task_id="evaluate", executor=echo, deferrable=True, poll_interval=0.2,
                               task=run.Partial(_tasks.evaluate, checkpoint="{train.output.checkpoint}",
                                                hidden_size=3))
    train >> evaluate
""", token=SECRET)
    dr = run_dag(dag)
    out = capfd.readouterr()
    log = out.out + out.err
    assert states(dr) == {"train": "success", "evaluate": "success"}, log[-3000:]
    values = xcoms(dr)
    assert values["train"]["result"]["checkpoint"] == "/ckpt/h16" and values["train"]["state"] == "SUCCEEDED"
    assert values["evaluate"]["result"] == "evaluated /ckpt/h16 (3)"
    for task_id in ("train", "evaluate"):
        handle = JobHandle.from_dict(values[task_id]["handle"])
        assert handle.backend == "echo" and handle.key.endswith(f"/{task_id}/0")
        assert values[task_id]["log"].endswith("log.out")
    assert "[echo] from airflow: job train" in log and "[echo] from airflow: job evaluate" in log, log[-3000:]
    assert SECRET not in json.dumps(values) and SECRET not in log
    assert "step 1 of h16 token=<redacted> wandb=<redacted>" in log


def test_sensor_waits_on_an_echo_job_submitted_elsewhere(airflow_db, tmp_path) -> None:
    from nemorun_core.executors.base import Job
    from nemorun_core.executors.registry import get as backend

    executor = backend("echo").load()()
    handle = executor.submit(Job("outside", "elsewhere/outside/0", ["python", "-c", "print('outside ran')"],
                                 str(tmp_path / "outside")))
    dag = write_dag("nr_echo_sensor", """
from nemorun_core.executors.registry import get as backend

with DAG("nr_echo_sensor", schedule=None, start_date=START) as dag:
    NemorunJobSensor(task_id="wait", handle=C["handle"], executor=backend("echo").load()(), poke_interval=0.2,
                     deferrable=True)
""", handle=handle.to_json())
    dr = run_dag(dag)
    assert states(dr) == {"wait": "success"}
    assert executor.status(handle).state.value == "SUCCEEDED"
