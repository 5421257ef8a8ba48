"""experiment_task_group: a run.Experiment as an Airflow task group, run with dag.test()."""

from __future__ import annotations

import datetime
import os

import pytest

import nemorun_core as run
from nemorun_core.errors import ExperimentError
from tests.airflow._dagrun import run_dag, states, write_dag, xcoms
from tests.integration import _tasks

pytestmark = [pytest.mark.airflow, pytest.mark.local]


def test_group_mirrors_dependencies_passes_references_and_stops_after_a_failure(airflow_db, tmp_path) -> None:
    from nemorun_airflow.operators import job_dir_for, job_key

    dag = write_dag("nr_group", """
exp = run.Experiment("sweep.v1")
train = exp.add(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), steps=2),
                name="train")
exp.add(run.Partial(_tasks.evaluate, checkpoint=f"{train.output.checkpoint}",
                    hidden_size=f"{train.output.hidden_size}"), name="evaluate")
exp.add(run.Partial(_tasks.where), name="independent")
bad = exp.add(run.Partial(_tasks.fail, message="no luck"), name="bad")
exp.add(run.Partial(_tasks.add, a=1), name="after_bad", dependencies=[bad])

with DAG("nr_group", schedule=None, start_date=START) as dag:
    group = experiment_task_group(exp, poll_interval=0.2, deferrable=True)
""")
    ids = sorted(dag.task_dict)
    assert ids == ["sweep_v1.after_bad", "sweep_v1.bad", "sweep_v1.evaluate", "sweep_v1.independent", "sweep_v1.train"]
    assert dag.task_dict["sweep_v1.evaluate"].upstream_task_ids == {"sweep_v1.train"}
    assert dag.task_dict["sweep_v1.after_bad"].upstream_task_ids == {"sweep_v1.bad"}
    assert dag.task_dict["sweep_v1.independent"].upstream_task_ids == set()

    dr = run_dag(dag)
    assert states(dr) == {"sweep_v1.train": "success", "sweep_v1.evaluate": "success",
                          "sweep_v1.independent": "success", "sweep_v1.bad": "failed",
                          "sweep_v1.after_bad": "upstream_failed"}
    values = xcoms(dr)
    assert values["sweep_v1.evaluate"]["result"] == "evaluated /ckpt/h64 (64)"
    assert values["sweep_v1.train"]["name"] == "train"
    # a task whose dependency failed submitted nothing
    assert not os.path.exists(job_dir_for(job_key("nr_group", dr.run_id, "sweep_v1.after_bad")))


def test_max_concurrent_takes_slots_of_a_pool() -> None:
    from airflow.sdk import DAG

    from nemorun_airflow import experiment_task_group

    exp = run.Experiment("pooled")
    for i in range(3):
        exp.add(run.Partial(_tasks.add, a=i), name=f"t{i}")
    with DAG("nr_pool", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        with pytest.raises(ExperimentError, match=r"airflow pools set nemorun-pooled 2 .* --include-deferred"):
            experiment_task_group(exp, max_concurrent=2)
        with pytest.raises(ExperimentError, match="max_concurrent must be a positive int"):
            experiment_task_group(exp, max_concurrent=0, pool="p")
        experiment_task_group(exp, max_concurrent=2, pool="nemorun-pooled")
    assert {(t.pool, t.pool_slots) for t in dag.tasks} == {("nemorun-pooled", 1)}

    with DAG("nr_empty", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
        with pytest.raises(ExperimentError, match="has no tasks"):
            experiment_task_group(run.Experiment("empty"))
