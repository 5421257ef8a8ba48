"""LocalExecutor and the runner on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError, JobFailedError
from nemorun_core.executors.base import Job, JobHandle, JobState
from tests.integration import _tasks

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}


def test_partial_and_config_return_their_values(home):
    assert run.run(run.Partial(_tasks.add, a=2, b=3), executor=run.LocalExecutor()) == 5
    assert run.run(run.Config(_tasks.add, a=40, b=2)) == 42
    # a non-JSON return value comes back through the pickle file
    value = run.run(run.Partial(_tasks.not_json))
    assert value == _tasks.ModelConfig(hidden_size=64, num_heads=8)


def test_env_vars_and_working_dir_reach_the_process(home, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    ex = run.LocalExecutor(env_vars={"NR_A": "1", "NR_B": "x y"}, working_dir=str(wd))
    assert run.run(run.Partial(_tasks.echo_env, names=["NR_A", "NR_B"]), executor=ex) == {"NR_A": "1", "NR_B": "x y"}
    info = run.run(run.Partial(_tasks.where), executor=ex)
    assert info["cwd"] == str(wd)
    assert info["pgid"] != os.getpgid(0), "each job runs in its own process group"


def test_script_file_and_inline(home, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text('echo "hello $1 $NR_X" > "$2"\n')
    out = tmp_path / "out.txt"
    run.run(run.Script(str(script), args=["world", str(out)], env={"NR_X": "!"}))
    assert out.read_text().strip() == "hello world !"
    out2 = tmp_path / "out2.txt"
    run.run(run.Script(inline=f"import sys; open({str(out2)!r}, 'w').write('py')", entrypoint="python"))
    assert out2.read_text() == "py"


def test_failure_names_job_exit_status_log_and_tail(home):
    with pytest.raises(JobFailedError) as info:
        run.run(run.Partial(_tasks.fail, message="disk on fire"), name="broken", tail_logs=False)
    err = info.value
    assert err.name == "broken" and err.state == "FAILED" and err.exit_code == 1
    assert err.log_path and os.path.exists(err.log_path)
    assert any("disk on fire" in line for line in err.log_tail)
    text = str(err)
    assert "broken" in text and "exit status 1" in text and err.log_path in text and "disk on fire" in text


def test_script_exit_status_is_reported(home):
    with pytest.raises(JobFailedError) as info:
        run.run(run.Script(inline="echo going down; exit 7"), name="seven", tail_logs=False)
    assert info.value.exit_code == 7
    assert "going down" in "\n".join(info.value.log_tail)


def test_several_processes_per_job_get_ranks(home, tmp_path):
    ex = run.LocalExecutor(ntasks_per_node=3)
    run.run(run.Script(inline=f'echo "$RANK/$WORLD_SIZE" > {tmp_path}/rank-$RANK'), executor=ex)
    assert sorted(p.read_text().strip() for p in tmp_path.glob("rank-*")) == ["0/3", "1/3", "2/3"]


def test_one_failing_rank_fails_the_job(home):
    ex = run.LocalExecutor(ntasks_per_node=2)
    with pytest.raises(JobFailedError) as info:
        run.run(run.Script(inline='[ "$RANK" = 1 ] && exit 3; exit 0'), executor=ex, tail_logs=False)
    assert info.value.exit_code == 3
    assert "[0, 3]" in str(info.value)


def _job(tmp_path, name="j", command=None):
    return Job(name, f"exp/{name}/0", command or ["sh", "-c", "sleep 30"], str(tmp_path / name))


def test_submit_is_idempotent_by_key(tmp_path):
    ex = run.LocalExecutor()
    job = _job(tmp_path, command=["sh", "-c", "echo once >> count; sleep 1"])
    job.cwd = str(tmp_path)
    first = ex.submit(job)
    second = ex.submit(job)
    assert first == second
    h = JobHandle.from_json(first.to_json())
    while not ex.status(h).is_terminal:
        ex.wait_any([h], 1.0)
    assert (tmp_path / "count").read_text() == "once\n"
    assert ex.status(h).state is JobState.SUCCEEDED


def test_cancel_from_another_process_stops_the_whole_group(home, tmp_path):
    marker = tmp_path / "pids"
    exp = run.Experiment("cancelme")
    exp.add(run.Partial(_tasks.sleep_forever, marker=str(marker)), name="sleeper")
    exp.run(detach=True, quiet=True)
    deadline = time.time() + 20
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    task_pid, child_pid = map(int, marker.read_text().split())
    code = f"import nemorun_core as run; run.Experiment.from_id({exp.id!r}).cancel()"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=60)
    statuses = run.Experiment.from_id(exp.id).wait(timeout=20)
    assert statuses["sleeper"].state is JobState.CANCELLED
    for pid in (task_pid, child_pid):
        assert not _running(pid), f"process {pid} survived the cancel"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_job_outlives_its_launcher_and_reports_real_outcome(home, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(textwrap.dedent(f"""
        import nemorun_core as run
        exp = run.Experiment("orphan")
        exp.add(run.Script(inline="sleep 1; exit 4"), name="slow")
        exp.run(detach=True, quiet=True)
        print(exp.id)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    exp_id = proc.stdout.strip()
    statuses = run.Experiment.from_id(exp_id).wait(timeout=30)
    assert statuses["slow"].state is JobState.FAILED and statuses["slow"].exit_code == 4


