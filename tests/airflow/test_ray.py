"""NemorunOperator on Ray (issue 14): a task as a Ray job on the test run's Ray head, sync and deferrable, with
dag.test(); its result in XCom and the job's dashboard page as the operator's "Backend UI" extra link.

Service: the Ray head of scripts/services/ray.sh (started by scripts/test.sh), reached through its bridge.
"""

from __future__ import annotations

import pytest

from tests.airflow._dagrun import run_dag, states, write_dag, xcoms
from tests.airflow.test_conventions import _xcom
from tests.integration import services

pytestmark = [pytest.mark.airflow, pytest.mark.ray]


def test_a_task_runs_as_a_ray_job_sync_and_deferrable_with_the_dashboard_link(airflow_db, capfd) -> None:
    from nemorun_airflow.links import NemorunBackendLink

    address = services.ray().address
    dag = write_dag("nr_ray", """
ray = run.RayExecutor(address=C["address"])
with DAG("nr_ray", schedule=None, start_date=START, params={"b": 40}) as dag:
    NemorunOperator(task_id="sync", task=run.Partial(_tasks.add, a=1), executor=ray, overrides=["b=2"],
                    poll_interval=0.5)
    NemorunOperator(task_id="deferred", task=run.Partial(_tasks.add, a=2), executor=ray,
                    overrides=["b={{ params.b }}"], deferrable=True, poll_interval=0.5)
""", address=address)
    dr = run_dag(dag)
    out = capfd.readouterr()
    assert states(dr) == {"sync": "success", "deferred": "success"}, (out.out + out.err)[-3000:]
    values = xcoms(dr)
    assert values["sync"]["result"] == 3 and values["deferred"]["result"] == 42
    for task_id, value in values.items():
        handle = value["handle"]
        assert handle["backend"] == "ray", handle
        assert _xcom(dr, task_id, NemorunBackendLink().xcom_key) == [f"{address}/#/jobs/{handle['job_id']}"]
