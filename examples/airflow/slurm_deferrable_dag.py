"""A training job on a Slurm cluster reached over SSH, followed by the triggerer (deferrable).

The cluster login is an Airflow ``ssh`` connection (the SSH provider's format), here ``nemorun_slurm``::

    airflow connections add nemorun_slurm --conn-json '{
        "conn_type": "ssh", "host": "login.cluster.org", "login": "me", "port": 22,
        "extra": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\\n...", "host_key": "ssh-ed25519 AAAA...",
                  "job_dir": "/scratch/me/nemorun"}}'

To try it with ``python examples/airflow/slurm_deferrable_dag.py`` (one run in this process: ``dag.test()`` runs
the trigger inline, where Airflow 3 sees only connections from the environment or a secrets backend, not those
added to the metadata database), give the same JSON as ``AIRFLOW_CONN_NEMORUN_SLURM='{"conn_type": "ssh", ...}'``.

The key never leaves Airflow's connection store: the worker and the triggerer each build the SSH tunnel from the
connection. While the job runs, the task is deferred: it holds no worker slot, and the triggerer polls all such
jobs on one cluster with one SSH round trip per round. Cluster settings come from the environment of the process
that parses this file (``NEMORUN_EXAMPLE_SLURM_PARTITION``, ``..._ACCOUNT``, ``..._PYTHON``: an interpreter on the
cluster with nemorun installed); the task's module is shipped to the cluster by the packager.
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

slurm = run.SlurmExecutor(
    partition=os.environ.get("NEMORUN_EXAMPLE_SLURM_PARTITION", "debug"),
    account=os.environ.get("NEMORUN_EXAMPLE_SLURM_ACCOUNT") or None,
    python=os.environ.get("NEMORUN_EXAMPLE_SLURM_PYTHON", "python3"),
    time="00:10:00",
    packager=run.PatternPackager(include=["nemorun_example_tasks.py"], relative_path=HERE),
)

with DAG(
    "nemorun_slurm_deferrable",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    params={"learning_rate": 0.02},
    default_args={"retries": 2},
    tags=["nemorun", "example", "slurm"],
) as dag:
    NemorunOperator(
        task_id="train",
        task=run.Partial(tasks.train, steps=200),
        executor=slurm,
        ssh_conn_id="nemorun_slurm",
        overrides=["learning_rate={{ params.learning_rate }}", "data_date={{ dag_run.run_after | ds }}"],
        deferrable=True,
        poll_interval=10.0,
    )

if __name__ == "__main__":  # python <this file>: one run in this process, triggers inline
    from nemorun_airflow import run_dag_file

    run_dag_file(dag, __file__)