def test_killed_supervisor_is_failed_not_running_forever(home, tmp_path):
    exp = run.Experiment("killed")
    exp.add(run.Script(inline="sleep 300"), name="victim")
    exp.run(detach=True, quiet=True)
    handle = exp._tasks["victim"].handle
    os.killpg(int(handle.extra("pgid")), signal.SIGKILL)
    status = run.Experiment.from_id(exp.id).wait(timeout=20)["victim"]
    assert status.state is JobState.FAILED
    assert "without recording an exit status" in status.message


def test_main_module_functions_run(home, tmp_path):
    script = tmp_path / "mainfn.py"
    script.write_text(textwrap.dedent("""
        import dataclasses
        import nemorun_core as run

        @dataclasses.dataclass
        class Cfg:
            n: int = 2

        def square(cfg: Cfg) -> int:
            return cfg.n * cfg.n

        print("result", run.run(run.Partial(square, cfg=run.Config(Cfg, n=7)), tail_logs=False))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "result 49" in proc.stdout


def test_runner_records_status_and_result_atomically(tmp_path):
    from nemorun_core.config.serialize import encode

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spec = {"version": 1, "kind": "partial", "task": encode(run.Partial(_tasks.add, a=1, b=2), payload=True),
            "sys_path": [REPO]}
    (job_dir / "task.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "nemorun_core.runner", str(job_dir)], env=_env(), timeout=60)
    assert proc.returncode == 0
    assert json.loads((job_dir / "result.json").read_text()) == {"value": 3}
    status = json.loads((job_dir / "status.json").read_text())
    assert status["exit_code"] == 0 and status["finished_at"] >= status["started_at"]
    assert not [p for p in os.listdir(job_dir) if ".tmp." in p], "no temporary files left behind"


def test_runner_does_not_import_fiddle_or_backend_sdks(tmp_path):
    from nemorun_core.config.serialize import encode

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spec = {"version": 1, "kind": "partial", "task": encode(run.Partial(_tasks.add, a=1), payload=True),
            "sys_path": [REPO]}
    (job_dir / "task.json").write_text(json.dumps(spec))
    code = ("import sys, runpy; sys.argv=['runner', %r]\n"
            "try:\n    runpy.run_module('nemorun_core.runner', run_name='__main__')\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('fiddle','yaml','rich','typer','paramiko','docker','ray','kubernetes','sky') "
            "if m in sys.modules]\nprint('HEAVY', heavy)") % str(job_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_dryrun_shows_the_launch_script_without_secrets(home, tmp_path):
    ex = run.LocalExecutor(env_vars={"WANDB_API_KEY": "sk_live_abcdefghijklmnop1234", "MODE": "fast"},
                           ntasks_per_node=2)
    req = run.run(run.Partial(_tasks.add, a=1), executor=ex, dryrun=True)
    assert req.text.startswith("#!/bin/sh")
    assert "MODE=fast" in req.text and "WANDB_API_KEY=<secret>" in req.text
    assert "sk_live_abcdefghijklmnop1234" not in req.text
    assert "RANK=1" in req.text and "nemorun_core.runner" in req.text
    assert not os.path.exists(home) or not os.listdir(os.path.join(home, "experiments"))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"env_vars": {"1BAD": "x"}}, "env_vars"),
        ({"env_vars": {"OK": 3}}, "env_vars"),
        ({"env_vars": "A=1"}, "env_vars"),
        ({"ntasks_per_node": 0}, "ntasks_per_node"),
        ({"ntasks_per_node": "2"}, "ntasks_per_node"),
        ({"launcher": "torchrn"}, "launcher"),
        ({"cancel_grace_s": -1}, "cancel_grace_s"),
    ],
)
def test_bad_executor_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError) as info:
        run.LocalExecutor(**kwargs)
    assert field in str(info.value)


def test_missing_working_dir_fails_before_submission(home, tmp_path):
    ex = run.LocalExecutor(working_dir=str(tmp_path / "nope"))
    with pytest.raises(Exception) as info:
        run.run(run.Partial(_tasks.add, a=1), executor=ex, name="nowd")
    assert "nope" in str(info.value) and "does not exist" in str(info.value)


def test_logs_by_offset_and_follow(home):
    exp = run.Experiment("logs")
    exp.add(run.Script(inline="for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done"), name="printer")
    exp.run(detach=True, quiet=True)
    spec = exp._tasks["printer"]
    followed = list(spec.executor.logs(spec.handle, follow=True))
    assert followed == [f"line{i}" for i in range(1, 6)]
    assert list(spec.executor.logs(spec.handle, offset=3)) == ["line4", "line5"]


def test_an_executor_missing_a_contract_method_fails_when_created():
    class Half(run.Executor):
        backend = "half"

        def dryrun(self, job):
            return None

    with pytest.raises(TypeError, match="abstract"):
        Half()


@pytest.mark.parametrize("python_job", [True, False], ids=["fork-server", "script"])
def test_variables_held_for_tunnels_are_not_passed_to_jobs(tmp_path, monkeypatch, python_job) -> None:
    """A key an orchestrator put in the environment for a tunnel (secrets.hold_in_env) stays out of local jobs."""
    from nemorun_core.secrets import hold_in_env

    name = hold_in_env("block:test", "private_key", "-----BEGIN OPENSSH PRIVATE KEY----- x")
    monkeypatch.setenv(name, os.environ[name])  # removed again by monkeypatch at the end
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path))
    if python_job:
        seen = run.run(run.Partial(_tasks.env_names), executor=run.LocalExecutor(), tail_logs=False)
    else:
        out = tmp_path / "env.txt"
        run.run(run.Script(inline=f"env > {out}"), executor=run.LocalExecutor(), name="env", tail_logs=False)
        seen = [line.split("=", 1)[0] for line in out.read_text().splitlines()]
        assert "NEMORUN_JOB_KEY" in seen
    assert name not in seen


# -- the shell boundary (issue 10) ------------------------------------------------------------------------------------
HOSTILE_SECRET = "abc\ntouch {marker}\n$(touch {marker}) `touch {marker}` 'q' \"d\"\n\n"


@pytest.mark.parametrize("fork_server", [True, False], ids=["fork-server", "launch.sh"])
def test_secret_values_reach_the_job_byte_for_byte_and_run_nothing(home, tmp_path, fork_server):
    """Values with newlines, quotes and ``$(...)`` are data on both ways a local job starts; a ``run.Secret``
    under a neutral name is shown as a secret in launch.sh, never its value."""
    marker = tmp_path / "pwned"
    values = {"DB_PASSWORD": HOSTILE_SECRET.format(marker=marker), "MY_VALUE": run.Secret("neutral-value-1234\n")}
    ex = run.LocalExecutor(env_vars=values, fork_server=fork_server)
    exp = run.Experiment("local-secrets")
    exp.add(run.Partial(_tasks.echo_env, names=sorted(values)), executor=ex, name="env")
    exp.run(quiet=True)
    assert exp.result("env") == {k: str(v) for k, v in values.items()}
    assert not marker.exists()
    launch = open(os.path.join(exp._tasks["env"].handle.job_dir, "launch.sh")).read()
    assert "neutral-value-1234" not in launch and "MY_VALUE=<secret>" in launch


def test_launch_script_quotes_what_it_prints(tmp_path):
    """A working directory whose name holds shell is printed as data when it cannot be entered, and a job name
    with a newline cannot end the script's comment line."""
    from nemorun_core.executors.local import render_launch_script

    marker = tmp_path / "pwned"
    cwd = str(tmp_path / f"gone $(touch {marker}) `touch {marker}`")
    job = Job(f"j\ntouch {marker}", "exp/j/0", ["true"], str(tmp_path))
    script = tmp_path / "launch.sh"
    script.write_text(render_launch_script(job, ["true"], cwd, {"V": f"x\ntouch {marker}"}, 1, None, 1.0))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 127 and cwd in out.stderr
    assert not marker.exists()
    assert json.loads((tmp_path / "launcher.json").read_text()) == {"exit_codes": [127]}


def test_a_nul_in_a_task_env_is_refused_before_anything_starts(home, tmp_path):
    job = _job(tmp_path)
    job.env = {"API_TOKEN": "a\0b"}
    with pytest.raises(ConfigError) as info:
        run.LocalExecutor().submit(job)
    assert "API_TOKEN" in str(info.value) and "NUL" in str(info.value)
    assert not os.path.exists(os.path.join(job.job_dir, "launch.sh")), "nothing was started"
    with pytest.raises(JobFailedError, match="API_TOKEN"):
        run.run(run.Script(inline="true", env={"API_TOKEN": "a\0b"}), name="nul", tail_logs=False)


@pytest.mark.parametrize("python", ["", "python3 -u", "~/venv/bin/python", "/usr/bin/py\nthon", 3])
def test_a_python_that_cannot_start_is_refused(python):
    with pytest.raises(ConfigError, match="LocalExecutor.python"):
        run.LocalExecutor(python=python)


def test_a_cancel_right_after_submission_is_never_lost(tmp_path):
    """A cancel sent the moment a fork-server job is submitted, before its supervisor has started the task's
    process: the cancel must still reach it (it was once dropped, or only honoured by the KILL at the end of the
    grace). Jobs through launch.sh keep a narrower window (a TERM between a rank's fork and exec), ended by the
    KILL after the grace: not asserted here."""
    fork_server = True
    from nemorun_core.experiment.tasks import TaskSpec, make_job, normalize_task
    from tests.integration._faults import count_run

    ex = run.LocalExecutor(cancel_grace_s=60.0, fork_server=fork_server)
    for i in range(8):
        spec = TaskSpec("t", normalize_task(run.Partial(count_run, str(tmp_path / f"m{i}"), 1, 120), {}), ex, [])
        handle = ex.submit(make_job(spec, f"early-{i}/t/0", str(tmp_path / f"job{i}")))
        ex.cancel(handle)
        deadline = time.monotonic() + 30  # half the grace: only the cancel itself can end it in time
        while not ex.status(handle).is_terminal:
            assert time.monotonic() < deadline, f"try {i}: the cancel was lost ({ex.status(handle)})"
            time.sleep(0.05)
        assert ex.status(handle).state is JobState.CANCELLED, f"try {i}: {ex.status(handle)}"
