"""A backend from another distribution works in run.run, experiments and the CLI without any edit to nemorun.

The backend is tests/fixtures/nemorun_echo_backend, installed into the test environments by scripts/setup_envs.sh
and registered through the ``nemorun.executors`` entry point as ``echo``: real supervised subprocesses, a state
file, its own handles. Nothing in nemorun names it; the CLI runs are the real ``nemorun`` console script and a real
entrypoint script in subprocesses.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import JobFailedError
from nemorun_core.executors.base import Capability, Job, JobHandle, JobState
from nemorun_core.executors.registry import get as backend
from tests.integration import _tasks
from tests.integration.conftest import store_files

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "tok_5e4d3c2b1a09f8e7d6c5"


def _echo(**kwargs):
    """The echo backend's executor, found as nemorun finds it: through the registry."""
    return backend("echo").load()(**kwargs)


def test_run_returns_the_result_and_streams_the_echo_log(home, capfd) -> None:
    executor = _echo(banner="from run.run", env_vars={"HF_TOKEN": SECRET, "MODE": "plain"})
    result = run.run(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), steps=2),
                     executor=executor, name="train")
    assert result == {"checkpoint": "/ckpt/h64", "hidden_size": 64}
    out = capfd.readouterr().out
    assert "[echo] from run.run: job train" in out and "step 1 loss 0.500" in out, out
    exp = run.Experiment.from_title("train")
    row = exp.status(quiet=True)["train"]
    assert row["executor"] == "echo" and row["state"] == "SUCCEEDED" and row["exit_code"] == 0
    assert [m["loss"] for m in exp.metrics("train")] == [1.0, 0.5]
    leaks = [p for p in store_files(home) if SECRET in open(p, errors="ignore").read()]
    assert leaks == [], "the echo job's secret reached the store"


def test_a_failing_task_and_the_time_limit_are_failures_naming_the_job(home) -> None:
    with pytest.raises(JobFailedError) as info:
        run.run(run.Partial(_tasks.fail, message="echo says no"), executor=_echo(), name="fails")
    assert "echo says no" in str(info.value) and "about to fail" in str(info.value)
    from nemorun_echo_backend import EchoLimits

    limited = _echo(limits=EchoLimits(time_limit_s=1), cancel_grace_s=0.5)
    started = time.monotonic()
    with pytest.raises(JobFailedError, match="time limit of 1 s"):
        run.run(run.Partial(_tasks.sleep_forever, child=False), executor=limited, name="slow")
    assert time.monotonic() - started < 30


