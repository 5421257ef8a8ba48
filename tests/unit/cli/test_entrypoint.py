"""``@run.cli.entrypoint``, ``@run.cli_command`` and ``run.cli.main``: in process and as real subprocesses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.cli.argv import UsageError
from nemorun_core.config import serialize
from nemorun_core.errors import ConfigError, OverrideError
from tests.unit.cli._targets import ModelConfig, TrainingConfig, failing, model_with_check, train, train_model

REPO = pathlib.Path(__file__).resolve().parents[3]
BASE = ["data_path=/d", "output_dir=/o"]

SCRIPT = '''
import sys
import nemorun_core as run
from tests.unit.cli._targets import train_model, train


@run.cli.entrypoint
def local_task(x: int = 1, fail: bool = False):
    """Print x, or fail."""
    if fail:
        raise RuntimeError("task exploded")
    print("RESULT", x)
    return x


if __name__ == "__main__":
    target = {"train": train_model, "local": local_task, "command": train}[sys.argv.pop(1)]
    run.cli.main(target)
'''


# -- in process ------------------------------------------------------------------------------------------------------
def test_spec_cli_example():
    out = run.cli.main(train_model, ["model.hidden_size=1024", "training.learning_rate=2e-4",
                                     "data_path=/path/to/data", "output_dir=/tmp/x"], exit=False)
    assert out == {"hidden_size": 1024, "learning_rate": 2e-4, "batch_size": 32, "data_path": "/path/to/data",
                   "output_dir": "/tmp/x", "seed": 42, "debug": False}
    out = train_model.main(["model.hidden_size*=2", "training.batch_size+=16", *BASE])
    assert (out["hidden_size"], out["batch_size"]) == (1024, 48)


def test_wrapper_is_the_function():
    assert train_model(ModelConfig(), TrainingConfig(), "/d", "/o")["hidden_size"] == 512
    assert train_model.__name__ == "train_model" and "comprehensive" in train_model.__doc__
    plain = train_model.__nemorun_wrapped__
    assert train_model.__wrapped__ is plain
    assert run.Partial(train_model).__fn_or_cls__ is plain  # configuring the wrapper configures the function
    assert train(epochs=1)["epochs"] == 1 and callable(train.main)


def test_entrypoint_with_options():
    @run.cli.entrypoint(namespace="llm", help="Short help.", require_confirmation=False)
    def task(x: int = 1):
        return x * 2

    assert task.__nemorun_cli__.namespace == "llm"
    assert task.main(["x=4"]) == 8


def test_cli_command_has_no_launch_options():
    assert train.main(["model_size=13b", "learning_rate=3e-4"]) == {
        "model_size": "13b", "learning_rate": 3e-4, "batch_size": 32, "epochs": 100}
    with pytest.raises(UsageError, match="launches nothing itself"):
        train.main(["--executor", "local"])


def test_plain_function_main():
    with pytest.raises(RuntimeError, match="boom 3"):
        run.cli.main(failing, ["x=3"])


def test_missing_required_lists_all_and_how_to_set():
    with pytest.raises(UsageError) as info:
        run.cli.main(train_model, [])
    assert "missing required arguments: data_path (str), output_dir (str)" in str(info.value)
    assert "data_path=VALUE output_dir=VALUE" in str(info.value)


def test_missing_nested_required():
    from tests.unit.cli._targets import everything

    with pytest.raises(UsageError, match=r"data.dataset_path \(str\)"):
        run.cli.main(everything, ["data.max_length=3"])


def test_build_error_is_a_config_error():
    with pytest.raises(ConfigError, match="model"):
        run.cli.main(model_with_check, ["model=@/nonexistent.yaml"])


def test_usage_errors():
    with pytest.raises(UsageError, match="did you mean '--dryrun'"):
        run.cli.main(train_model, ["--dryrn"])
    with pytest.raises(UsageError, match="needs a value"):
        run.cli.main(train_model, ["--to-yaml"])
    with pytest.raises(UsageError, match="takes no value"):
        run.cli.main(train_model, ["--dryrun=1"])
    with pytest.raises(UsageError, match="two base configs"):
        run.cli.main(train_model, ["--factory", "@a.yaml", "--yaml", "b.yaml"])
    with pytest.raises(OverrideError, match="expected int, got 'big'"):
        run.cli.main(train_model, ["model.hidden_size=big", *BASE])


def test_to_yaml_toml_json_round_trip(tmp_path, capsys):
    argv = ["model.hidden_size=1024", "training.epochs=3", *BASE]
    cfg = run.cli.main(train_model, ["--to-yaml", "-", *argv])
    assert serialize.from_yaml(capsys.readouterr().out) == cfg
    for fmt in ("yaml", "toml", "json"):
        dest = tmp_path / f"c.{fmt}"
        cfg = run.cli.main(train_model, [f"--to-{fmt}", str(dest), *argv])
        assert serialize.load_file(dest) == cfg
    # and a written file is a base for the next run
    out = run.cli.main(train_model, ["--yaml", str(tmp_path / "c.yaml"), "seed=1"])
    assert (out["hidden_size"], out["seed"]) == (1024, 1)
    out = run.cli.main(train_model, ["--factory", f"@{tmp_path / 'c.json'}", "model.hidden_size/=2"])
    assert out["hidden_size"] == 512


def test_plain_mapping_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {hidden_size: 64}\ndata_path: /b\noutput_dir: /bo\n")
    out = run.cli.main(train_model, ["--factory", f"@{tmp_path / 'base.yaml'}", "model.num_layers=2"])
    assert (out["hidden_size"], out["data_path"]) == (64, "/b")


def test_base_file_for_another_function(tmp_path):
    (tmp_path / "other.yaml").write_text(run.Partial(failing, x=2).to_yaml())
    with pytest.raises(UsageError, match="configures failing, not train_model"):
        run.cli.main(train_model, ["--factory", f"@{tmp_path / 'other.yaml'}"])


def test_dryrun_runs_nothing(capsys):
    calls = []

    @run.cli.entrypoint
    def task(x: int = 1):
        calls.append(x)

    cfg = task.main(["--dryrun", "x=5"])
    out = capsys.readouterr().out
    assert calls == [] and cfg.x == 5
    assert "dry run" in out and "x=5" in out and "would call task in this process" in out


def test_help_in_process(capsys):
    assert train_model.main(["--help"]) is None
    out = capsys.readouterr().out
    assert "Train a machine learning model" in out
    assert "model.hidden_size" in out and "width of every layer." in out


def test_executor_override_routes_to_launch(monkeypatch):
    """``--executor local`` and ``executor.*`` go to run.run; nothing runs in process."""
    import nemorun_core.experiment.launch as launch
    from nemorun_core.executors.local import LocalExecutor

    seen = {}

    def fake_run(task, executor=None, **kwargs):
        seen.update(task=task, executor=executor, **kwargs)
        return "launched"

    monkeypatch.setattr(launch, "run", fake_run)
    out = run.cli.main(train_model, ["--executor", "local", "executor.env_vars={'A': '1'}", "--name", "n1",
                                     "--detach", *BASE])
    assert out == "launched"
    assert isinstance(seen["executor"], LocalExecutor) and seen["executor"].env_vars == {"A": "1"}
    assert (seen["name"], seen["detach"]) == ("n1", True)
    assert seen["task"].data_path == "/d"
    out = run.cli.main(train_model, ["executor=local", "executor.ntasks_per_node=2", *BASE])
    assert seen["executor"].ntasks_per_node == 2
    with pytest.raises(OverrideError, match="executor.ntasks_per_node: expected int"):
        run.cli.main(train_model, ["executor=local", "executor.ntasks_per_node=many", *BASE])
    with pytest.raises(UsageError, match="unknown executor 'slrum'"):
        run.cli.main(train_model, ["executor=slrum", *BASE])
    # the executor's own check names the override's path, not the executor config's root
    with pytest.raises(ConfigError, match=r"^executor\.nodes: must be an int >= 1, got -1$"):
        run.cli.main(train_model, ["--executor", "slurm", "executor.nodes=-1", "--dryrun", *BASE])


def test_default_executor_and_none(monkeypatch):
    import nemorun_core.experiment.launch as launch
    from nemorun_core.executors.local import LocalExecutor

    monkeypatch.setattr(launch, "run", lambda task, executor=None, **kw: ("launched", executor))

    @run.cli.entrypoint(default_executor=LocalExecutor(ntasks_per_node=1))
    def task(x: int = 1):
        return x

    assert task.main(["x=2", "--yes"])[0] == "launched"
    assert task.main(["x=2", "--executor", "none"]) == 2  # back in process


@pytest.mark.local
def test_executor_local_real_run(tmp_path, monkeypatch):
    """Through the real launch layer and LocalExecutor (a real subprocess)."""
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    out = run.cli.main(train_model, ["--executor", "local", "--yes", "model.hidden_size=7", *BASE])
    assert out["hidden_size"] == 7


# -- as a real program -----------------------------------------------------------------------------------------------
def _run(tmp_path, *argv, env=None, timeout=60):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    full_env = {k: v for k, v in os.environ.items() if k != "NEMORUN_DEBUG"}
    full_env.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                    NEMORUN_HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=full_env, timeout=timeout)


def test_subprocess_success_and_exit_codes(tmp_path):
    ok = _run(tmp_path, "local", "x=3")
    assert ok.returncode == 0 and "RESULT 3" in ok.stdout
    bad = _run(tmp_path, "train", "model.hidden_size=big", *BASE)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: model.hidden_size: expected int, got 'big'")
    assert "hint:" in bad.stderr and "Traceback" not in bad.stderr
    failed = _run(tmp_path, "local", "fail=true")
    assert failed.returncode == 1 and "task exploded" in failed.stderr


def test_subprocess_debug_shows_traceback(tmp_path):
    bad = _run(tmp_path, "train", "nope=1", env={"NEMORUN_DEBUG": "1"})
    assert bad.returncode == 2 and "Traceback" in bad.stderr and "no parameter 'nope'" in bad.stderr


def test_subprocess_missing_required(tmp_path):
    res = _run(tmp_path, "train")
    assert res.returncode == 2
    assert "missing required arguments: data_path (str), output_dir (str)" in res.stderr


def test_subprocess_help_is_plain_text(tmp_path):
    res = _run(tmp_path, "train", "--help")
    assert res.returncode == 0
    assert res.stdout.startswith("usage: python train.py [OPTIONS] [PATH=VALUE ...]")
    for text in ("Train a machine learning model", "model.hidden_size", "default: 512", "required",
                 "where the training data lives.", "--dryrun", "--to-yaml FILE|-"):
        assert text in res.stdout
    assert "\x1b[" not in res.stdout  # no colour codes when piped
    command = _run(tmp_path, "command", "-h")
    assert "Train a language model" in command.stdout and "--executor" not in command.stdout


def test_subprocess_to_yaml_loads_back_equal(tmp_path):
    res = _run(tmp_path, "train", "--to-yaml", "-", "model.hidden_size=1024", *BASE)
    assert res.returncode == 0, res.stderr
    expected = run.Partial(train_model, model=run.Config(ModelConfig, hidden_size=1024),
                           training=run.Config(TrainingConfig), data_path="/d", output_dir="/o")
    assert serialize.from_yaml(res.stdout) == expected
    res = _run(tmp_path, "train", "--to-toml", "out.toml", *BASE)
    assert res.returncode == 0 and serialize.load_file(tmp_path / "out.toml").data_path == "/d"


def test_subprocess_dryrun(tmp_path):
    res = _run(tmp_path, "local", "--dryrun", "x=9")
    assert res.returncode == 0 and "x: 9" in res.stdout and "RESULT" not in res.stdout


def test_subprocess_executor_without_tty_never_prompts(tmp_path):
    """stdin is not a terminal and --yes is absent: proceed, never block on 'Launch? [y/N]'."""
    res = _run(tmp_path, "local", "--executor", "local", "x=4", timeout=120)
    assert "Launch?" not in res.stderr
    assert res.returncode == 0, res.stderr
    assert "RESULT 4" in res.stdout


def test_subprocess_executor_dryrun(tmp_path):
    res = _run(tmp_path, "local", "--executor", "local", "--dryrun", "x=4")
    assert res.returncode == 0, res.stderr
    assert "x: 4" in res.stdout and "RESULT" not in res.stdout


def test_confirmation_on_a_terminal(monkeypatch, capsys):
    """On a tty without --yes the user is asked; anything but y/yes launches nothing (exit status 1)."""
    import io

    import nemorun_core.cli.session as session_mod
    import nemorun_core.experiment.launch as launch

    launched = []
    monkeypatch.setattr(launch, "run", lambda task, executor=None, **kw: launched.append(task) or "ok")
    monkeypatch.setattr(session_mod, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert run.cli.main(train_model, ["--executor", "local", *BASE]) is None
    assert launched == [] and "Launch? [y/N]" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert run.cli.main(train_model, ["--executor", "local", *BASE]) == "ok"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # EOF on a terminal: treated as no
    assert run.cli.main(train_model, ["--executor", "local", *BASE]) is None
    assert run.cli.main(train_model, ["--executor", "local", "-y", *BASE]) == "ok"  # --yes: not asked
    assert len(launched) == 2


def test_rich_help_on_a_terminal(capsys):
    from nemorun_core.cli.help import print_help
    from nemorun_core.cli.session import default_config

    print_help("python train.py", train_model.__nemorun_wrapped__, default_config(train_model), tty=True)
    out = capsys.readouterr().out
    assert "Arguments" in out and "model.hidden_size" in out and "width of every" in out


def test_docstring_parsing():
    from nemorun_core.cli.help import parse_docstring

    doc = parse_docstring("""Summary line
    continues.

    More text.

    Args:
        a (int): first
            and more.
        b: second.

    Returns:
        nothing.
    """)
    assert doc.summary == "Summary line continues."
    assert doc.description == "More text."
    assert doc.params == {"a": "first and more.", "b": "second."}


def test_executor_slurm_and_docker_by_name(monkeypatch, tmp_path):
    """``--executor slurm|docker`` with ``executor.*`` settings; the tunnel from a YAML file; a missing image is a
    clear error before anything launches."""
    import nemorun_core.experiment.launch as launch
    from nemorun_core.executors.docker import DockerExecutor
    from nemorun_core.executors.slurm import SlurmExecutor
    from nemorun_core.tunnel.ssh import SSHTunnel

    seen = {}
    monkeypatch.setattr(launch, "run", lambda task, executor=None, **kw: seen.update(executor=executor) or "ok")
    tunnel = tmp_path / "tunnel.yaml"
    tunnel.write_text("_target_: nemorun_core.tunnel.ssh.SSHTunnel\nhost: login.example.org\nuser: me\n"
                      "job_dir: /scratch/me/nemorun\n")
    run.cli.main(train_model, ["--executor", "slurm", "executor.partition=debug", "executor.account=a",
                               "executor.time=00:10:00", f"executor.tunnel=@{tunnel}", "--yes", *BASE])
    ex = seen["executor"]
    assert isinstance(ex, SlurmExecutor) and (ex.partition, ex.account, ex.time) == ("debug", "a", "00:10:00")
    assert ex.tunnel == SSHTunnel(host="login.example.org", user="me", job_dir="/scratch/me/nemorun")
    run.cli.main(train_model, ["executor=docker", "executor.container_image=python:3.11", "--yes", *BASE])
    assert isinstance(seen["executor"], DockerExecutor) and seen["executor"].container_image == "python:3.11"
    seen.clear()
    with pytest.raises(UsageError, match=r"missing required argument: executor.container_image \(str\)"):
        run.cli.main(train_model, ["executor=docker", "--yes", *BASE])
    assert seen == {}
