"""The exactly-once fault matrix of nemorun_airflow (issue 11 item 7), under a real Airflow deployment.

One DAG per backend (Local, Docker, Slurm) holds one synchronous ``NemorunOperator`` task per kill point (before
submit, just after the backend accepted the job, while following, after the job ended), each with one retry and no
retry delay. The task's executor SIGKILLs the Airflow task process (the worker's child that runs ``execute``) at its
point; the supervisor reports the try failed, the scheduler starts the next try in a new process, and that try must
re-attach: the task succeeds on try 2 with the job's value in XCom, the job ran exactly once (its marker has one
line), and nothing of it is left running on the backend. Marking a running task failed through the REST API (a
user's action) must end its job on the backend: the supervisor kills the task, whose ``on_kill`` cancels the job.

Deferrable tasks get the two kill points that happen in the task process (before submit, after accept; their
following is the triggerer's). The deployment is the session's ``airflow_server`` (tests/airflow/_server.py); the
DAGs of all backends run at once (the deployment runs 4 tasks at a time).
"""

from __future__ import annotations

import os
import textwrap
import uuid

import pytest

from tests.airflow import _dagrun
from tests.integration import _fault_cells as cells
from tests.integration._faults import KILL_POINTS

pytestmark = [pytest.mark.airflow]

BACKEND_MARKS = {"local": [pytest.mark.local], "docker": [pytest.mark.docker],
                 "slurm": [pytest.mark.slurm, pytest.mark.ssh]}
HEADER = _dagrun.HEADER + textwrap.dedent("""
    from tests.integration import _fault_cells as cells
    from tests.integration._faults import count_run
""")

DAG = """
with DAG(C["dag_id"], schedule=None, start_date=START,
         default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=0)}) as dag:
    for task_id, cell in C["cells"].items():
        NemorunOperator(
            task_id=task_id,
            task=run.Partial(count_run, marker=cell["marker"], value=cell["value"], seconds=cell["seconds"]),
            executor=cells.executor(cell["backend"], cell["kill_at"], cell["flag"], cell["marks"]),
            deferrable=cell.get("deferrable", False), poll_interval=0.5)
"""
#: Where a deferrable task's own process may be killed: following and seeing the end happen in the triggerer.
DEFERRED_POINTS = ("before_submit", "after_accept")
DEFERRED_SECONDS = 20.0


def _cell(root: str, backend: str, point: str, value: int, seconds: float | None = None) -> dict:
    local = os.path.join(root, backend, point or "cancel")
    marks = cells.marker_dir(backend, os.path.join(local, "marks"))
    return {"backend": backend, "kill_at": point, "flag": os.path.join(local, "flag"), "marks": marks,
            "marker": f"{marks}/runs", "value": value,
            "seconds": cells.job_seconds(point) if seconds is None else seconds}


def _dag(server, dag_id: str, todo: dict) -> None:
    server.write_dag(f"{dag_id}.py", f"C = {dict(dag_id=dag_id, cells=todo)!r}\n" + HEADER + DAG)
    server.wait_for_dag(dag_id)


def _ti(server, dag_id: str, run_id: str, task_id: str) -> dict:
    return server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _xcom(server, dag_id: str, run_id: str, task_id: str):
    return server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                             "return_value?deserialize=true")["value"]


def _log(server, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:

    content = server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
                                f"{try_number}?full_content=true")["content"]
    return "\n".join(f"{e.get('event', '')} {e.get('error_detail', '')}" if isinstance(e, dict) else str(e)
                     for e in content)


@pytest.fixture(scope="module")
def matrix(request, airflow_server, tmp_path_factory):
    """``outcome(backend, point)``: the first call runs the DAG of every selected backend, all at once."""
    root = str(tmp_path_factory.mktemp("airflow-fault-matrix"))
    done: dict[str, tuple] = {}

    def outcome(backend: str, point: str):
        if not done:
            runs = {}
            for b in cells.selected_backends(request):
                todo = {p: _cell(root, b, p, value=30 + i) for i, p in enumerate(KILL_POINTS)}
                # Deferred jobs run longer: a trigger that fires before the scheduler has processed the deferring
                # process's exit makes Airflow fail the task ("finished with state success, but the task
                # instance's state attribute is queued"), an Airflow scheduler race; on a loaded 2-core machine the
                # scheduler was seen processing that exit 6.5 s late.
                todo.update({f"{p}_deferred": {**_cell(root, b, f"{p}_deferred", value=40 + i,
                                                       seconds=DEFERRED_SECONDS), "kill_at": p, "deferrable": True}
                             for i, p in enumerate(DEFERRED_POINTS)})
                dag_id = f"nr_fault_{b}"
                _dag(airflow_server, dag_id, todo)
                runs[b] = (dag_id, todo)
            for b, (dag_id, todo) in runs.items():
                # A run id of its own: the job keys (and so the Docker labels, the Slurm job names) of another
                # session's DAG run must not be found by this one's re-attach.
                run_id = airflow_server.trigger(dag_id, run_id=f"matrix-{uuid.uuid4().hex[:8]}")["dag_run_id"]
                done[b] = (dag_id, run_id, todo)
            for dag_id, run_id, _ in done.values():
                airflow_server.wait_for_run(dag_id, run_id, timeout=300)
        dag_id, run_id, todo = done[backend]
        return dag_id, run_id, todo[point]

    return outcome


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_killed_task_process_then_next_try_runs_the_job_exactly_once(airflow_server, matrix, backend: str,
                                                                      point: str) -> None:
    _check_cell(airflow_server, backend, point, *matrix(backend, point))


