"""The exactly-once fault matrix of nemorun_prefect (issue 11 item 7), on a real ``prefect server``.

A served deployment (``tests/prefect/_fault_flows.py``, from its entrypoint, so every flow run is a process of its
own) runs one job per flow run. For each backend (Local, Docker, Slurm) and each kill point (before submit, just after
the backend accepted the job, while following, after the job ended) the executor SIGKILLs the flow-run process at
that point; once the Runner has seen the process die, the test sets the flow run back to Scheduled and the Runner
executes it again in a new process with the same flow run id. The flow run must complete with the job's value, the
job must have run exactly once (its marker has one line), and nothing of it may be left running on the backend.
Cancelling a flow run through the API (what the UI's button does) must end its job on the backend: the
flow's ``on_cancellation`` hook, run by the serving process.

The four cells of a backend run at once, once per module, through one serving process.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration import _fault_cells as cells
from tests.integration._faults import KILL_POINTS
from tests.prefect._serving import (
    Served,
    cancel_through_api,
    read_flow_run,
    recorded_job,
    wait_for_deployment,
    wait_state,
)

pytestmark = [pytest.mark.prefect]

BACKEND_MARKS = {"local": [pytest.mark.local], "docker": [pytest.mark.docker],
                 "slurm": [pytest.mark.slurm, pytest.mark.ssh]}
ENDED = ("CRASHED", "FAILED", "COMPLETED", "CANCELLED")


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):
    """One serving process of ``fault-cell/fault-matrix`` for the module, its NEMORUN_HOME, the deployment id."""
    from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    root = tmp_path_factory.mktemp("prefect-fault-matrix")
    home = str(root / "home")
    with temporary_settings(updates={PREFECT_API_URL: prefect_server,
                                     PREFECT_LOCAL_STORAGE_PATH: str(root / "results")}):
        proc = Served(["-m", "tests.prefect._fault_flows", "fault-matrix"], prefect_server, root,
                      {"NEMORUN_HOME": home})
        try:
            deployment = wait_for_deployment(proc, "fault-cell/fault-matrix")
            yield proc, home, deployment, str(root), prefect_server
        finally:
            from nemorun_prefect import cancel_flow_jobs

            runs = os.path.join(home, "prefect")
            old = os.environ.get("NEMORUN_HOME")
            os.environ["NEMORUN_HOME"] = home
            try:
                for run_dir in os.listdir(runs) if os.path.isdir(runs) else []:
                    cancel_flow_jobs(run_dir.removeprefix("prefect-"), timeout=5)
            finally:
                os.environ.pop("NEMORUN_HOME") if old is None else os.environ.__setitem__("NEMORUN_HOME", old)
            proc.kill(signal.SIGTERM, grace=20.0)


def _cell(root: str, backend: str, point: str, value: int, seconds: float | None = None) -> dict:
    local = os.path.join(root, "cells", backend, point or "cancel")
    marks = cells.marker_dir(backend, os.path.join(local, "marks"))
    return {"backend": backend, "kill_at": point, "flag": os.path.join(local, "flag"), "marks": marks,
            "marker": f"{marks}/runs", "value": value,
            "seconds": cells.job_seconds(point) if seconds is None else seconds}


def _kill_and_restart(served, cell: dict) -> dict:
    from prefect import get_client
    from prefect.states import Scheduled

    proc, home, deployment, _, _ = served
    flow_run_id = create_run_with(deployment, cell)
    first = wait_state(proc, flow_run_id, *ENDED, timeout=180)
    if not os.path.exists(cell["flag"]):
        raise AssertionError(f"the flow-run process was not killed at {cell['kill_at']}: it ended {first.state}")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Scheduled(message="restarted by the fault matrix"), force=True)
    second = wait_state(proc, flow_run_id, *ENDED[1:], timeout=180)
    return {"id": flow_run_id, "first": first.state, "flow_run": second,
            "runs": cells.runs(cell["backend"], cell["marker"])}


def _in_api(url: str, fn, *args):
    """``fn(*args)`` with this thread's Prefect client pointed at the test server (settings are per context)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        return fn(*args)


def create_run_with(deployment, cell: dict):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment, parameters={"cell": cell}).id


@pytest.fixture(scope="module")
def matrix(request, served):
    """``outcome(backend, point)``: the first call runs every selected cell of the module at once."""
    done: dict[tuple[str, str], tuple[dict, dict]] = {}

    def outcome(backend: str, point: str):
        if not done:
            todo = {(b, p): _cell(served[3], b, p, value=20 + i) for b in cells.selected_backends(request)
                    for i, p in enumerate(KILL_POINTS)}
            results = cells.in_parallel(lambda c: _in_api(served[4], _kill_and_restart, served, todo[c]), todo)
            done.update({c: (todo[c], results[c]) for c in todo})
        return done[backend, point]

    return outcome


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_killed_flow_run_process_then_restart_runs_the_job_exactly_once(served, matrix, backend: str,
                                                                         point: str) -> None:
    proc, home, _, _, _ = served
    cell, result = matrix(backend, point)
    result = cells.outcome(result)
    state = result["flow_run"].state
    assert state.is_completed(), (state, proc.log_tail())
    assert result["flow_run"].run_count >= 2, "the flow run was not executed again"
    assert result["runs"] == 1, f"the job ran {result['runs']} times"
    assert state.result() == cell["value"]
    cells.assert_nothing_running(*recorded_job(home, result["id"], "job"))


@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_cancelling_the_flow_run_through_the_api_ends_the_job(served, backend: str) -> None:
    proc, home, deployment, root, _ = served
    cell = _cell(root, backend, "", value=1, seconds=120)
    flow_run_id = create_run_with(deployment, cell)
    cells.until("the job to start", lambda: cells.runs(backend, cell["marker"]) == 1
                or read_flow_run(flow_run_id).state.is_final(), 120)
    cancel_through_api(flow_run_id)
    flow_run = wait_state(proc, flow_run_id, *ENDED)
    assert flow_run.state.is_cancelled(), (flow_run.state, proc.log_tail())
    cells.assert_cancelled(*recorded_job(home, flow_run_id, "job"))
    assert cells.runs(backend, cell["marker"]) == 1
