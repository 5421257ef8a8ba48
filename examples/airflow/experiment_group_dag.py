"""A ``run.Experiment`` as an Airflow task group: a small sweep, then an evaluation that uses its results.

Each experiment task becomes a NemorunOperator with the same dependencies; ``{name.output...}`` references are
filled in from the upstream task's XCom when the dependent task starts.
"""

from __future__ import annotations

import datetime
import os
import sys

from airflow.sdk import DAG

import nemorun_core as run
from nemorun_airflow import experiment_task_group

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # Airflow puts the dags folder on sys.path; other loaders may not
    sys.path.insert(0, HERE)

import nemorun_example_tasks as tasks  # noqa: E402

local = run.LocalExecutor(env_vars={"PYTHONPATH": HERE})
exp = run.Experiment("lr-sweep")
runs = [exp.add(run.Partial(tasks.train, learning_rate=lr, steps=50), executor=local, name=f"train-{i}")
        for i, lr in enumerate((0.01, 0.03, 0.1))]
exp.add(run.Partial(tasks.evaluate, checkpoint=f"{runs[0].output.checkpoint}",
                    losses=[f"{r.output.loss}" for r in runs]), executor=local, name="evaluate")

with DAG(
    "nemorun_experiment_group",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    tags=["nemorun", "example"],
) as dag:
    experiment_task_group(exp, poll_interval=1.0)

if __name__ == "__main__":  # python <this file>: one run in this process, triggers inline
    from nemorun_airflow import run_dag_file

    run_dag_file(dag, __file__)