def test_experiment_mixes_backends_resolves_references_and_reloads_elsewhere(home) -> None:
    with run.Experiment("mixed", executor=_echo(banner="default of the experiment")) as exp:
        train = exp.add(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=128), steps=1, name="train")
        exp.add(run.Partial(_tasks.evaluate, checkpoint=train.output.checkpoint, hidden_size=1), name="eval-echo")
        exp.add(run.Partial(_tasks.evaluate, checkpoint=f"{train.output.checkpoint}/best"), name="eval-local",
                executor=run.LocalExecutor())
    assert exp.results() == {"train": {"checkpoint": "/ckpt/h128", "hidden_size": 128},
                             "eval-echo": "evaluated /ckpt/h128 (1)", "eval-local": "evaluated /ckpt/h128/best (0)"}
    status = exp.status(quiet=True)
    assert {n: r["executor"] for n, r in status.items()} == {"train": "echo", "eval-echo": "echo",
                                                              "eval-local": "local"}
    assert "[echo] default of the experiment: job train" in exp.logs("train")
    # another process rebuilds the echo executor from the store (its class path) and asks the backend
    code = ("import json, nemorun_core as run\n"
            f"e = run.Experiment.from_id({exp.id!r})\n"
            "print(json.dumps({'results': e.results(), 'states': {n: r['state'] for n, r in "
            "e.status(quiet=True).items()}, 'log': e.logs('eval-echo')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["results"] == exp.results() and set(data["states"].values()) == {"SUCCEEDED"}
    assert "[echo] default of the experiment: job eval-echo" in data["log"]


def test_detached_job_is_cancelled_idempotently_and_found_again_by_key(home, tmp_path) -> None:
    exp = run.Experiment("cancelled")
    exp.add(run.Partial(_tasks.sleep_forever), name="sleeper", executor=_echo(cancel_grace_s=1))
    exp.run(detach=True, quiet=True)
    deadline = time.monotonic() + 30
    while exp.status(quiet=True)["sleeper"]["state"] != "RUNNING":
        assert time.monotonic() < deadline, exp.status(quiet=True)
        time.sleep(0.1)
    started = time.monotonic()
    exp.cancel("sleeper")
    exp.cancel("sleeper")
    assert time.monotonic() - started < 2, "cancel must not wait for the job to stop"
    statuses = run.Experiment.from_id(exp.id).wait(timeout=60)
    assert statuses["sleeper"].state is JobState.CANCELLED

    # the contract directly: submit is idempotent by key, a handle survives JSON into another process
    executor = _echo()
    assert executor.supports(Capability.FIND) and not executor.supports(Capability.STATUS_MANY)
    job = Job("direct", "scope/direct/0", ["python", "-c", "print('direct job ran')"], str(tmp_path / "job"))
    request = executor.dryrun(job)
    handle = executor.submit(job)
    assert executor.submit(job) == handle == executor.find(job.key, job.job_dir)
    assert (tmp_path / "job" / "echo_request.json").read_text() == request.text, "dryrun is what submit sent"
    code = ("import sys; from nemorun_core.executors.base import JobHandle, follow_log\n"
            "from nemorun_echo_backend import EchoExecutor\n"
            "status, _ = follow_log(EchoExecutor(), JobHandle.from_json(sys.argv[1]), print, poll=0.1)\n"
            "print(status.state.value)")
    out = subprocess.run([sys.executable, "-c", code, handle.to_json()], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["[echo] job direct ended: SUCCEEDED (exit status 0)", "SUCCEEDED"]
    assert "direct job ran" in out.stdout
    unknown = JobHandle.create("echo", "999999999", "scope/none/0", str(tmp_path / "never"))
    assert executor.status(unknown).state is JobState.UNKNOWN and list(executor.logs(unknown)) == []
    executor.cancel(unknown)  # nothing to cancel: no error


# -- the CLI ---------------------------------------------------------------------------------------------------
_SCRIPT = '''
import nemorun_core as run


@run.cli.entrypoint
def greet(name: str = "world", times: int = 1) -> str:
    """Say hello a few times."""
    for i in range(times):
        print(f"hello {name} {i}", flush=True)
    return f"greeted {name}"


if __name__ == "__main__":
    greet.main()
'''


def _cli(home: str, *argv: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([*argv], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, cwd=cwd,
                          env={**os.environ, "NEMORUN_HOME": home})


def test_cli_executor_name_alias_file_completion_and_the_nemorun_console_script(home, tmp_path) -> None:
    script = tmp_path / "greet.py"
    script.write_text(_SCRIPT)
    py = [sys.executable, str(script)]
    nemorun = [str(pathlib.Path(sys.executable).parent / "nemorun"), "--home", home]

    launched = _cli(home, *py, "--executor", "echo", "executor.banner=from the cli", "name=cli", "times=2",
                    "--name", "greet-cli", cwd=tmp_path)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "[echo] from the cli: job greet-cli" in launched.stdout and "hello cli 1" in launched.stdout

    listed = _cli(home, *nemorun, "experiment", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [e["title"] for e in json.loads(listed.stdout)] == ["greet-cli"]
    status = _cli(home, *nemorun, "experiment", "status", "greet-cli", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "echo" in status.stdout and "SUCCEEDED" in status.stdout, status.stdout
    logs = _cli(home, *nemorun, "experiment", "logs", "greet-cli", cwd=tmp_path)
    assert logs.returncode == 0 and "[echo] from the cli: job greet-cli" in logs.stdout, logs.stdout + logs.stderr
    rerun = _cli(home, *nemorun, "experiment", "rerun", "greet-cli", "--yes", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = _cli(home, *nemorun, "experiment", "list", "--json", cwd=tmp_path)
    assert len(json.loads(again.stdout)) == 2

    # by its alias, and from a file naming the third-party class and its settings dataclass
    dry = _cli(home, *py, "executor=echo-subprocess", "--dryrun", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert '"banner": "echo backend"' in dry.stdout and '"argv": [' in dry.stdout
    (tmp_path / "echo.yaml").write_text(textwrap.dedent("""\
        _target_: nemorun_echo_backend.executor:EchoExecutor
        banner: from a file
        limits:
          _target_: nemorun_echo_backend.executor:EchoLimits
          time_limit_s: 30
    """))
    from_file = _cli(home, *py, "executor=@echo.yaml", "--dryrun", cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    assert '"banner": "from a file"' in from_file.stdout and '"time_limit_s": 30' in from_file.stdout

    completed = _cli(home, *py, "--complete", "3", "python", "greet.py", "--executor", "", cwd=tmp_path)
    assert completed.stdout.split() == ["docker", "echo", "local", "none", "ray", "slurm"]
    unknown = _cli(home, *py, "--executor", "ecko", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unknown executor 'ecko' in --executor" in unknown.stderr and "did you mean 'echo'?" in unknown.stderr
    assert "echo (alias echo-subprocess) [from nemorun-echo-backend]" in unknown.stderr


def _echo_subclass():
    import dataclasses

    base = backend("echo").load()

    @dataclasses.dataclass(kw_only=True)
    class TeamEcho(base):
        """A team's own settings over the third-party backend (defined outside its package)."""

        team: str = "nlp"
        extra_settings: object = None

    return TeamEcho


def test_a_subclass_of_a_registered_backend_builds_with_that_backends_settings_dataclasses() -> None:
    from nemorun_core.cli.argv import UsageError
    from nemorun_core.cli.session import check_executor_tree
    from nemorun_echo_backend import EchoLimits

    team = _echo_subclass()
    assert backend("echo") is not None and team.backend == "echo"
    check_executor_tree(run.Config(team, limits=run.Config(EchoLimits, time_limit_s=5)))  # accepted
    with pytest.raises(UsageError, match=r"executor.extra_settings configures subprocess:Popen, which is not"):
        check_executor_tree(run.Config(team, extra_settings=run.Config(subprocess.Popen, args=["true"])))
