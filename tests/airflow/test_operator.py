"""NemorunOperator on the real Airflow engine (dag.test(), triggers inline) with LocalExecutor jobs."""

from __future__ import annotations

import json
import os
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError, OverrideError
from nemorun_core.executors.base import JobHandle, JobState
from tests.airflow._dagrun import run_dag, states, task_instances, write_dag, xcoms
from tests.integration import _tasks

pytestmark = [pytest.mark.airflow, pytest.mark.local]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET_ARG = "tok-0123456789abcdef"
SECRET_ENV = "wandb-fedcba9876543210"


def _lines(path) -> int:
    with open(path) as f:
        return len(f.read().splitlines())


def test_runs_streams_the_log_applies_templated_overrides_and_keeps_secrets_out(airflow_db, capfd) -> None:
    from nemorun_airflow.operators import job_key

    dag = write_dag("nr_basics", """
with DAG("nr_basics", schedule=None, start_date=START, params={"hidden": 64}) as dag:
    # the same secret-printing job followed by the worker and by the (inline) triggerer
    for task_id, deferrable in (("train", False), ("train_deferred", True)):
        NemorunOperator(
            task_id=task_id, task=run.Partial(_jobs.train_with_token, hidden_size=8, api_token=C["token"]),
            executor=run.LocalExecutor(env_vars={"WANDB_API_KEY": C["wandb"]}),
            overrides=["hidden_size={{ params.hidden }}", "steps=3"], deferrable=deferrable, poll_interval=0.2)
    evaluate = NemorunOperator(
        task_id="evaluate", task=run.Partial(_tasks.evaluate, checkpoint="{train_deferred.output.checkpoint}",
                                             hidden_size=1), poll_interval=0.2)
    dag.task_dict["train_deferred"] >> evaluate
""", token=SECRET_ARG, wandb=SECRET_ENV)
    dr = run_dag(dag)
    out = capfd.readouterr()
    log = out.out + out.err
    assert states(dr) == {"train": "success", "train_deferred": "success", "evaluate": "success"}, log[-3000:]

    values = xcoms(dr)
    train = values["train"]
    assert train["name"] == "train" and train["state"] == "SUCCEEDED" and train["exit_code"] == 0
    # the rendered overrides reached the job: hidden_size from the DAG's params, steps from a plain override
    assert train["result"]["checkpoint"] == "/ckpt/h64" and train["result"]["steps"] == 3
    handle = JobHandle.from_dict(train["handle"])
    assert handle.key == job_key("nr_basics", dr.run_id, "train") and handle.backend == "local"
    assert train["log"] and train["log"].endswith("log.out")
    assert values["train_deferred"]["result"] == {**train["result"], "echo": "token was <redacted>"}
    # evaluate got its reference from the deferred task's XCom
    assert values["evaluate"]["result"] == "evaluated /ckpt/h64 (1)"
    assert values["evaluate"]["handle"]["key"].endswith("/evaluate/0")

    # secrets: never in XCom (the value under a secret name, and the same values inside other strings)...
    assert train["result"]["api_token"] == "<redacted>" and train["result"]["echo"] == "token was <redacted>"
    assert SECRET_ARG not in json.dumps(values) and SECRET_ENV not in json.dumps(values)
    # ... nor in the task log, where the job's own lines arrive (from the worker and from the triggerer)
    assert log.count("step 2 of h64 token=<redacted> wandb=<redacted>") == 2, log[-3000:]
    assert SECRET_ARG not in log and SECRET_ENV not in log


def test_failures_name_the_job_and_a_bad_override_submits_nothing(airflow_db, capfd) -> None:
    from nemorun_airflow.operators import job_dir_for, job_key

    dag = write_dag("nr_failures", """
with DAG("nr_failures", schedule=None, start_date=START, params={"b": "not-a-number"},
         default_args={"retries": 2, "retry_delay": 0}) as dag:
    NemorunOperator(task_id="bad_job", task=run.Partial(_tasks.fail, message="cluster says no"), retries=0,
                    poll_interval=0.2)
    NemorunOperator(task_id="bad_deferred", task=run.Partial(_tasks.fail, message="triggerer says no"), retries=0,
                    deferrable=True, poll_interval=0.2)
    NemorunOperator(task_id="bad_override", task=run.Partial(_tasks.add, a=1), overrides=["b={{ params.b }}"])
""")
    dr = run_dag(dag)
    out = capfd.readouterr()
    log = out.out + out.err
    assert states(dr) == {"bad_job": "failed", "bad_deferred": "failed", "bad_override": "failed"}
    assert "job 'bad_job' failed with exit status 1" in log and "cluster says no" in log
    assert "job 'bad_deferred' failed with exit status 1" in log and "triggerer says no" in log
    bad_dir = job_dir_for(job_key("nr_failures", dr.run_id, "bad_job"))
    assert f"log: {bad_dir}/log.out" in log
    # a bad override fails before anything is submitted, names the override, and is not retried
    assert "b: expected int, got 'not-a-number' (in override 'b=not-a-number')" in log
    assert task_instances(dr)["bad_override"].try_number == 1
    assert not os.path.exists(job_dir_for(job_key("nr_failures", dr.run_id, "bad_override")))


