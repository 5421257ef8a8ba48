"""nemorun's listener (nemorun_airflow/listener.py) under a real Airflow deployment whose triggerer never starts the
tasks' triggers: a deferred task ended by a user through the REST API has its job cancelled although no nemorun
trigger ever ran, and a cleared one keeps its job for the next try.

The deployment is this module's own (tests/airflow/_server.py), with ``[triggerer] queues_enabled``: each deferred
task's trigger goes to its task's queue (``default``), and the triggerer, started without ``--queues``, runs only
triggers without a queue, so it is healthy and running but never takes these triggers (a deployment whose
triggerer for that queue is down or not started yet).
"""

from __future__ import annotations

import json
import logging
import os
import textwrap

import pytest

from nemorun_core.executors.base import JobState

from tests.airflow import _dagrun

pytestmark = [pytest.mark.airflow, pytest.mark.local]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from tests.airflow._server import AirflowServer

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    home = tmp_path_factory.mktemp("airflow-listener")
    env = {"PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p),
           "NEMORUN_HOME": str(home / "nemorun-home"), "AIRFLOW__TRIGGERER__QUEUES_ENABLED": "True"}
    deployment = AirflowServer.start(str(home / "airflow"), env=env)
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def job_home(server, monkeypatch) -> str:
    home = server.env["NEMORUN_HOME"]
    monkeypatch.setenv("NEMORUN_HOME", home)
    return home


DAG_SOURCE = """
with DAG("nr_listener", schedule=None, start_date=START, max_active_runs=4,
         params={"marker": ""}) as dag:
    NemorunOperator(task_id="job", task=run.Partial(_jobs.count_run, marker="", value=1, seconds=300),
                    overrides=["marker={{ params.marker }}"], deferrable=True, poll_interval=0.5)
"""


@pytest.fixture(scope="module")
def dag_id(server) -> str:
    server.write_dag("nr_listener.py", "C = {}\n" + _dagrun.HEADER + textwrap.dedent(DAG_SOURCE))
    server.wait_for_dag("nr_listener")
    return "nr_listener"


def _ti(server, dag_id: str, run_id: str) -> dict:
    return server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job")


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _deferred_job(server, dag_id: str, run_id: str, try_number: int = 1):
    """Wait until the run's task is deferred with a trigger that no triggerer took; return (executor, handle)."""
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key

    ti = server.wait_until(lambda: _ti(server, dag_id, run_id),
                           lambda t: t["state"] == "deferred" and t["try_number"] == try_number, 120,
                           f"try {try_number} of {run_id} to defer")
    assert ti["trigger"] and ti["trigger"]["classpath"] == "nemorun_airflow.triggers.NemorunJobTrigger", ti
    assert ti["triggerer_job"] is None, f"a triggerer took the trigger: {ti['triggerer_job']}"
    executor = run.LocalExecutor()
    key = job_key(dag_id, run_id, "job")
    handle = executor.find(key, job_dir_for(key))
    assert handle is not None and executor.status(handle).state is JobState.RUNNING
    return executor, handle


def _api_log(server) -> str:
    with open(server.log_path("api-server"), errors="replace") as f:
        return f.read()


def test_the_listener_is_registered_as_a_plugin(server) -> None:
    proc = server.cli("plugins", "--output", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert "nemorun" in plugins, list(plugins)
    assert "nemorun_airflow.listener._Listener" in json.dumps(plugins["nemorun"])


def test_a_deferred_task_ended_before_its_trigger_started_cancels_its_job(server, dag_id, job_home,
                                                                         tmp_path) -> None:
    # One run per way a user ends the task: the task marked failed, the task marked success, the run marked failed.
    ways = ("task-failed", "task-success", "run-failed")
    runs = {how: server.trigger(dag_id, conf={"marker": str(tmp_path / f"{how}.runs")},
                                run_id=f"listener-{how}")["dag_run_id"] for how in ways}
    jobs = {how: _deferred_job(server, dag_id, run_id) for how, run_id in runs.items()}

    base = f"/api/v2/dags/{dag_id}/dagRuns"
    server.api("PATCH", f"{base}/{runs['task-failed']}/taskInstances/job", {"new_state": "failed"})
    server.api("PATCH", f"{base}/{runs['task-success']}/taskInstances/job", {"new_state": "success"})
    server.api("PATCH", f"{base}/{runs['run-failed']}", {"state": "failed"})

    for how, (executor, handle) in jobs.items():
        status = server.wait_until(lambda e=executor, h=handle: e.status(h), lambda st: st.is_terminal, 60,
                                   f"the job of the run ended by {how} to end", interval=0.3)
        assert status.state is JobState.CANCELLED, (how, status)
        assert _ti(server, dag_id, runs[how])["triggerer_job"] is None, "no trigger ran: the listener cancelled it"
        assert f"cancelling job {handle.key}" in _api_log(server), how
        assert len(_lines(str(tmp_path / f"{how}.runs"))) == 1, how
    assert _ti(server, dag_id, runs["task-success"])["state"] == "success"
    assert server.run_state(dag_id, runs["run-failed"])["state"] == "failed"


def test_a_cleared_deferred_task_keeps_its_job_for_the_next_try(server, dag_id, job_home, tmp_path) -> None:
    marker = str(tmp_path / "runs")
    run_id = server.trigger(dag_id, conf={"marker": marker}, run_id="listener-clear")["dag_run_id"]
    executor, handle = _deferred_job(server, dag_id, run_id)

    cleared = server.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": ["job"], "only_failed": False, "reset_dag_runs": True})
    assert [ti["task_id"] for ti in cleared["task_instances"]] == ["job"], cleared
    # The next try runs, re-attaches to the same job and defers again.
    again_executor, again = _deferred_job(server, dag_id, run_id, try_number=2)
    assert again == handle, (again, handle)
    assert executor.status(handle).state is JobState.RUNNING, "the clear cancelled the job"
    assert len(_lines(marker)) == 1, "the cleared task ran its job again"
    log = json.dumps(server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job/logs/2"
                                       "?full_content=true"))
    assert "re-attaching to job" in log, log[-3000:]

    # Ending the new try ends the job, from the record the new try wrote.
    server.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job", {"new_state": "failed"})
    status = server.wait_until(lambda: executor.status(handle), lambda st: st.is_terminal, 60,
                               "the job of the re-attached try to end", interval=0.3)
    assert status.state is JobState.CANCELLED, status


def test_the_listener_never_raises_and_says_why_it_cannot_cancel() -> None:
    from nemorun_airflow import listener

    listener.task_instance_ended(object())  # not a task instance row (a task process): nothing to do
    record = {"handle": {"backend": "local", "job_id": "1", "key": "x/y/0", "job_dir": "/nonexistent"},
              "executor": {"_target_": "no_such_module:Executor", "_instance_": True}, "connections": {},
              "source": "task state store"}
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())  # Airflow's logging replaces caplog's
    logging.getLogger(listener.__name__).addHandler(handler)
    try:
        listener._cancel(object(), record, "failed")
        listener._cancel(object(), {**record, "executor": {"not": "an executor"}}, "failed")
        listener._cancel(object(), {**record, "handle": {"nonsense": 1}}, "failed")
    finally:
        logging.getLogger(listener.__name__).removeHandler(handler)
    assert any("cannot cancel job x/y/0" in m and "cancel it by hand" in m for m in messages), messages
    assert any("builds a dict, not an executor" in m for m in messages), messages
    assert any("holds no usable job handle" in m for m in messages), messages
