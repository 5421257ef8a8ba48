"""nemorun's operator under a real Airflow deployment: scheduler, LocalExecutor workers, triggerer, REST API.

`dag.test()` (tests/airflow/test_operator.py) runs triggers inline in one process; here the task really defers,
the triggerer process follows the job, a user's action in the API kills the deferred task, and everything is read
back through the REST API, as a user would. The deployment is the session's `airflow_server` fixture
(tests/airflow/_server.py).
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from nemorun_core.executors.base import JobState

from tests.airflow import _dagrun

pytestmark = [pytest.mark.airflow, pytest.mark.local]

SECRET_ARG = "tok-5ched-0123456789"
SECRET_ENV = "wandb-5ched-9876543210"
HEADER = _dagrun.HEADER + "from tests.airflow import _scheduled\n"


def _dag(server, dag_id: str, body: str, **constants) -> None:
    server.write_dag(f"{dag_id}.py", f"C = {constants!r}\n" + HEADER + textwrap.dedent(body))
    server.wait_for_dag(dag_id)


def _ti(server, dag_id: str, run_id: str, task_id: str) -> dict:
    return server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _log(server, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    """The task's log as the API serves it (task and trigger lines), as JSON text."""
    return json.dumps(server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
                                        f"{try_number}?full_content=true"))


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


@pytest.fixture
def job_home(airflow_server, monkeypatch) -> str:
    """The deployment's NEMORUN_HOME, also this process's: the core executor finds the jobs its workers submitted."""
    home = airflow_server.env["NEMORUN_HOME"]
    monkeypatch.setenv("NEMORUN_HOME", home)
    return home


def test_the_deployment_runs_a_plain_dag(airflow_server) -> None:
    _dag(airflow_server, "nr_plain", """
        from airflow.sdk import task

        with DAG("nr_plain", schedule=None, start_date=START) as dag:
            @task
            def hello():
                return {"answer": 42}
            hello()
    """)
    run_id = airflow_server.trigger("nr_plain")["dag_run_id"]
    assert airflow_server.wait_for_run("nr_plain", run_id)["state"] == "success"
    xcom = airflow_server.api("GET", f"/api/v2/dags/nr_plain/dagRuns/{run_id}/taskInstances/hello/xcomEntries/"
                                     "return_value?deserialize=true")
    assert xcom["value"] == {"answer": 42}


def test_deferred_task_is_followed_by_the_triggerer_and_succeeds(airflow_server, job_home, tmp_path) -> None:
    marker = str(tmp_path / "runs")
    _dag(airflow_server, "nr_sched_ok", """
        with DAG("nr_sched_ok", schedule=None, start_date=START) as dag:
            NemorunOperator(
                task_id="train",
                task=run.Partial(_scheduled.slow_train, marker=C["marker"], hidden_size=8, api_token=C["token"],
                                 seconds=8),
                executor=run.LocalExecutor(env_vars={"WANDB_API_KEY": C["wandb"]}),
                deferrable=True, poll_interval=0.5)
    """, marker=marker, token=SECRET_ARG, wandb=SECRET_ENV)
    run_id = airflow_server.trigger("nr_sched_ok")["dag_run_id"]

    seen: list[str] = []
    triggers: list[dict] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ti = _ti(airflow_server, "nr_sched_ok", run_id, "train")
        if not seen or seen[-1] != ti["state"]:
            seen.append(ti["state"])
        if ti.get("trigger"):
            triggers.append(ti["trigger"])
        if ti["state"] in ("success", "failed", "upstream_failed"):
            break
        time.sleep(0.3)
    assert "deferred" in seen and seen[-1] == "success", seen
    assert airflow_server.wait_for_run("nr_sched_ok", run_id)["state"] == "success"
    assert triggers and triggers[0]["classpath"] == "nemorun_airflow.triggers.NemorunJobTrigger"
    assert len(_lines(marker)) == 1, "the job ran once: execute_complete did not submit again"

    xcom = airflow_server.api("GET", f"/api/v2/dags/nr_sched_ok/dagRuns/{run_id}/taskInstances/train/xcomEntries/"
                                     "return_value?deserialize=true")["value"]
    assert xcom["state"] == "SUCCEEDED" and xcom["exit_code"] == 0
    assert xcom["result"]["checkpoint"] == "/ckpt/h8" and xcom["result"]["api_token"] != SECRET_ARG
    assert xcom["handle"]["backend"] == "local" and xcom["handle"]["job_dir"].startswith(job_home)
    import nemorun_core as run
    from nemorun_core.executors.base import JobHandle, JobState

    assert run.LocalExecutor().status(JobHandle.from_dict(xcom["handle"])).state is JobState.SUCCEEDED

    log = _log(airflow_server, "nr_sched_ok", run_id, "train")
    assert "step 3 of h8" in log, "the triggerer streamed the job's lines into the task log"
    assert "training h8 token=" in log, "the line holding the secrets is logged, redacted"
    for what, text in (("XCom", json.dumps(xcom)), ("trigger kwargs", json.dumps(triggers)), ("task log", log)):
        leaks = [line for line in text.split("}, {") if SECRET_ARG in line or SECRET_ENV in line]
        assert not leaks, f"a secret is in the {what}: {leaks}"


