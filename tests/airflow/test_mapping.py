"""Sweeps: NemorunOperator with Airflow's dynamic task mapping (``partial().expand(overrides=...)``), on the real
engine (dag.test(), triggers inline) with LocalExecutor jobs."""

from __future__ import annotations

import json

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError, OverrideError
from tests.airflow._dagrun import run_dag, write_dag
from tests.integration import _tasks

pytestmark = [pytest.mark.airflow, pytest.mark.local]

SECRET_ARG = "tok-m4pped-0123456789"
SECRET_ENV = "wandb-m4pped-9876543210"
SECRET_VAR = "cred-m4pped-5555555555"


def _mapped(dag_run, task_id: str) -> dict[int, dict]:
    """``{map_index: {"state", "try_number", "xcom", "rendered"}}`` of a mapped task's instances, from the database."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id,
            TaskInstance.task_id == task_id)).all()
        out = {ti.map_index: {"state": str(getattr(ti.state, "value", ti.state)), "try_number": ti.try_number,
                              "rendered": RenderedTaskInstanceFields.get_templated_fields(ti, session=session)}
               for ti in tis}
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id,
                                                  map_indexes=None, key="return_value")).all()
        for row in rows:
            out[row.map_index]["xcom"] = XComModel.deserialize_value(row)
    return out


def test_a_sweep_runs_one_job_per_mapped_instance_and_a_retry_reattaches_to_its_own(airflow_db, tmp_path) -> None:
    from nemorun_airflow.operators import job_key

    marker = tmp_path / "points"
    dag = write_dag("nr_sweep", """
from airflow.sdk import task

with DAG("nr_sweep", schedule=None, start_date=START, params={"last": 3},
         default_args={"retries": 1, "retry_delay": 0}) as dag:
    NemorunOperator.partial(
        task_id="sweep", task=run.Partial(_jobs.sweep_point, marker=C["marker"], x=0),
        # the instance with map index 1 dies right after submitting its job, once its sibling's job exists
        executor=_jobs.DiesAfterSubmitOf(flag=C["flag"], key_part="/sweep-1/"),
        deferrable=True, poll_interval=0.2,
    ).expand(overrides=[["x=1"], ["x={{ ti.map_index + 1 }}"], ["x={{ params.last }}"]])

    # the points can come from an upstream task
    @task
    def grid():
        return [["x=4"], ["x=5"]]

    NemorunOperator.partial(task_id="from_xcom", task=run.Partial(_jobs.sweep_point, marker=C["marker"], x=0),
                            poll_interval=0.2).expand(overrides=grid())
""", marker=str(marker), flag=str(tmp_path / "flag"))
    dr = run_dag(dag)
    mapped = _mapped(dr, "sweep")
    assert {i: (m["state"], m["try_number"]) for i, m in mapped.items()} == {
        0: ("success", 1), 1: ("success", 2), 2: ("success", 1)}, mapped
    # one job per instance, each run once: the retried instance found its own job (x=2), not a sibling's
    assert sorted(marker.read_text().split()) == ["1", "2", "3", "4", "5"]
    from_xcom = _mapped(dr, "from_xcom")
    assert [from_xcom[i]["xcom"]["result"]["x"] for i in (0, 1)] == [4, 5]
    assert from_xcom[1]["xcom"]["handle"]["key"] == job_key("nr_sweep", dr.run_id, "from_xcom", 1, 0)
    for i, x in enumerate((1, 2, 3)):  # x=2 and x=3 came from templates rendered for each instance
        xcom = mapped[i]["xcom"]
        assert xcom["result"] == {"x": x, "square": x * x}, (i, xcom)
        assert xcom["handle"]["key"] == job_key("nr_sweep", dr.run_id, "sweep", i, 0)
        assert xcom["handle"]["key"].split("/")[1] == f"sweep-{i}"
    assert len({m["xcom"]["handle"]["job_dir"] for m in mapped.values()}) == 3
    assert [mapped[i]["rendered"]["overrides"] for i in (1, 2)] == [["x=2"], ["x=3"]]


def test_mapped_instances_keep_secrets_out_of_the_serialized_dag_and_rendered_fields(airflow_db,
                                                                                      monkeypatch) -> None:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_VAR_SWEEP_CRED", SECRET_VAR)  # a variable whose name Airflow does not mask itself
    dag = write_dag("nr_sweep_secrets", """
with DAG("nr_sweep_secrets", schedule=None, start_date=START) as dag:
    NemorunOperator.partial(
        task_id="sweep", task=run.Partial(_jobs.train_with_token, hidden_size=8, api_token=C["token"]),
        executor=run.LocalExecutor(env_vars={"WANDB_API_KEY": C["wandb"]}), poll_interval=0.2,
    ).expand(overrides=[["steps=1"], ["steps=2", "api_token={{ var.value.sweep_cred }}"]])
""", token=SECRET_ARG, wandb=SECRET_ENV)
    dr = run_dag(dag)
    mapped = _mapped(dr, "sweep")
    assert {i: m["state"] for i, m in mapped.items()} == {0: "success", 1: "success"}
    assert [mapped[i]["xcom"]["result"]["steps"] for i in (0, 1)] == [1, 2]
    assert mapped[1]["xcom"]["result"]["echo"] == "token was <redacted>"
    with create_session() as session:
        serialized = json.dumps(SerializedDagModel.get("nr_sweep_secrets", session=session).data)
    assert "train_with_token" in serialized and "LocalExecutor" in serialized
    assert mapped[1]["rendered"]["overrides"][0] == "steps=2"
    for what, text in (("serialized DAG", serialized), ("rendered fields", json.dumps(mapped[1]["rendered"])),
                       ("XCom", json.dumps([m["xcom"] for m in mapped.values()]))):
        for secret in (SECRET_ARG, SECRET_ENV, SECRET_VAR):
            assert secret not in text, f"{secret} is in the {what}: {text[:2000]}"


def test_partial_arguments_are_checked_when_the_dag_is_parsed() -> None:
    import datetime

    from airflow.sdk import DAG

    from nemorun_airflow import NemorunOperator

    task = run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig))
    with DAG("nr_partial_errors", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
        with pytest.raises(ConfigError, match="executor must be a nemorun executor"):
            NemorunOperator.partial(task_id="a", task=task, executor="local")
        with pytest.raises(ConfigError, match="poll_interval must be a positive number"):
            NemorunOperator.partial(task_id="b", task=task, poll_interval=0)
        with pytest.raises(OverrideError, match=r"expected int, got 'abc' \(in override 'steps=abc'\)"):
            NemorunOperator.partial(task_id="c", task=task, overrides=["steps=abc"]).expand(name=["x"])
        # Airflow's own executor keeps its name there; the nemorun one never reaches Airflow's scheduler
        sweep = NemorunOperator.partial(task_id="d", task=task, executor=run.LocalExecutor(),
                                        airflow_executor="LocalExecutor").expand(overrides=[["steps=1"]])
        assert sweep.executor == "LocalExecutor"
        plain = NemorunOperator.partial(task_id="e", task=task).expand(overrides=[["steps=1"]])
        assert plain.executor is None or isinstance(plain.executor, str)
