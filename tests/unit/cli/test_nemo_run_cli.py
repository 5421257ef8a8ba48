"""NeMo Run's documented CLI API after ``import nemorun_core as run``: decorators, RunContext, grammar, lookups."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.cli.argv import UsageError
from nemorun_core.errors import ConfigError, OverrideError
from tests.unit.cli import _nemo_targets as t

REPO = pathlib.Path(__file__).resolve().parents[3]


def call(fn, *words, **kwargs):
    return run.cli.main(fn, list(words), exit=False, **kwargs)


# -- module paths and identity ---------------------------------------------------------------------------------------
def test_api_and_lazy_modules_are_the_same_objects():
    import nemorun_core.cli.api as api
    import nemorun_core.cli.lazy as lazy
    from nemorun_core.cli import parsing

    for name in ("entrypoint", "factory", "main", "RunContext", "cli_command", "parse_cli_args", "parse_config",
                 "parse_partial", "resolve_factory", "list_entrypoints", "list_factories"):
        assert getattr(api, name) is getattr(run.cli, name), name
    assert lazy.LazyEntrypoint is run.cli.LazyEntrypoint and lazy.lazy_imports is run.cli.lazy_imports
    assert api.parse_partial is parsing.parse_partial


def test_importing_the_cli_stays_cheap():
    code = ("import sys, nemorun_core as run, nemorun_core.cli.api, nemorun_core.cli.lazy; run.cli.RunContext; "
            "print(sorted(m for m in ('fiddle', 'typer', 'yaml', 'nemorun_core.cli.session', "
            "'nemorun_core.experiment.experiment') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# -- entrypoint / main options ---------------------------------------------------------------------------------------
def test_entrypoint_takes_nemo_run_options():
    def base():
        return run.Partial(train_it, epochs=50, batch_size=2048)

    @run.cli.entrypoint(namespace="nemo_tests", name="train-it", skip_confirmation=True, enable_executor=True,
                        default_factory=base, type="task")
    def train_it(epochs: int = 1, batch_size: int = 1):
        return epochs, batch_size

    assert call(train_it) == (50, 2048)  # the default factory is the base
    assert call(train_it, "epochs=2") == (2, 2048)
    assert run.cli.list_entrypoints("nemo_tests")["nemo_tests"]["train-it"] is train_it
    assert "nemo_tests" not in run.cli.list_entrypoints("other")


def test_entrypoint_refuses_bad_type_and_experiment_without_context():
    with pytest.raises(TypeError, match="'task' or 'experiment'"):
        run.cli.entrypoint(type="job")
    with pytest.raises(TypeError, match="ctx: run.cli.RunContext"):
        run.cli.entrypoint(type="experiment")(lambda x=1: x)


def test_main_default_factory_plugins_and_cmd_defaults():
    out = call(t.train_nr, default_factory=t.custom_defaults, default_plugins=run.Config(t.DoubleEpochs),
               cmd_defaults={"skip_confirmation": True})
    assert (out["epochs"], out["batch_size"]) == (100, 2048)  # plugin applied in process too
    assert call(t.train_nr, "epochs=3", default_plugins=[t.DoubleEpochs()])["epochs"] == 6
    assert call(t.train_nr, "plugins=double_epochs", "epochs=4")["epochs"] == 8


def test_main_default_factory_by_name_and_positional(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "batch_size=7"])
    with pytest.raises(SystemExit) as info:
        run.cli.main(t.train_nr, t.custom_defaults)  # NeMo Run: main(fn, default_factory), argv from sys.argv
    assert info.value.code == 0
    assert call(t.train_nr, default_factory="quick")["epochs"] == 1


def test_cmd_defaults_unknown_key_is_a_usage_error():
    with pytest.raises(UsageError, match="cmd_defaults has no option 'skip_confirm'") as info:
        call(t.train_nr, cmd_defaults={"skip_confirm": True})
    assert "skip_confirmation" in str(info.value)
    with pytest.raises(UsageError, match="must be True or False"):
        call(t.train_nr, cmd_defaults={"detach": "yes"})


def test_enable_executor_false_refuses_launch_options():
    @run.cli.entrypoint(enable_executor=False)
    def local_only(x: int = 1):
        return x

    assert call(local_only, "x=2") == 2
    with pytest.raises(UsageError, match="--executor"):
        call(local_only, "--executor", "local")


def test_nemo_run_flags_are_accepted():
    assert call(t.train_nr, "-n", "my-run", "--no-confirm", "--direct", "--no-tail-logs", "--lazy", "-v",
                "epochs=2")["epochs"] == 2


def test_run_executor_spelling_routes_to_the_executor():
    out = call(t.train_nr, "run.executor=local", "run.executor.ntasks_per_node=1", "epochs=2", "--dryrun")
    assert out.epochs == 2
    with pytest.raises(UsageError, match="run.seed is not a launch setting"):
        call(t.train_nr, "run.seed=1")


# -- experiment entrypoints and RunContext ---------------------------------------------------------------------------
@run.cli.factory
@run.autoconvert
def nr_local() -> run.LocalExecutor:
    return run.LocalExecutor(ntasks_per_node=1)


@run.cli.entrypoint(type="experiment")
def sweep(ctx: run.cli.RunContext, models: list[t.Model] = [t.nr_model(), t.nr_model(hidden_size=512)],
          sequential: bool = False):
    return ctx, [m.hidden_size for m in models], sequential


def test_experiment_entrypoint_gets_a_run_context():
    ctx, sizes, sequential = call(sweep, "models[0].hidden_size=1024", "models+=[nr_model(hidden_size=2048)]",
                                  "sequential=True", "-y")
    assert isinstance(ctx, run.cli.RunContext) and ctx.name == "sweep" and ctx.executor is None
    assert sizes == [1024, 512, 2048] and sequential is True
    assert t.nr_model().hidden_size == 256  # the signature's default was not edited


def test_experiment_context_settings_from_the_command_line():
    ctx, _, _ = call(sweep, "ctx.executor=nr_local", "ctx.detach=true", "--name", "nightly", "--dryrun")
    assert isinstance(ctx.executor, run.LocalExecutor) and ctx.detach and ctx.dryrun and ctx.name == "nightly"
    ctx, _, _ = call(sweep, "--executor", "local", "-y")
    assert isinstance(ctx.executor, run.LocalExecutor)
    with pytest.raises(UsageError, match="did you mean 'detach'"):
        call(sweep, "ctx.detahc=true")


def test_run_context_launch_dryrun_of_an_experiment(capsys):
    ctx = run.cli.RunContext(name="x", executor=run.LocalExecutor(), dryrun=True)
    exp = run.Experiment("ctx-dry")
    exp.add(run.Partial(t.train_nr, epochs=1), name="a", executor=ctx.executor)
    assert ctx.launch(exp, sequential=True) is exp
    assert "nemorun_core.runner" in capsys.readouterr().out  # the rendered request, nothing started


def test_run_context_launch_direct_runs_in_process():
    ctx = run.cli.RunContext(direct=True)
    assert ctx.launch(run.Partial(t.train_nr, epochs=4))["epochs"] == 4


# -- override grammar ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("words, key, expected", [
    (["debug=1"], "debug", True), (["debug=0"], "debug", False), (["debug=yes"], "debug", True),
    (["debug=no"], "debug", False), (["tag=null"], "tag", None), (["tag=None"], "tag", None),
    (["epochs=1"], "epochs", 1),
])
def test_bools_and_none(words, key, expected):
    assert run.build(run.cli.parse_partial(t.train_nr, *words))()[key] == expected


def test_factory_calls_positional_listed_dotted_and_merge():
    out = run.build(run.cli.parse_partial(t.train_nr, "model=nr_model(1000, 4)"))()
    assert (out["model"].hidden_size, out["model"].num_layers) == (1000, 4)
    out = run.build(run.cli.parse_partial(t.train_nr, "models=[nr_model(), nr_model(hidden_size=8)]",
                                          "models+=[nr_model(16)]", "models[0].num_layers=9"))()
    assert [(m.hidden_size, m.num_layers) for m in out["models"]] == [(256, 9), (8, 3), (16, 3)]
    out = run.build(run.cli.parse_partial(t.train_nr, "model=tests.unit.cli._nemo_targets.unregistered_big(5)"))()
    assert out["model"].hidden_size == 5
    out = run.build(run.cli.parse_partial(t.train_nr, "model=wide", "models=[wide()]"))()
    assert out["model"].hidden_size == 8192 and out["models"][0].hidden_size == 8192  # target=Model: by type
    out = run.build(run.cli.parse_partial(t.train_nr, "extra={'a': 1}", "extra|={'b': 2, 'a': 3}"))()
    assert out["extra"] == {"a": 3, "b": 2}


def test_grammar_errors_name_the_problem():
    with pytest.raises(OverrideError, match="both by position and by name"):
        run.cli.parse_partial(t.train_nr, "model=nr_model(1, hidden_size=2)")
    with pytest.raises(OverrideError, match="takes 3 positional"):
        run.cli.parse_partial(t.train_nr, "model=nr_model(1, 2, 'a', 4)")
    with pytest.raises(OverrideError, match="nothing callable at that dotted path"):
        run.cli.parse_partial(t.train_nr, "model=tests.unit.cli._nemo_targets.nothing_here")
    with pytest.raises(OverrideError, match=r"\|= merges a dict"):
        run.cli.parse_partial(t.train_nr, "epochs|={'a': 1}")
    with pytest.raises(OverrideError, match="unknown factory 'nr_modle'.*\n.*did you mean 'nr_model'"):
        run.cli.parse_partial(t.train_nr, "models=[nr_modle()]")


# -- parse_* and lookups ---------------------------------------------------------------------------------------------
def test_parse_cli_args_partial_and_config():
    cfg = run.cli.parse_cli_args(t.train_nr, ["epochs=3"])
    assert isinstance(cfg, run.Partial) and cfg.epochs == 3
    cfg = run.cli.parse_cli_args(t.Model, ["hidden_size=3"], output_type=run.Config)
    assert type(cfg) is run.Config and run.build(cfg) == t.Model(hidden_size=3)
    assert run.build(run.cli.parse_config(t.Model, "num_layers=2")).num_layers == 2
    base = run.Partial(t.train_nr, epochs=1)
    assert run.cli.parse_cli_args(t.train_nr, ["epochs+=1"], output=base) is base and base.epochs == 2
    with pytest.raises(TypeError, match="list of words"):
        run.cli.parse_cli_args(t.train_nr, "epochs=3")


def test_list_and_resolve_factories():
    assert t.nr_model in run.cli.list_factories(t.Model)
    assert run.cli.list_factories("nemo_tests.optimizers") == [t.nr_optimizer]
    assert run.cli.list_factories(t.train_nr) == [t.quick]
    assert run.cli.resolve_factory(t.Model, "nr_model") is t.nr_model
    assert run.cli.resolve_factory("nemo_tests.optimizers", "nr_optimizer") is t.nr_optimizer
    assert run.cli.resolve_factory(t.Model, "tests.unit.cli._nemo_targets.unregistered_big") is t.unregistered_big
    with pytest.raises(ConfigError, match="did you mean 'nr_model'"):
        run.cli.resolve_factory(t.Model, "nr_modle")


# -- lazy ------------------------------------------------------------------------------------------------------------
def test_lazy_imports_and_lazy_entrypoint():
    with run.cli.lazy_imports():
        from not_installed_anywhere.train import pretrain  # noqa: F401 - never imported
        import tests.unit.cli._nemo_targets as lazy_targets
    assert repr(pretrain) == "<lazy not_installed_anywhere.train.pretrain>"
    with pytest.raises(TypeError, match="lazy import"):
        pretrain()
    task = run.cli.LazyEntrypoint(lazy_targets.train_nr, factory="quick")
    task.model.num_layers = 7
    task.epochs = 5
    cfg = task.resolve()
    assert isinstance(cfg, run.Partial) and cfg.__fn_or_cls__ is t.train_nr
    out = run.build(cfg)()
    assert (out["model"].hidden_size, out["model"].num_layers, out["epochs"]) == (64, 7, 5)
    cfg = run.cli.LazyEntrypoint("tests.unit.cli._nemo_targets.train_nr --factory quick batch_size=3").resolve()
    assert (cfg.epochs, cfg.batch_size) == (1, 3)
    cfg = run.cli.LazyEntrypoint("tests.unit.cli._nemo_targets.train_nr",
                                 factory="tests.unit.cli._nemo_targets.custom_defaults").resolve()
    assert cfg.epochs == 50
    bad = run.cli.LazyEntrypoint("tests.unit.cli._nemo_targets.train_nr")
    bad.epocs = 1
    with pytest.raises(OverrideError, match="did you mean 'epochs'"):
        bad.resolve()
    # run.run and exp.add take one as they take a Partial: it is resolved when it is added
    lazy = run.cli.LazyEntrypoint("tests.unit.cli._nemo_targets.train_nr --factory quick")
    lazy.epochs = 2
    assert run.run(lazy, direct=True)["epochs"] == 2
    with pytest.raises(OverrideError, match="did you mean 'epochs'"):
        run.run(bad, direct=True)


# -- the spec's CLI lines and NeMo Run's files -----------------------------------------------------------------------
def test_spec_file_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "executors").mkdir()
    (tmp_path / "configs/base.yaml").write_text("model:\n  hidden_size: 768\noptimizer:\n  learning_rate: 3e-4\n")
    (tmp_path / "executors/slurm.yaml").write_text("account: acct\npartition: gpu\nnodes: 2\n")
    out = call(t.train_nr, "--factory", "@configs/base.yaml", "model.num_layers=24")
    assert (out["model"].hidden_size, out["model"].num_layers, out["optimizer"].learning_rate) == (768, 24, 3e-4)
    capsys.readouterr()
    call(t.train_nr, "--executor", "slurm", "--factory", "executor=@executors/slurm.yaml", "--dryrun")
    text = capsys.readouterr().out
    assert "#SBATCH --nodes=2" in text and "#SBATCH --account=acct" in text
    with pytest.raises(UsageError, match="nothing says which executor"):
        call(t.train_nr, "--factory", "executor=@executors/slurm.yaml", "--dryrun")
    call(t.train_nr, "--to-yaml", "config.yaml", "model.hidden_size=512")
    assert "hidden_size: 512" in (tmp_path / "config.yaml").read_text()
    again = call(t.train_nr, "--yaml", "config.yaml", "epochs=2")
    assert (again["model"].hidden_size, again["epochs"]) == (512, 2)


def test_nemo_run_yaml_with_factory_key(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text("model:\n  _factory_: nr_model\n  num_layers: 5\nepochs: 2\n")
    out = call(t.train_nr, "--yaml", str(path))
    assert (out["model"].hidden_size, out["model"].num_layers, out["epochs"]) == (256, 5, 2)
    path.write_text("model:\n  _factory_: nr_modle\n")
    with pytest.raises(ConfigError, match="did you mean 'nr_model'"):
        call(t.train_nr, "--yaml", str(path))


# -- cli_command -----------------------------------------------------------------------------------------------------
def test_cli_command_name_and_typer_form(tmp_path):
    @run.cli.cli_command(name="train-small")
    def small(size: str = "7b", lr: float = 1e-4):
        return size, lr

    assert small.__nemorun_cli__.name == "train-small"
    assert call(small, "size=13b", "lr=3e-4") == ("13b", 3e-4)
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent('''
        import typer
        import nemorun_core as run
        from tests.unit.cli._nemo_targets import train_nr

        app = typer.Typer()
        run.cli.cli_command(app, "train", train_nr)

        @app.command()
        def other():
            pass

        app()
    '''))
    out = subprocess.run([sys.executable, str(script), "train", "epochs=2", "--to-yaml", "-"], capture_output=True,
                         text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "epochs: 2" in out.stdout
    out = subprocess.run([sys.executable, str(script), "train", "epocs=2"], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 2 and "did you mean 'epochs'" in out.stderr
