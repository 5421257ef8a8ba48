"""Python jobs started through the local fork server behave exactly like launch.sh jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from nemorun_core.executors import forkserver
from tests.integration import _tasks

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _supervisor_parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("fork_server", [True, False])
def test_both_paths_give_the_same_result_ranks_and_env(home, tmp_path, fork_server):
    ex = run.LocalExecutor(fork_server=fork_server, ntasks_per_node=2, env_vars={"NR_X": "x"},
                           working_dir=str(tmp_path))
    out = run.run(run.Partial(_tasks.echo_env, names=["RANK", "WORLD_SIZE", "NR_X"]), executor=ex)
    assert out == {"RANK": "0", "WORLD_SIZE": "2", "NR_X": "x"}
    assert run.run(run.Partial(_tasks.where), executor=run.LocalExecutor(fork_server=fork_server,
                                                                         working_dir=str(tmp_path)))["cwd"] == str(tmp_path)


def test_python_jobs_use_the_fork_server_unless_told_not_to(home):
    exp = run.Experiment("which")
    exp.add(run.Partial(_tasks.sleep_forever, child=False), name="forked")
    exp.add(run.Partial(_tasks.sleep_forever, child=False), executor=run.LocalExecutor(fork_server=False),
            name="shell")
    exp.run(detach=True, quiet=True)
    try:
        server = forkserver.server_for(sys.executable)._proc
        assert _supervisor_parent(int(exp._tasks["forked"].handle.job_id)) == server.pid
        assert _supervisor_parent(int(exp._tasks["shell"].handle.job_id)) == os.getpid()
    finally:
        exp.cancel()
    statuses = run.Experiment.from_id(exp.id).wait(timeout=30)
    assert {s.state for s in statuses.values()} == {JobState.CANCELLED}


def test_forked_job_outlives_its_submitting_process(home, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(textwrap.dedent("""
        import nemorun_core as run
        from tests.integration import _tasks
        exp = run.Experiment("orphan-fork")
        exp.add(run.Partial(_tasks.sleep_and_record, seconds=1.0, marker_dir=%r, label="late"), name="late")
        exp.run(detach=True, quiet=True)
        print(exp.id)
    """ % str(tmp_path)))
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    exp = run.Experiment.from_id(proc.stdout.strip())
    assert exp.wait(timeout=30)["late"].state is JobState.SUCCEEDED
    assert exp.results() == {"late": "late"} and (tmp_path / "late.span").exists()


def test_a_killed_fork_server_is_replaced(home):
    server = forkserver.server_for(sys.executable)
    assert run.run(run.Partial(_tasks.add, a=1)) == 2
    old = server._proc
    old.kill()
    old.wait()
    assert run.run(run.Partial(_tasks.add, a=2)) == 3
    assert server._proc is not old and server._proc.poll() is None


def test_killed_forked_supervisor_is_failed_not_running(home):
    exp = run.Experiment("killed-fork")
    exp.add(run.Partial(_tasks.sleep_forever, child=False), name="victim")
    exp.run(detach=True, quiet=True)
    os.killpg(int(exp._tasks["victim"].handle.extra("pgid")), signal.SIGKILL)
    status = run.Experiment.from_id(exp.id).wait(timeout=90)["victim"]
    assert status.state is JobState.FAILED and "without recording an exit status" in status.message


def test_pythonpath_in_env_vars_reaches_forked_jobs(home, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "extra_mod_for_fork.py").write_text("VALUE = 'from extra'\n")
    ex = run.LocalExecutor(env_vars={"PYTHONPATH": str(lib)})
    result = run.run(run.Partial(_tasks.import_value, module="extra_mod_for_fork"), executor=ex)
    assert result == "from extra"