def test_retries_reattach_to_their_job_instead_of_resubmitting(airflow_db, tmp_path) -> None:
    m = {name: str(tmp_path / f"{name}.runs") for name in ("died", "finished", "following", "fresh")}
    dag = write_dag("nr_retries", """
with DAG("nr_retries", schedule=None, start_date=START, default_args={"retries": 1, "retry_delay": 0}) as dag:
    # the worker died right after submitting: no handle in the task state store; found by its key
    NemorunOperator(task_id="died_after_submit", task=run.Partial(_jobs.count_run, marker=C["died"], value=1,
                                                                     seconds=1),
                    executor=_jobs.DiesAfterSubmit(flag=C["flag_died"]), poll_interval=0.2)
    # same, but the job had finished before the retry: its result is returned, it is not run again
    NemorunOperator(task_id="finished_before_retry", task=run.Partial(_jobs.count_run, marker=C["finished"], value=2),
                    executor=_jobs.DiesAfterSubmit(flag=C["flag_finished"], let_finish=True), poll_interval=0.2)
    # the worker died while following: the handle in the task state store re-attaches (this executor has no find)
    NemorunOperator(task_id="died_while_following",
                    task=run.Partial(_jobs.count_run, marker=C["following"], value=3, seconds=1),
                    executor=_jobs.DiesWhileFollowing(flag=C["flag_following"]), poll_interval=0.2)
    # the job itself failed: the retry submits a fresh job under the next attempt's key
    NemorunOperator(task_id="failed_then_fresh", task=run.Partial(_jobs.fail_first, marker=C["fresh"]),
                    poll_interval=0.2)
""", flag_died=str(tmp_path / "flag1"), flag_finished=str(tmp_path / "flag2"),
                    flag_following=str(tmp_path / "flag3"), **m)
    dr = run_dag(dag)
    assert states(dr) == {"died_after_submit": "success", "finished_before_retry": "success",
                          "died_while_following": "success", "failed_then_fresh": "success"}
    assert {t: ti.try_number for t, ti in task_instances(dr).items()} == {
        "died_after_submit": 2, "finished_before_retry": 2, "died_while_following": 2, "failed_then_fresh": 2}
    assert {name: _lines(path) for name, path in m.items()} == {"died": 1, "finished": 1, "following": 1, "fresh": 2}
    values = xcoms(dr)
    assert [values[t]["result"] for t in ("died_after_submit", "finished_before_retry", "died_while_following")] == [
        1, 2, 3]
    assert values["died_after_submit"]["handle"]["key"].endswith("/died_after_submit/0")
    assert values["failed_then_fresh"]["result"] == "succeeded on run 2"
    assert values["failed_then_fresh"]["handle"]["key"].endswith("/failed_then_fresh/1")


def test_on_kill_cancels_the_job(airflow_db, tmp_path) -> None:
    from nemorun_airflow.operators import job_dir_for, job_key

    marker = tmp_path / "pids"
    dag = write_dag("nr_kill", """
with DAG("nr_kill", schedule=None, start_date=START) as dag:
    NemorunOperator(task_id="sleeper", task=run.Partial(_tasks.sleep_forever, child=True, marker=C["marker"]),
                    execution_timeout=datetime.timedelta(seconds=4), poll_interval=0.2)
""", marker=str(marker))
    dr = run_dag(dag)
    assert states(dr) == {"sleeper": "failed"}
    key = job_key("nr_kill", dr.run_id, "sleeper")
    executor = run.LocalExecutor()
    handle = executor.find(key, job_dir_for(key))
    assert handle is not None
    deadline = time.monotonic() + 90
    status = executor.status(handle)
    while not status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.2)
        status = executor.status(handle)
    assert status.state is JobState.CANCELLED, status
    for pid in map(int, marker.read_text().split()):  # the task and its child are gone
        assert not _running(pid), f"process {pid} survived the cancel"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has stopped running
    except FileNotFoundError:
        return False


def test_bad_arguments_fail_when_the_dag_is_parsed() -> None:
    import datetime

    from airflow.sdk import DAG

    from nemorun_airflow import NemorunOperator

    task = run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig))
    with DAG("nr_parse_errors", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
        with pytest.raises(OverrideError, match=r"(?s)no parameter 'modle' for train .*did you mean 'model'"):
            NemorunOperator(task_id="a", task=task, overrides=["modle.hidden_size=3"])
        with pytest.raises(OverrideError, match=r"expected int, got 'abc' \(in override 'steps=abc'\)"):
            NemorunOperator(task_id="b", task=task, overrides=["steps=abc", "lr={{ params.lr }}"])
        with pytest.raises(ConfigError, match="overrides must be a list"):
            NemorunOperator(task_id="c", task=task, overrides="steps=3")
        with pytest.raises(ConfigError, match="poll_interval must be a positive number"):
            NemorunOperator(task_id="d", task=task, poll_interval=0)
        with pytest.raises(ConfigError, match="LocalExecutor does not reach its jobs through a tunnel"):
            NemorunOperator(task_id="e", task=task, ssh_conn_id="slurm")
        with pytest.raises(ConfigError, match="executor must be a nemorun executor"):
            NemorunOperator(task_id="f", task=task, executor="local")
        op = NemorunOperator(task_id="g", task=task, overrides=["model.hidden_size={{ params.h }}"])
        assert op.overrides == ["model.hidden_size={{ params.h }}"] and op.job_name == "g"


def test_example_dags_parse() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.path.join(REPO, "examples", "airflow"), safe_mode=False)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["nemorun_experiment_group", "nemorun_single_task", "nemorun_slurm_deferrable"]
