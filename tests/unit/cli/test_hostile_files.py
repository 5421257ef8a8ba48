"""Hostile config files through the real command line (a script calling ``run.cli.main``, run as a subprocess).

Issue 10, items 2 and 3: ``--yaml FILE``, ``arg=@FILE`` and ``--factory`` read files that used to call arbitrary
functions or unpickle arbitrary bytes while loading, even with ``--dryrun``, and an alias bomb hung the loader.
Every case here checks that the file the attack would create does not exist afterwards.
"""

from __future__ import annotations

import base64
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]

SCRIPT = '''
import sys
import nemorun_core as run
from tests.unit.cli._targets import train_model


@run.cli.entrypoint
def local_task(x: int = 1, anything=None):
    print("RESULT", x, type(anything).__name__)
    return x


if __name__ == "__main__":
    target = {"train": train_model, "local": local_task}[sys.argv.pop(1)]
    run.cli.main(target)
'''
BASE = ["data_path=/d", "output_dir=/o"]
TRAIN = "tests.unit.cli._targets:train_model"


class _Touch:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> Any:
        return os.system, (f"touch {self.path}",)


class Cli:
    """Writes files into one directory and runs the script there; ``pwned`` is what an attack would create."""

    def __init__(self, tmp_path: pathlib.Path):
        self.dir = tmp_path
        self.pwned = tmp_path / "pwned"
        (tmp_path / "task.py").write_text(textwrap.dedent(SCRIPT))

    def file(self, name: str, data: Any) -> str:
        (self.dir / name).write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return name

    def call(self, pwned: str = "touch") -> dict:
        return {"_target_": "os:system", "_instance_": True, "_args_": [f"{pwned} {self.pwned}"]}

    def plain_call(self) -> dict:
        return {"_target_": "os:system", "_args_": [f"touch {self.pwned}"]}

    def pickle(self) -> dict:
        return {"_pickle_": base64.b64encode(pickle.dumps(_Touch(str(self.pwned)))).decode("ascii")}

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        """Run the script to its end; the result also carries ``seconds``."""
        env = {k: v for k, v in os.environ.items() if k != "NEMORUN_DEBUG"}
        env.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   NEMORUN_HOME=str(self.dir / "home"))
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "task.py", *argv], cwd=self.dir, env=env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=180)  # generous: a loaded 2-core machine
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the CLI did not finish in 180 s: {argv}\n{err[-2000:]}")
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        return result

    def measured(self, *argv: str) -> tuple[int, str, float, float]:
        """``(exit status, stderr, seconds, peak RSS in MB)`` of one run: ``wait4`` gives that one child's peak."""
        env = {k: v for k, v in os.environ.items() if k != "NEMORUN_DEBUG"}
        env.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   NEMORUN_HOME=str(self.dir / "home"))
        err_path = self.dir / "stderr.txt"
        started = time.monotonic()
        with open(err_path, "w") as err:
            proc = subprocess.Popen([sys.executable, "task.py", *argv], cwd=self.dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            deadline = started + 180
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"the CLI did not finish in 180 s: {argv}")
                time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, err_path.read_text(), time.monotonic() - started, usage.ru_maxrss / 1024


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path)


