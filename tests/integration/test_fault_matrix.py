"""The exactly-once fault matrix of the launcher (issue 11 item 7): ``exp.run`` in a process killed with SIGKILL.

For each backend (Local, Docker, Slurm) and each kill point of :data:`tests.integration._faults.KILL_POINTS` (before
submit, just after the backend accepted the job, while following, after the job ended), a launcher process runs a
one-task experiment whose executor kills that process at that point. ``nemorun experiment resume ID`` then finishes
the experiment; the job must have run exactly once (its marker file has one line), the result must be the job's
value, and nothing of the job may be left running on the backend. Cancelling with ``nemorun experiment cancel ID``,
while a launcher follows the job, must end the job on the backend.

The four cells of one backend run at once (each mostly waits on its processes), once per module; the tests report
them one by one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from tests.integration import _fault_cells as cells
from nemorun_core.experiment.scheduler import task_key
from tests.integration._faults import KILL_POINTS

pytestmark = [pytest.mark.local]

LAUNCHER = textwrap.dedent("""
    import json, sys

    import nemorun_core as run
    from tests.integration import _fault_cells as cells
    from tests.integration._faults import count_run

    c = json.loads(sys.argv[1])
    ex = cells.executor(c["backend"], c["kill_at"], c["flag"], c["marks"])
    exp = run.Experiment("fault-matrix", home=c["home"])
    exp.add(run.Partial(count_run, marker=c["marker"], value=c["value"], seconds=c["seconds"]), executor=ex,
            name="job")
    exp.run(quiet=True)
""")

BACKEND_MARKS = {"local": [pytest.mark.local], "docker": [pytest.mark.docker],
                 "slurm": [pytest.mark.slurm, pytest.mark.ssh]}


def _launch(cell: dict) -> subprocess.Popen:
    env = {**os.environ, "NEMORUN_HOME": cell["home"], "PYTHONPATH": cells.REPO}
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(cell)], cwd=cells.REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cli(home: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from nemorun_core.cli.app import main; main()", "--home", home,
                           *args], cwd=cells.REPO, env={**os.environ, "PYTHONPATH": cells.REPO},
                          capture_output=True, text=True, timeout=timeout)


def _cell(root: str, backend: str, point: str, value: int, seconds: float | None = None) -> dict:
    local = os.path.join(root, backend, point)
    marks = cells.marker_dir(backend, os.path.join(local, "marks"))
    return {"backend": backend, "kill_at": point, "flag": os.path.join(local, "flag"), "marks": marks,
            "marker": f"{marks}/runs", "home": os.path.join(local, "home"), "value": value,
            "seconds": cells.job_seconds(point) if seconds is None else seconds}


def _job(cell: dict):
    exp_id = run.Experiment.list(home=cell["home"])[-1]["id"]
    exp = run.Experiment.from_id(exp_id, home=cell["home"])
    return exp_id, exp


def _kill_and_resume(cell: dict) -> dict:
    """One cell: the launcher killed at its point, then resumed by the CLI; what the test checks."""
    launcher = _launch(cell)
    out, _ = launcher.communicate(timeout=180)
    fired = os.path.exists(cell["flag"])
    if launcher.returncode != -signal.SIGKILL or not fired:
        raise AssertionError(f"the launcher was not killed at {cell['kill_at']} (exit {launcher.returncode}, "
                             f"flag {'set' if fired else 'absent'}):\n{out[-3000:]}")
    exp_id, _ = _job(cell)
    resumed = _cli(cell["home"], "experiment", "resume", exp_id)
    exp = run.Experiment.from_id(exp_id, home=cell["home"])
    return {"resume": resumed, "exp": exp, "runs": cells.runs(cell["backend"], cell["marker"])}


def _found(cell: dict, exp: run.Experiment):
    """(executor, handle) of the experiment's job, found on the backend by its key (what a re-attach does)."""
    ex = cells.executor(cell["backend"], marks=cell["marks"])
    handle = ex.find(task_key(exp, "job"), exp.store.task_dir(exp.dir, "job"))
    assert handle is not None, f"no job with key {task_key(exp, 'job')} on {cell['backend']}"
    return ex, handle


@pytest.fixture(scope="module")
def matrix(request, tmp_path_factory):
    """``outcome(backend, point)``: the first call runs every selected cell of the module at once."""
    root = str(tmp_path_factory.mktemp("fault-matrix"))
    done: dict[tuple[str, str], tuple[dict, dict]] = {}

    def outcome(backend: str, point: str) -> tuple[dict, dict]:
        if not done:
            todo = {(b, p): _cell(root, b, p, value=10 + i) for b in cells.selected_backends(request)
                    for i, p in enumerate(KILL_POINTS)}
            results = cells.in_parallel(lambda c: _kill_and_resume(todo[c]), todo)
            done.update({c: (todo[c], results[c]) for c in todo})
        return done[backend, point]

    return outcome


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_killed_launcher_then_resume_runs_the_job_exactly_once(matrix, backend: str, point: str) -> None:
    cell, result = matrix(backend, point)
    result = cells.outcome(result)
    resumed, exp = result["resume"], result["exp"]
    # A job that ended while nobody watched leaves nothing to resume (refused, exit 1, saying so): the same outcome.
    assert resumed.returncode == 0 or "nothing to resume" in resumed.stderr, \
        (resumed.stdout[-2000:], resumed.stderr[-3000:])
    assert result["runs"] == 1, f"the job ran {result['runs']} times"
    assert exp.status(quiet=True)["job"]["state"] == "SUCCEEDED"
    assert exp.results() == {"job": cell["value"]}
    cells.assert_nothing_running(*_found(cell, exp))


@pytest.mark.parametrize("backend", [pytest.param(b, marks=BACKEND_MARKS[b]) for b in cells.BACKENDS])
def test_cancel_from_the_cli_reaches_a_followed_job(tmp_path, backend: str) -> None:
    cell = _cell(str(tmp_path), backend, "", value=1, seconds=120)
    launcher = _launch(cell)
    try:
        cells.until("the job to start", lambda: cells.runs(backend, cell["marker"]) == 1
                    or launcher.poll() is not None, 120)
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        exp_id, _ = _job(cell)
        cancelled = _cli(cell["home"], "experiment", "cancel", exp_id)
        assert cancelled.returncode == 0, cancelled.stderr[-3000:]
        out, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    exp = run.Experiment.from_id(exp_id, home=cell["home"])
    assert exp.status(quiet=True)["job"]["state"] == "CANCELLED", out[-3000:]
    cells.assert_cancelled(*_found(cell, exp))
    assert cells.runs(backend, cell["marker"]) == 1
