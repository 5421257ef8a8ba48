"""A launcher killed with ``kill -9`` mid-experiment, then ``resume``: real processes, the real CLI (issue 10 item 8).

Each test starts a 3-task chain a -> b -> c (b and c take the previous task's output) in a separate launcher
process, kills that process (or its detached driver) with SIGKILL while ``a`` runs, checks that the experiment is
reported INTERRUPTED rather than RUNNING, resumes it, and proves with marker files that each task ran exactly once
and that the references were resolved from the succeeded tasks' results.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import ExperimentError
from nemorun_core.experiment.driver import INTERRUPTED, read_launcher
from tests.integration import _tasks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
A_SECONDS = 8  # long enough to kill the launcher while `a` runs, even on a loaded machine

LAUNCHER = textwrap.dedent("""
    import sys

    import nemorun_core as run
    from tests.integration.test_resume import step

    home, markers, detach = sys.argv[1], sys.argv[2], sys.argv[3] == "detach"
    exp = run.Experiment("chain", home=home)
    a = exp.add(step, marker=f"{markers}/a", value=1, seconds=float(sys.argv[4]), name="a")
    b = exp.add(step, marker=f"{markers}/b", value=a.output, add=10, name="b")
    exp.add(step, marker=f"{markers}/c", value=b.output, add=100, name="c")
    exp.run(detach=detach, quiet=True)
    print("launcher done", flush=True)
""")


def step(marker: str, value: int, add: int = 0, seconds: float = 0.0) -> int:
    """Count one run in ``marker`` (one line per run), optionally sleep, return ``value + add``."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return value + add