def test_killing_the_deferred_task_cancels_its_job(airflow_server, job_home, tmp_path) -> None:
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key
    from nemorun_core.executors.base import JobState

    marker = str(tmp_path / "runs")
    _dag(airflow_server, "nr_sched_kill", """
        with DAG("nr_sched_kill", schedule=None, start_date=START, max_active_runs=2) as dag:
            NemorunOperator(task_id="long", task=run.Partial(_jobs.count_run, marker=C["marker"], value=1,
                                                             seconds=300),
                            deferrable=True, poll_interval=0.5)
    """, marker=marker)
    runs = {how: airflow_server.trigger("nr_sched_kill", run_id=f"kill-{how}")["dag_run_id"]
            for how in ("task", "run")}
    for run_id in runs.values():
        airflow_server.wait_until(lambda r=run_id: _ti(airflow_server, "nr_sched_kill", r, "long")["state"],
                                  lambda state: state == "deferred", 120, f"task of {run_id} to defer")
        # Airflow calls a trigger's on_kill only once a triggerer runs it: wait for the job's first line, which the
        # trigger logs into the task log.
        airflow_server.wait_until(lambda r=run_id: _log(airflow_server, "nr_sched_kill", r, "long"),
                                  lambda log: "counted run, returning 1" in log, 60, f"the trigger of {run_id}")
    executor = run.LocalExecutor()
    handles = {}
    for how, run_id in runs.items():
        key = job_key("nr_sched_kill", run_id, "long")
        handles[how] = executor.find(key, job_dir_for(key))
        assert handles[how] is not None and executor.status(handles[how]).state is JobState.RUNNING

    airflow_server.api("PATCH", f"/api/v2/dags/nr_sched_kill/dagRuns/{runs['task']}/taskInstances/long",
                       {"new_state": "failed"})
    airflow_server.api("PATCH", f"/api/v2/dags/nr_sched_kill/dagRuns/{runs['run']}", {"state": "failed"})

    for how, handle in handles.items():
        status = airflow_server.wait_until(lambda h=handle: executor.status(h), lambda st: st.is_terminal, 60,
                                           f"the job of the run killed by its {how} to end", interval=0.3)
        assert status.state is JobState.CANCELLED, (how, status)
        assert airflow_server.wait_for_run("nr_sched_kill", runs[how], 60)["state"] == "failed"
    assert len(_lines(marker)) == 2, "one job per run, none resubmitted"


def _clear(server, dag_id: str, run_id: str, task_id: str) -> None:
    """Clear one task instance through the REST API, whatever its state (the UI's "Clear" on that task)."""
    cleared = server.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False, "reset_dag_runs": True})
    assert [ti["task_id"] for ti in cleared["task_instances"]] == [task_id], cleared


