"""One nemorun task on this machine (LocalExecutor), with templated overrides.

``overrides`` use the ``nemorun`` command-line grammar and are rendered by Jinja when the task starts, so a run's
date or its params reach the task's config. The task's log streams into the Airflow task log; its return value
lands in XCom with the job's handle and state.
"""

from __future__ import annotations

import datetime
import os
import sys

from airflow.sdk import DAG

import nemorun_core as run
from nemorun_airflow import NemorunOperator

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # Airflow puts the dags folder on sys.path; other loaders may not
    sys.path.insert(0, HERE)

import nemorun_example_tasks as tasks  # noqa: E402

with DAG(
    "nemorun_single_task",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    params={"learning_rate": 0.05},
    tags=["nemorun", "example"],
) as dag:
    NemorunOperator(
        task_id="train",
        task=run.Partial(tasks.train, steps=50),
        # The job imports the task's module: put this folder on its PYTHONPATH.
        executor=run.LocalExecutor(env_vars={"PYTHONPATH": HERE}),
        # run_after, not ds: a run triggered without a logical date (the UI and REST API default) has no ds.
        overrides=["learning_rate={{ params.learning_rate }}", "data_date={{ dag_run.run_after | ds }}"],
        poll_interval=1.0,
    )

if __name__ == "__main__":  # python <this file>: one run in this process, triggers inline
    from nemorun_airflow import run_dag_file

    run_dag_file(dag, __file__)
