"""Shell completion: the candidate function, the generated scripts, and one bash script run by real bash."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.cli.argv import UsageError
from nemorun_core.cli.completion import candidates, script
from nemorun_core.cli.entrypoint import info_of
from nemorun_core.cli.factories import isolated_registry
from nemorun_core.cli.session import Session
from tests.unit.cli._targets import ModelConfig, everything, train, train_model

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture()
def session():
    with isolated_registry() as reg:
        @run.cli.factory
        def my_model() -> ModelConfig:
            return ModelConfig()

        @run.cli.factory(target=train_model)
        def quick() -> run.Partial:
            return run.Partial(train_model)

        yield Session(train_model, info_of(train_model), prog="python train.py", registry=reg)


def complete(session, *words, env=None):
    words = ["python", "train.py", *words]
    return candidates(session, len(words) - 1, words)


def test_flags(session):
    assert complete(session, "--to") == ["--to-json", "--to-toml", "--to-yaml"]
    assert "--executor" in complete(session, "--")
    command = Session(train, info_of(train), prog="train.py")
    assert "--executor" not in candidates(command, 1, ["train.py", "--"])


def test_parameter_paths(session):
    found = complete(session, "")
    assert {"model=", "model.hidden_size=", "training.batch_size=", "data_path=", "seed=", "executor="} <= set(found)
    assert complete(session, "model.hid") == ["model.hidden_size="]


def test_values_after_equals(session):
    assert complete(session, "model=") == ["model=my_model"]
    assert complete(session, "model=my") == ["model=my_model"]
    assert complete(session, "debug=") == ["debug=false", "debug=true"]
    # the built-ins, plus the backends installed packages register (the test envs have tests/fixtures' echo)
    assert complete(session, "executor=") == [f"executor={n}" for n in _backends("docker", "local", "none", "ray", "slurm")]
    assert complete(session, "model.hidden_size=") == []
    s = Session(everything, info_of(everything), prog="train.py")
    assert candidates(s, 1, ["train.py", "precision="]) == ["precision=BF16", "precision=FP32"]


def test_files_after_at(session, tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text("{}")
    (tmp_path / "configs" / "notes.txt").write_text("")
    (tmp_path / "big.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert complete(session, "model=@") == ["model=@big.toml", "model=@configs/"]
    assert complete(session, "model=@configs/") == ["model=@configs/base.yaml"]
    assert complete(session, "--factory", "@c") == ["@configs/"]
    assert complete(session, "--factory", "") == ["quick"]
    assert complete(session, "--to-yaml", "configs/") == ["configs/base.yaml", "configs/notes.txt"]
    assert complete(session, "--executor", "") == _backends("docker", "local", "none", "ray", "slurm")


def test_bash_wordbreak_trimming(session, monkeypatch):
    monkeypatch.setenv("NEMORUN_COMP_WORDBREAKS", " \t\n\"'@><=;|&(:")
    assert complete(session, "model=my") == ["my_model"]  # bash replaces only what follows '='
    assert complete(session, "model.hid") == ["model.hidden_size="]


def test_scripts_name_the_callback():
    for shell in ("bash", "zsh", "fish"):
        text = script(shell, [sys.executable, "/x/train.py"], "train.py")
        assert f"{sys.executable} /x/train.py --complete" in text
    assert "complete -o nospace -F _nemorun_complete_train_py train.py ./train.py" in script(
        "bash", ["python", "train.py"], "train.py")
    with pytest.raises(UsageError, match="unknown shell 'tcsh'"):
        script("tcsh", ["x"], "x")


COMP_SCRIPT = '''
import nemorun_core as run
from tests.unit.cli._targets import ModelConfig, train_model


@run.cli.factory
def my_model() -> ModelConfig:
    return ModelConfig()


if __name__ == "__main__":
    run.cli.main(train_model)
'''


def test_generated_bash_script_in_real_bash(tmp_path):
    path = tmp_path / "comp.py"
    path.write_text(textwrap.dedent(COMP_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gen = subprocess.run([sys.executable, str(path), "--completion", "bash"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "comp.bash").write_text(gen.stdout)

    def bash(setup: str) -> list[str]:
        code = f'source comp.bash\n{setup}\n_nemorun_complete_comp_py\nprintf "%s\\n" "${{COMPREPLY[@]}}"'
        res = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        return [line for line in res.stdout.splitlines() if line]

    # From COMP_WORDS/COMP_CWORD (what bash sets for a word without breaks).
    assert bash("COMP_WORDS=(comp.py model.hid); COMP_CWORD=1") == ["model.hidden_size="]
    assert bash("COMP_WORDS=(comp.py --dry); COMP_CWORD=1") == ["--dryrun"]
    # From COMP_LINE, as interactive bash does: '=' is a word break, so only the value part is offered.
    assert bash("COMP_WORDS=(comp.py model = my); COMP_CWORD=3; COMP_LINE='comp.py model=my'; "
                "COMP_POINT=${#COMP_LINE}") == ["my_model"]
    assert bash("COMP_LINE='./comp.py seed=1 '; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(./comp.py seed = 1 ''); "
                "COMP_CWORD=4") == sorted(bash("COMP_WORDS=(comp.py ''); COMP_CWORD=1"))
    assert "complete -o nospace -F _nemorun_complete_comp_py comp.py ./comp.py" in gen.stdout


def test_complete_flag_prints_candidates(capsys, session):
    with isolated_registry():
        run.cli.main(train_model, ["--complete", "1", "train.py", "--dry"])
    assert capsys.readouterr().out == "--dryrun\n"


def _backends(*builtin: str) -> list[str]:
    """``builtin`` and the names of the backends that other installed distributions register, sorted."""
    from nemorun_core.executors import registry

    return sorted([*builtin, *(e.name for e in registry.entries() if not e.builtin)])