def test_a_cleared_task_reattaches_to_its_job_instead_of_running_it_again(airflow_server, job_home,
                                                                          tmp_path) -> None:
    # One DAG, two runs at once: "done" is cleared after its job succeeded, "running" while its job still runs (it
    # runs until the test creates its release file).
    _dag(airflow_server, "nr_sched_clear", """
        with DAG("nr_sched_clear", schedule=None, start_date=START, max_active_runs=2,
                 params={"marker": "", "value": 0, "release": ""}) as dag:
            NemorunOperator(task_id="job", task=run.Partial(_scheduled.count_run_until, marker="", value=0),
                            overrides=["marker={{ params.marker }}", "value={{ params.value }}",
                                       "release={{ params.release }}"],
                            deferrable=True, poll_interval=0.5)
    """)
    release = tmp_path / "release"
    cases = {"done": {"marker": str(tmp_path / "done.runs"), "value": 7, "release": ""},
             "running": {"marker": str(tmp_path / "running.runs"), "value": 8, "release": str(release)}}
    runs = {name: airflow_server.trigger("nr_sched_clear", conf=conf, run_id=f"clear-{name}")["dag_run_id"]
            for name, conf in cases.items()}
    try:
        assert airflow_server.wait_for_run("nr_sched_clear", runs["done"])["state"] == "success"
        _clear(airflow_server, "nr_sched_clear", runs["done"], "job")

        # Airflow calls a trigger's on_kill only once a triggerer runs it: wait for the job's first line, which the
        # trigger logs, before clearing.
        airflow_server.wait_until(lambda: _log(airflow_server, "nr_sched_clear", runs["running"], "job"),
                                  lambda log: "counted run, returning 8" in log, 60, "the trigger of the running job")
        assert _ti(airflow_server, "nr_sched_clear", runs["running"], "job")["state"] == "deferred"
        _clear(airflow_server, "nr_sched_clear", runs["running"], "job")
        # The job ends only once the cleared try's trigger was killed (on_kill decided) and the new try deferred.
        first = airflow_server.wait_until(
            lambda: _log(airflow_server, "nr_sched_clear", runs["running"], "job"),
            lambda log: "task cleared" in log or "task killed" in log, 60, "on_kill of the cleared try's trigger")
        assert "keeps running; the next try re-attaches to it" in first, first[-3000:]
        airflow_server.wait_until(lambda: _ti(airflow_server, "nr_sched_clear", runs["running"], "job"),
                                  lambda ti: ti["try_number"] == 2 and ti["state"] == "deferred", 60,
                                  "the new try to defer")
    finally:
        release.touch()

    for name, run_id in runs.items():
        assert airflow_server.wait_for_run("nr_sched_clear", run_id)["state"] == "success", name
        ti = _ti(airflow_server, "nr_sched_clear", run_id, "job")
        assert (ti["state"], ti["try_number"]) == ("success", 2), (name, ti)
        assert len(_lines(cases[name]["marker"])) == 1, f"{name}: the cleared task ran its job again"
        xcom = airflow_server.api("GET", f"/api/v2/dags/nr_sched_clear/dagRuns/{run_id}/taskInstances/job/"
                                         "xcomEntries/return_value?deserialize=true")["value"]
        assert xcom["result"] == cases[name]["value"] and xcom["state"] == "SUCCEEDED", (name, xcom)
        assert xcom["handle"]["key"].endswith("/job/0"), (name, xcom)
    assert "already succeeded: not run again" in _log(airflow_server, "nr_sched_clear", runs["done"], "job", 2)
    second = _log(airflow_server, "nr_sched_clear", runs["running"], "job", 2)
    assert "re-attaching to job" in second and ": RUNNING" in second, second[-3000:]


def _log_or_empty(server, dag_id: str, run_id: str, try_number: int = 1) -> str:
    from tests.airflow._server import AirflowServerError

    try:
        return _log(server, dag_id, run_id, "job", try_number)
    except AirflowServerError:
        return ""


