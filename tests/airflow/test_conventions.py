"""Issue 12, the Airflow conventions: templatable executor fields, the job log extra link, OpenLineage run facets, and
marking a task failed ending its job while the request is answered (sync and deferrable)."""

from __future__ import annotations

import os
import textwrap
import uuid

import pytest

from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import JobHandle, JobState
from tests.airflow._dagrun import run_dag, states, task_instances, write_dag, xcoms

pytestmark = pytest.mark.airflow


def _xcom(dag_run, task_id: str, key: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key=key,
                                                  task_ids=task_id)).all()
        return [XComModel.deserialize_value(row) for row in rows]


@pytest.mark.local
def test_executor_fields_are_templated_and_a_bad_one_names_the_field_with_a_fix(airflow_db, capfd, tmp_path) -> None:
    dag = write_dag("nr_exec_templates", """
with DAG("nr_exec_templates", schedule=None, start_date=START,
         params={"day": "2026-03-04", "partition": "a b", "wd": C["wd"]}) as dag:
    for task_id, deferrable in (("env", False), ("env_deferred", True)):
        # a template written in the executor itself (its checks accept it), and more through executor_fields
        NemorunOperator(task_id=task_id, task=run.Partial(_tasks.echo_env, names=["DAY", "PLAIN", "RUN"]),
                        executor=run.LocalExecutor(env_vars={"DAY": "{{ params.day }}", "PLAIN": "x"}),
                        executor_fields={"env_vars": {"RUN": "{{ run_id }}"}, "working_dir": "{{ params.wd }}"},
                        deferrable=deferrable, poll_interval=0.2)
    NemorunOperator(task_id="bad_template", task=run.Partial(_tasks.add, a=1),
                    executor=run.LocalExecutor(), executor_fields={"env_vars": {"D": "{{ params.nope.x }}"}})
    # a Slurm partition must be a plain word: the executor is built with one, the template renders a bad one
    NemorunOperator(task_id="refused", task=run.Partial(_tasks.add, a=1),
                    executor=run.SlurmExecutor(account="a", partition="p"),
                    executor_fields={"partition": "{{ params.partition }}"})
""", wd=str(tmp_path))
    dr = run_dag(dag)
    out = capfd.readouterr()
    log = out.out + out.err
    assert states(dr) == {"env": "success", "env_deferred": "success", "bad_template": "failed",
                          "refused": "failed"}, log[-3000:]
    values = xcoms(dr)
    for task_id in ("env", "env_deferred"):
        assert values[task_id]["result"] == {"DAY": "2026-03-04", "PLAIN": "x", "RUN": dr.run_id}, task_id
    assert "executor field env_vars['D'] '{{ params.nope.x }}' cannot be rendered: UndefinedError" in log, log[-3000:]
    assert "give it a default: {{ params.NAME | default('x') }}" in log
    assert "SlurmExecutor.partition: 'a b' cannot go into an #SBATCH line" in log
    assert "Fix the template in executor_fields" in log
    # neither failure is retried: a bad input will not fix itself
    assert task_instances(dr)["refused"].try_number == 1

    # the job log extra link: recorded in XCom under the link's key, for the synchronous and the deferred task
    from nemorun_airflow.links import NemorunJobLogLink

    link = NemorunJobLogLink()
    for task_id in ("env", "env_deferred"):
        log_path = values[task_id]["log"]
        assert _xcom(dr, task_id, link.xcom_key) == ["file://" + log_path], task_id
    assert _xcom(dr, "bad_template", link.xcom_key) in ([], [""])  # no job, no link


@pytest.mark.local
def test_a_backend_with_a_ui_of_its_own_gets_a_backend_link(airflow_db, tmp_path) -> None:
    from nemorun_airflow.links import NemorunBackendLink, NemorunJobLogLink

    dag = write_dag("nr_backend_link", """
from tests.integration._faults import WithDashboard
with DAG("nr_backend_link", schedule=None, start_date=START) as dag:
    NemorunOperator(task_id="job", task=run.Partial(_tasks.add, a=1), executor=WithDashboard())
""")
    dr = run_dag(dag)
    assert states(dr) == {"job": "success"}
    handle_id = xcoms(dr)["job"]["job_id"]
    assert _xcom(dr, "job", NemorunBackendLink().xcom_key) == [f"http://127.0.0.1:8265/#/jobs/{handle_id}"]
    assert _xcom(dr, "job", NemorunJobLogLink().xcom_key)[0].startswith("file://")


def test_executor_fields_are_checked_when_the_dag_is_parsed() -> None:
    import nemorun_core as run
    from nemorun_airflow import NemorunOperator

    task = run.Partial(os.getcwd)
    slurm = run.SlurmExecutor(account="a", partition="p")
    with pytest.raises(ConfigError, match=r"t\.executor_fields\.partiton: SlurmExecutor has no templatable field "
                                          r"'partiton'; did you mean 'partition'\?"):
        NemorunOperator(task_id="t", task=task, executor=slurm, executor_fields={"partiton": "{{ params.p }}"})
    with pytest.raises(ConfigError, match=r"not a str or dict\[str, str\] field"):
        NemorunOperator(task_id="t", task=task, executor=slurm, executor_fields={"nodes": "{{ params.n }}"})
    with pytest.raises(ConfigError, match=r"env_vars is a dict\[str, str\] field"):
        NemorunOperator(task_id="t", task=task, executor=slurm, executor_fields={"env_vars": "{{ params.e }}"})
    with pytest.raises(ConfigError, match=r"must be a dict of executor field"):
        NemorunOperator(task_id="t", task=task, executor=slurm, executor_fields=["partition"])
    with pytest.raises(ConfigError, match=r"executor_fields\.partiton"):
        NemorunOperator.partial(task_id="m", task=task, executor=slurm, executor_fields={"partiton": "x"})
    op = NemorunOperator(task_id="ok", task=task, executor=run.LocalExecutor(env_vars={"A": "{{ ds }}", "B": "b"}),
                         executor_fields={"env_vars": {"C": "{{ run_id }}"}})
    assert "executor_fields" in op.template_fields
    assert op.executor_fields == {"env_vars": {"A": "{{ ds }}", "C": "{{ run_id }}"}}