@pytest.mark.parametrize("point", DEFERRED_POINTS)
@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_killed_deferrable_task_process_then_next_try_runs_the_job_exactly_once(airflow_server, matrix,
                                                                                 backend: str, point: str) -> None:
    # The next try defers again to follow the job it found; the triggerer follows it to its end.
    _check_cell(airflow_server, backend, f"{point}_deferred", *matrix(backend, f"{point}_deferred"))


def _check_cell(airflow_server, backend: str, point: str, dag_id: str, run_id: str, cell: dict) -> None:
    from nemorun_core.executors.base import JobHandle

    ti = _ti(airflow_server, dag_id, run_id, point)
    if not os.path.exists(cell["flag"]):
        pytest.fail(f"the task process was not killed at {point} (task {ti['state']}); its log:\n"
                    f"{_log(airflow_server, dag_id, run_id, point)[-4000:]}")
    if ti["state"] != "success":
        pytest.fail(f"task {point} ended {ti['state']} on try {ti['try_number']}; its log:\n"
                    f"{_log(airflow_server, dag_id, run_id, point, ti['try_number'])[-6000:]}")
    assert ti["try_number"] == 2, "the killed try was not followed by a second one"
    assert cells.runs(backend, cell["marker"]) == 1, f"the job ran {cells.runs(backend, cell['marker'])} times"
    summary = _xcom(airflow_server, dag_id, run_id, point)
    assert summary["state"] == "SUCCEEDED" and summary["result"] == cell["value"], summary
    cells.assert_nothing_running(cells.executor(backend, marks=cell["marks"]),
                                 JobHandle.from_dict(summary["handle"]))


@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_marking_the_running_task_failed_ends_its_job(airflow_server, tmp_path, monkeypatch, backend: str) -> None:
    from nemorun_airflow.operators import job_dir_for, job_key

    monkeypatch.setenv("NEMORUN_HOME", airflow_server.env["NEMORUN_HOME"])  # where the workers' job dirs are
    cell = _cell(str(tmp_path), backend, "", value=1, seconds=120)
    dag_id = f"nr_fault_cancel_{backend}"
    _dag(airflow_server, dag_id, {"long": cell})
    run_id = airflow_server.trigger(dag_id, run_id=f"cancel-{uuid.uuid4().hex[:8]}")["dag_run_id"]
    cells.until("the job to start", lambda: cells.runs(backend, cell["marker"]) == 1, 180)
    ex = cells.executor(backend, marks=cell["marks"])
    key = job_key(dag_id, run_id, "long")
    handle = cells.until(f"job {key} to be found", lambda: ex.find(key, job_dir_for(key)), 30)
    airflow_server.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/long", {"new_state": "failed"})
    cells.assert_cancelled(ex, handle, timeout=90)
    assert cells.runs(backend, cell["marker"]) == 1


def test_clearing_a_running_synchronous_task_reattaches_to_its_job(airflow_server, tmp_path, monkeypatch) -> None:
    # Clearing a task that follows its job in its own process (deferrable=False) kills that process (SIGTERM); the
    # next try must find the same job, not leave it to be cancelled and submit a second one.
    from nemorun_airflow.operators import job_dir_for, job_key

    monkeypatch.setenv("NEMORUN_HOME", airflow_server.env["NEMORUN_HOME"])
    cell = _cell(str(tmp_path), "local", "", value=5, seconds=8)
    dag_id = "nr_fault_clear_sync"
    _dag(airflow_server, dag_id, {"sync": cell})
    run_id = airflow_server.trigger(dag_id, run_id=f"clear-{uuid.uuid4().hex[:8]}")["dag_run_id"]
    cells.until("the job to start", lambda: cells.runs("local", cell["marker"]) == 1, 180)
    cleared = airflow_server.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", {
        "dag_run_id": run_id, "task_ids": ["sync"], "dry_run": False, "only_failed": False,
        "reset_dag_runs": True})
    assert [ti["task_id"] for ti in cleared["task_instances"]] == ["sync"], cleared
    assert airflow_server.wait_for_run(dag_id, run_id, timeout=180)["state"] == "success"
    key = job_key(dag_id, run_id, "sync")
    ex = cells.executor("local")
    handle = ex.find(key, job_dir_for(key))
    assert handle is not None and ex.status(handle).state.value == "SUCCEEDED", "the first job did not run to its end"
    assert cells.runs("local", cell["marker"]) == 1, "the cleared task's next try ran its job a second time"
    assert _xcom(airflow_server, dag_id, run_id, "sync")["result"] == 5