def test_a_cleared_synchronous_task_reattaches_to_its_running_job(airflow_server, job_home, tmp_path) -> None:
    # Not deferred: the try runs in a worker, and clearing it makes Airflow kill that process (on_kill). The job must
    # survive the kill and the new try must follow it, not submit a second one.
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key

    marker, release = str(tmp_path / "runs"), tmp_path / "release"
    _dag(airflow_server, "nr_sched_clear_sync", """
        with DAG("nr_sched_clear_sync", schedule=None, start_date=START) as dag:
            NemorunOperator(task_id="job", task=run.Partial(_scheduled.count_run_until, marker=C["marker"], value=5,
                                                            release=C["release"]),
                            deferrable=False, poll_interval=0.3)
    """, marker=marker, release=str(release))
    run_id = airflow_server.trigger("nr_sched_clear_sync")["dag_run_id"]
    executor = run.LocalExecutor()
    key = job_key("nr_sched_clear_sync", run_id, "job")
    try:
        airflow_server.wait_until(lambda: _log_or_empty(airflow_server, "nr_sched_clear_sync", run_id),
                                  lambda log: "counted run, returning 5" in log, 90, "the job's first line")
        handle = executor.find(key, job_dir_for(key))
        assert handle is not None and executor.status(handle).state is JobState.RUNNING
        assert _ti(airflow_server, "nr_sched_clear_sync", run_id, "job")["state"] == "running"
        _clear(airflow_server, "nr_sched_clear_sync", run_id, "job")
        # While the killed try winds down its log may be briefly unavailable (404): ask again.
        first = airflow_server.wait_until(lambda: _log_or_empty(airflow_server, "nr_sched_clear_sync", run_id),
                                          lambda log: "task cleared" in log or "task killed" in log, 60,
                                          "on_kill of the cleared try")
        assert "keeps running; the next try re-attaches to it" in first, first[-3000:]
        airflow_server.wait_until(lambda: _ti(airflow_server, "nr_sched_clear_sync", run_id, "job"),
                                  lambda ti: ti["try_number"] == 2 and ti["state"] == "running", 90,
                                  "the new try to run")
        second = airflow_server.wait_until(lambda: _log_or_empty(airflow_server, "nr_sched_clear_sync", run_id, 2),
                                           lambda log: "re-attaching to job" in log, 60, "the new try to re-attach")
        assert ": RUNNING" in second and executor.status(handle).state is JobState.RUNNING
    finally:
        release.touch()
    assert airflow_server.wait_for_run("nr_sched_clear_sync", run_id)["state"] == "success"
    assert len(_lines(marker)) == 1, "the cleared task ran its job again"
    xcom = airflow_server.api("GET", f"/api/v2/dags/nr_sched_clear_sync/dagRuns/{run_id}/taskInstances/job/"
                                     "xcomEntries/return_value?deserialize=true")["value"]
    assert xcom["result"] == 5 and xcom["key"] == key and xcom["handle"] == handle.to_dict()


def test_a_task_killed_while_deferring_cancels_its_job(airflow_server, job_home, tmp_path) -> None:
    # The task is marked failed after its job started but before the task handed its trigger to Airflow: no trigger
    # will ever run for it, so the task process itself must cancel the job.
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key

    marker = str(tmp_path / "runs")
    _dag(airflow_server, "nr_sched_kill_deferring", """
        with DAG("nr_sched_kill_deferring", schedule=None, start_date=START) as dag:
            NemorunOperator(task_id="job", task=run.Partial(_jobs.count_run, marker=C["marker"], value=1,
                                                            seconds=300),
                            executor=_jobs.SlowHandover(delay=30.0), deferrable=True, poll_interval=0.5)
    """, marker=marker)
    run_id = airflow_server.trigger("nr_sched_kill_deferring")["dag_run_id"]
    executor = run.LocalExecutor()
    key = job_key("nr_sched_kill_deferring", run_id, "job")
    handle = airflow_server.wait_until(lambda: executor.find(key, job_dir_for(key)), lambda h: h is not None, 90,
                                       "the job to be submitted", interval=0.2)
    assert _ti(airflow_server, "nr_sched_kill_deferring", run_id, "job")["state"] == "running", "not deferred yet"
    airflow_server.api("PATCH", f"/api/v2/dags/nr_sched_kill_deferring/dagRuns/{run_id}/taskInstances/job",
                       {"new_state": "failed"})
    status = airflow_server.wait_until(lambda: executor.status(handle), lambda st: st.is_terminal, 60,
                                       "the job of the task killed while deferring to end", interval=0.3)
    assert status.state is JobState.CANCELLED, status
    assert "task killed (failed): cancelling job" in _log(airflow_server, "nr_sched_kill_deferring", run_id, "job")
    assert _ti(airflow_server, "nr_sched_kill_deferring", run_id, "job")["state"] == "failed"
    assert len(_lines(marker)) == 1
