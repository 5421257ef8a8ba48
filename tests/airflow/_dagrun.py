"""Running test DAGs with ``dag.test()``: DAG files written into the session's dags folder, results read back from
Airflow's own database (task instance states, XCom)."""

from __future__ import annotations

import importlib.util
import os
import textwrap
import uuid
from typing import Any

#: What every test DAG file starts with (after ``C``): the names the DAG sources below use.
HEADER = """
import datetime
from airflow.sdk import DAG
import nemorun_core as run
from nemorun_airflow import NemorunJobSensor, NemorunOperator, experiment_task_group
from tests.airflow import _jobs
from tests.integration import _tasks
START = datetime.datetime(2026, 1, 1)
"""


def write_dag(name: str, source: str, **constants: Any) -> Any:
    """Write :data:`HEADER` and ``source`` as ``$AIRFLOW_HOME/dags/<name>.py`` (``C`` holds ``constants``) and return
    its ``dag``.

    dag.test() runs a DAG only once the DAG processor's code path has serialized it from the dags folder, so the
    test's DAG is a real file there; the returned object comes from importing that same file.
    """
    path = os.path.join(os.environ["AIRFLOW_HOME"], "dags", f"{name}.py")
    with open(path, "w") as f:
        f.write(f"C = {constants!r}\n" + HEADER + textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"nemorun_test_dag_{name}_{uuid.uuid4().hex[:6]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()``; returns the finished DagRun."""
    return dag.test(**kwargs)


def task_instances(dag_run: Any) -> dict[str, Any]:
    """``{task_id: TaskInstance}`` of the run, read from the database."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        for ti in tis:
            session.expunge(ti)
    return {ti.task_id: ti for ti in tis}


def states(dag_run: Any) -> dict[str, str]:
    return {task_id: str(getattr(ti.state, "value", ti.state)) for task_id, ti in task_instances(dag_run).items()}


def xcoms(dag_run: Any) -> dict[str, Any]:
    """``{task_id: return value}`` pushed to XCom in the run, read from the database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id,
                                                  key="return_value")).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}