def test_log_urls_and_openlineage_run_facets() -> None:
    import importlib.util

    import nemorun_core as run
    from nemorun_airflow import NemorunOperator
    from nemorun_airflow.lineage import job_facet_fields, operator_lineage
    from nemorun_airflow.links import log_url

    assert log_url("/home/me/jobs/a b/log.out") == "file:///home/me/jobs/a%20b/log.out"  # quoted, as Prefect's
    assert log_url("/home/me/jobs/x/log.out") == "file:///home/me/jobs/x/log.out"
    assert log_url("https://ray.example/#/jobs/1") == "https://ray.example/#/jobs/1"
    assert log_url("me@login:22:/scratch/log.out") == log_url("docker logs abc") == log_url(None) == ""

    executor = run.LocalExecutor()
    handle = JobHandle.create("local", "123", "airflow-d-r-1/t/0", "/tmp/j")
    assert job_facet_fields(executor) == {"backend": "local", "executor": "LocalExecutor"}
    assert job_facet_fields(executor, handle, "SUCCEEDED") == {
        "backend": "local", "executor": "LocalExecutor", "job_id": "123", "key": "airflow-d-r-1/t/0",
        "log": "/tmp/j/log.out", "state": "SUCCEEDED"}
    op = NemorunOperator(task_id="t", task=run.Partial(os.getcwd))
    if importlib.util.find_spec("airflow.providers.openlineage") is None:
        # Without the OpenLineage provider nothing calls these hooks; they answer "no lineage" rather than fail.
        assert operator_lineage(job_facet_fields(executor)) is None
        assert op.get_openlineage_facets_on_start() is None and op.get_openlineage_facets_on_complete(None) is None
    else:
        lineage = op.get_openlineage_facets_on_start()
        assert lineage.run_facets["nemorun"].backend == "local"


@pytest.fixture
def job_home(airflow_server, monkeypatch) -> str:
    home = airflow_server.env["NEMORUN_HOME"]
    monkeypatch.setenv("NEMORUN_HOME", home)  # where the workers' job dirs are
    return home


DAG = """
for deferrable in (False, True):
    with DAG(f"nr_mark_failed_{'deferrable' if deferrable else 'sync'}", schedule=None, start_date=START,
             max_active_runs=4, params={"marker": ""}):
        NemorunOperator(task_id="job", task=run.Partial(_jobs.count_run, marker="", value=1, seconds=300),
                        overrides=["marker={{ params.marker }}"], deferrable=deferrable, poll_interval=5)
"""


@pytest.mark.local
@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_marking_a_running_task_failed_has_ended_its_job_when_the_request_returns(airflow_server, job_home, tmp_path,
                                                                                   mode: str) -> None:
    # The listener cancels in the API server while it answers the mark: no wait for the worker's next heartbeat
    # (sync) or the triggerer's next loop (deferred). The job is terminal when the PATCH returns, whatever the poll.
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key
    from tests.airflow._dagrun import HEADER

    server = airflow_server
    server.write_dag("nr_mark_failed.py", "C = {}\n" + HEADER + textwrap.dedent(DAG))
    dag_id = f"nr_mark_failed_{mode}"
    server.wait_for_dag(dag_id)
    marker = str(tmp_path / "runs")
    run_id = server.trigger(dag_id, conf={"marker": marker}, run_id=f"mark-{uuid.uuid4().hex[:8]}")["dag_run_id"]
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job"
    executor, key = run.LocalExecutor(), job_key(dag_id, run_id, "job")

    def following():
        ti = server.api("GET", base)
        handle = executor.find(key, job_dir_for(key))
        wanted = ti["state"] == "deferred" and ti["triggerer_job"] if mode == "deferrable" else ti["state"] == "running"
        running = handle is not None and executor.status(handle).state is JobState.RUNNING
        return handle if wanted and running else None

    handle = server.wait_until(following, lambda h: h is not None, 240, f"the {mode} task to follow its job")
    # the extra link is there while the job runs (pushed when the job was known, not at the end of the try)
    links = server.api("GET", f"{base}/links")["extra_links"]
    assert links["Job log"] == "file://" + executor.log_location(handle), links
    assert set(links) <= {"Job log", "Backend UI"} and not links.get("Backend UI"), "Local has no UI of its own"

    server.api("PATCH", base, {"new_state": "failed"}, timeout=60)
    status = executor.status(handle)
    assert status.state is JobState.CANCELLED, status
    with open(server.log_path("api-server"), errors="replace") as f:
        assert f"cancelling job {handle.key}" in f.read()
    with open(marker) as f:
        assert len(f.read().splitlines()) == 1
    # the task's own kill hook runs later and finds the job ended; the task stays failed
    server.wait_until(lambda: server.api("GET", base), lambda ti: ti["state"] == "failed", 60, "the task to be failed")