def _runs(path: str) -> int:
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def _poll(condition, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _start_launcher(home: str, markers: str, mode: str, seconds: float = A_SECONDS) -> subprocess.Popen:
    script = os.path.join(markers, "launch.py")
    with open(script, "w") as f:
        f.write(LAUNCHER)
    env = {**os.environ, "NEMORUN_HOME": home, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, script, home, markers, mode, str(seconds)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _experiment_id(home: str) -> str:
    entries = _poll(lambda: run.Experiment.list(home=home), "the experiment to appear in the store")
    return entries[-1]["id"]


def _cli(home: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from nemorun_core.cli.app import main; main()", "--home", home,
                           *args], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
                          timeout=timeout)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _assert_interrupted(home: str, exp_id: str) -> None:
    exp = run.Experiment.from_id(exp_id, home=home)
    report = exp.status(quiet=True)
    assert exp.state() == INTERRUPTED
    for name in ("b", "c"):
        assert report[name]["state"] == "PENDING"
        assert "never submitted" in report[name]["message"] and f"nemorun experiment resume {exp_id}" in \
            report[name]["message"]
    entry = next(e for e in run.Experiment.list(home=home) if e["id"] == exp_id)
    assert entry["state"] == INTERRUPTED and "resume" in entry["note"]

    status = _cli(home, "experiment", "status", exp_id)
    assert status.returncode == 1, status
    assert INTERRUPTED in status.stdout and f"nemorun experiment resume {exp_id}" in status.stderr
    listing = _cli(home, "experiment", "list", "--json")
    assert json.loads(listing.stdout)[0]["state"] == INTERRUPTED
    with pytest.raises(ExperimentError, match=f"it is {INTERRUPTED}"):
        exp.run()  # refuses, and says why and what to do
    with pytest.raises(ExperimentError, match=f"is {INTERRUPTED}: .*resume"):
        exp.wait(timeout=60)  # must not block for ever on tasks nobody will submit


def _assert_each_ran_once(home: str, exp_id: str, markers: str) -> None:
    exp = run.Experiment.from_id(exp_id, home=home)
    assert {n: row["state"] for n, row in exp.status(quiet=True).items()} == \
        {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "SUCCEEDED"}
    assert exp.results() == {"a": 1, "b": 11, "c": 111}
    assert [_runs(os.path.join(markers, n)) for n in "abc"] == [1, 1, 1]
    assert exp.state() == "SUCCEEDED"
    entry = next(e for e in run.Experiment.list(home=home) if e["id"] == exp_id)
    assert entry["state"] == "SUCCEEDED"
    with pytest.raises(ExperimentError, match=r"already ended \(SUCCEEDED\): nothing to resume"):
        exp.resume(quiet=True)
    again = _cli(home, "experiment", "resume", exp_id)
    assert again.returncode == 1 and "nothing to resume" in again.stderr


def test_killed_launcher_is_interrupted_then_resumed_by_the_cli(home, tmp_path):
    markers = str(tmp_path)
    launcher = _start_launcher(home, markers, "attached")
    try:
        exp_id = _experiment_id(home)
        _poll(lambda: _runs(os.path.join(markers, "a")) == 1, "task a to start")
        with pytest.raises(ExperimentError, match=rf"pid {launcher.pid} .*is still running"):
            run.Experiment.from_id(exp_id, home=home).resume(quiet=True)  # its launcher is alive: refused
    finally:
        _kill(launcher.pid)
        launcher.communicate(timeout=60)
    assert launcher.returncode == -signal.SIGKILL

    _assert_interrupted(home, exp_id)
    resumed = _cli(home, "experiment", "resume", exp_id)
    assert resumed.returncode == 0, resumed
    assert "SUCCEEDED" in resumed.stderr
    _assert_each_ran_once(home, exp_id, markers)


def test_killed_detached_driver_is_interrupted_then_resumed(home, tmp_path):
    markers = str(tmp_path)
    launcher = _start_launcher(home, markers, "detach")
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 0 and "launcher done" in out, out
    exp_id = _experiment_id(home)
    exp_dir = os.path.join(home, "experiments", exp_id)
    driver = _poll(lambda: read_launcher(exp_dir), "the driver's launcher record")
    assert driver.role == "driver" and driver.alive()
    _poll(lambda: _runs(os.path.join(markers, "a")) == 1, "task a to start")
    _kill(driver.pid)
    _poll(lambda: driver.alive() is False, "the killed driver to be gone")

    _assert_interrupted(home, exp_id)
    exp = run.Experiment.from_id(exp_id, home=home)
    exp.resume(quiet=True)
    assert exp.state() == "SUCCEEDED"
    assert read_launcher(exp_dir).ended  # the resuming process handed over cleanly
    _assert_each_ran_once(home, exp_id, markers)


def test_resume_detached_starts_a_driver_for_what_never_started(home, tmp_path):
    markers = str(tmp_path)
    launcher = _start_launcher(home, markers, "attached", seconds=2)
    try:
        exp_id = _experiment_id(home)
        _poll(lambda: _runs(os.path.join(markers, "a")) == 1, "task a to start")
    finally:
        _kill(launcher.pid)
        launcher.communicate(timeout=60)
    exp = run.Experiment.from_id(exp_id, home=home)
    exp.resume(detach=True, quiet=True)
    statuses = run.Experiment.from_id(exp_id, home=home).wait(timeout=180)
    assert all(s.state.value == "SUCCEEDED" for s in statuses.values()), statuses
    _assert_each_ran_once(home, exp_id, markers)


def test_cancel_never_signals_a_process_that_reused_the_drivers_pid(home):
    # The driver died long ago; its pid now belongs to an unrelated process (simulated: a live process with the
    # recorded pid but another start time). exp.cancel() must leave that process alone.
    from nemorun_core.experiment import persist

    exp = run.Experiment("reused-pid")
    exp.add(run.Partial(_tasks.add, a=1), name="a")
    exp.run(quiet=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp.store.write_json(os.path.join(exp.dir, "launcher.json"),
                             {"pid": bystander.pid, "start": "1", "host": socket.gethostname(), "role": "driver"})
        persist.cancel_driver(exp)
        time.sleep(0.5)
        assert bystander.poll() is None, "an unrelated process that reused the driver's pid was signalled"
    finally:
        bystander.kill()
        bystander.wait()