def _refused(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr, res.stderr
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr


# -- item 2: payload markers in files the user passes -------------------------------------------------------------
@pytest.mark.parametrize("dryrun", [[], ["--dryrun"]], ids=["run", "dryrun"])
def test_yaml_base_config_cannot_call_or_unpickle(cli, dryrun):
    cli.file("call.yaml", cli.call())
    cli.file("nested_call.yaml", {"_target_": TRAIN, "_partial_": True, "model": cli.call(), "data_path": "/d",
                                  "output_dir": "/o"})
    cli.file("pickle.yaml", {"_target_": TRAIN, "_partial_": True, "model": cli.pickle(), "data_path": "/d",
                             "output_dir": "/o"})
    cli.file("plain_nested.yaml", {"_target_": TRAIN, "_partial_": True, "model": cli.plain_call(),
                                   "data_path": "/d", "output_dir": "/o"})
    _refused(cli.run("train", "--yaml", "call.yaml", *dryrun), "call.yaml", "_instance_: true marks a dataclass value",
             "'os:system' is not a dataclass")
    _refused(cli.run("train", "--yaml", "nested_call.yaml", *dryrun), "model: _instance_: true")
    _refused(cli.run("train", "--yaml", "pickle.yaml", *dryrun), "model: _pickle_ is refused in a file you load")
    _refused(cli.run("train", "--factory", "@pickle.yaml", *dryrun), "_pickle_ is refused")
    # Without _instance_ a target is a configured call; in a slot typed ModelConfig it must visibly build one.
    _refused(cli.run("train", "--yaml", "plain_nested.yaml", *dryrun),
             "model: system does not say what it builds, and this parameter takes ModelConfig")
    assert not cli.pwned.exists()


@pytest.mark.parametrize("dryrun", [[], ["--dryrun"]], ids=["run", "dryrun"])
def test_arg_at_file_cannot_call_or_unpickle(cli, dryrun):
    cli.file("call.yaml", cli.call())
    cli.file("pickle.yaml", cli.pickle())
    cli.file("plain.yaml", cli.plain_call())
    _refused(cli.run("train", "model=@call.yaml", *BASE, *dryrun), "model: cannot load 'call.yaml'",
             "not a dataclass")
    _refused(cli.run("local", "anything=@call.yaml", *dryrun), "not a dataclass")
    _refused(cli.run("train", "model=@pickle.yaml", *BASE, *dryrun), "_pickle_ is refused")
    _refused(cli.run("local", "anything=@pickle.yaml", *dryrun), "_pickle_ is refused")
    _refused(cli.run("train", "model=@plain.yaml", *BASE, *dryrun), "system does not say what it builds")
    assert not cli.pwned.exists()


def test_dryrun_shows_a_loaded_call_unbuilt(cli):
    cli.file("plain.yaml", cli.plain_call())
    res = cli.run("local", "anything=@plain.yaml", "--dryrun")
    assert res.returncode == 0, res.stderr
    assert "_target_: posix:system" in res.stdout and "would call local_task" in res.stdout
    assert "RESULT" not in res.stdout and not cli.pwned.exists()


def test_an_executor_from_a_file_is_checked_before_it_is_built(cli):
    cli.file("call.yaml", cli.plain_call())
    cli.file("popen.yaml", {"_target_": "subprocess:Popen", "_args_": [["touch", str(cli.pwned)]]})
    cli.file("bad_launcher.yaml", {"_target_": "nemorun_core.executors.local:LocalExecutor", "_instance_": True,
                                   "launcher": {"_target_": "subprocess:Popen",
                                                "_args_": [["touch", str(cli.pwned)]]}})
    cli.file("local.yaml", {"_target_": "nemorun_core.executors.local:LocalExecutor", "_instance_": True})
    _refused(cli.run("local", "executor=@call.yaml", "--dryrun"), "executor: call.yaml: system does not say")
    _refused(cli.run("local", "--factory", "executor=@popen.yaml", "--dryrun"),
             "a Config of Popen does not build Optional[Executor]")
    _refused(cli.run("local", "executor=@bad_launcher.yaml", "--dryrun"),
             "executor.launcher configures subprocess:Popen, which is not a launcher class",
             "nemorun_core.launchers.torchrun:Torchrun")
    _refused(cli.run("local", "--executor", "slurm", "executor.tunnel=@popen.yaml", "--dryrun"),
             "executor.tunnel configures subprocess:Popen, which is not a tunnel class")
    assert not cli.pwned.exists()
    ok = cli.run("local", "executor=@local.yaml", "x=5", "--dryrun")  # nemorun's own classes still build
    assert ok.returncode == 0 and "nemorun_core.runner" in ok.stdout, ok.stderr


# -- item 3: an alias bomb ----------------------------------------------------------------------------------------
def _alias_bomb() -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("how", ["--yaml", "arg=@file"])
def test_an_alias_bomb_fails_fast_in_bounded_memory(cli, how):
    cli.file("bomb.yaml", _alias_bomb())
    argv = ["--yaml", "bomb.yaml"] if how == "--yaml" else ["anything=@bomb.yaml"]
    code, stderr, seconds, peak_mb = cli.measured("local", *argv)
    assert code == 2 and "bomb.yaml" in stderr and "expands to more than 2,000,000 values" in stderr, stderr
    assert "Traceback" not in stderr
    # Was past 40 s and 770 MB. The bounds are generous for a loaded machine; the check itself takes milliseconds.
    assert seconds < 60 and peak_mb < 400, (seconds, peak_mb)


def test_normal_yaml_with_aliases_still_loads_through_the_cli(cli):
    cli.file("aliases.yaml", textwrap.dedent(f"""\
        _target_: {TRAIN}
        _partial_: true
        model: {{_target_: tests.unit.cli._targets:ModelConfig, hidden_size: &h 64, num_layers: *h}}
        training: {{_target_: tests.unit.cli._targets:TrainingConfig}}
        data_path: &p /data/x
        output_dir: *p
        """))
    res = cli.run("train", "--yaml", "aliases.yaml", "--to-yaml", "-")
    assert res.returncode == 0, res.stderr
    assert "hidden_size: 64\n  num_layers: 64" in res.stdout and "output_dir: /data/x" in res.stdout
