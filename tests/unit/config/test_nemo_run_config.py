"""NeMo Run's documented configuration API, after only ``import nemo_run as run`` -> ``import nemorun_core as run``."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import textwrap
import typing
from typing import Annotated, List, Optional

import pytest

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.config.overrides import from_plain
from nemorun_core.errors import ConfigError, ConfigTypeError
from tests.unit.config._models import ModelConfig, Point, TrainingConfig, train_model

CALLS: list[str] = []


@dataclasses.dataclass
class Llama3Config:
    seq_length: int = 2048
    hidden: int = 4096

    def __post_init__(self):
        CALLS.append("Llama3Config")


class LlamaModel:
    def __init__(self, config: Llama3Config, name: str = "llama"):
        CALLS.append("LlamaModel")
        self.config, self.name = config, name


def model() -> run.Config[LlamaModel]:
    return run.Config(LlamaModel, config=run.Config(Llama3Config))


@run.autoconvert
def automodel() -> LlamaModel:
    return LlamaModel(config=Llama3Config())


@run.autoconvert
def sized(seq_length: int = 4096, layers: int = 2) -> LlamaModel:
    name = "llama-" + str(layers)  # builtins are called, not recorded
    return LlamaModel(config=Llama3Config(seq_length=seq_length, hidden=len([0] * layers) * 1024), name=name)


@run.autoconvert
def with_control_flow(n: int = 3) -> list:
    return [Point(x=i) for i in range(n) if i != 1]


@run.autoconvert
def calls_another() -> dict:
    return {"model": sized(seq_length=128), "opt": functools.partial(TrainingConfig, batch_size=8)}


@run.autoconvert
def mixes_configs_in() -> LlamaModel:
    return LlamaModel(config=run.Config(Llama3Config, seq_length=1))  # a config written out is kept as it is


@run.autoconvert
def wrong_type() -> ModelConfig:
    return ModelConfig(hidden_size="big")


# -- @run.autoconvert: Fiddle's auto_config ------------------------------------------------------------------------
def test_autoconvert_records_calls_without_running_constructors():
    CALLS.clear()
    cfg = automodel()
    assert CALLS == []  # neither LlamaModel nor Llama3Config (nor its __post_init__) ran
    assert cfg == model()  # the guide's `model() == automodel()`
    assert type(cfg) is run.Config and type(cfg.config) is run.Config
    built = run.build(cfg)
    assert CALLS == ["Llama3Config", "LlamaModel"] and built.config.seq_length == 2048


def test_autoconvert_arguments_builtins_and_only_written_fields():
    cfg = sized(seq_length=512)
    assert cfg == run.Config(LlamaModel, config=run.Config(Llama3Config, seq_length=512, hidden=2048),
                             name="llama-2")
    assert set(cfg.config.__arguments__) == {"seq_length", "hidden"}


def test_autoconvert_allows_control_flow_and_inlines_other_factories():
    assert with_control_flow() == [run.Config(Point, x=0), run.Config(Point, x=2)]
    out = calls_another()
    assert out["model"] == sized(seq_length=128)  # inlined: the tree, not a Config of the factory
    assert type(out["opt"]) is run.Partial and out["opt"] == run.Partial(TrainingConfig, batch_size=8)
    assert mixes_configs_in() == run.Config(LlamaModel, config=run.Config(Llama3Config, seq_length=1))


def test_autoconvert_checks_types_while_recording():
    with pytest.raises(ConfigTypeError, match=r"ModelConfig\.hidden_size: expected int, got 'big'"):
        wrong_type()


def test_autoconvert_without_source_is_a_clear_error():
    namespace: dict = {"run": run, "Point": Point}
    exec("@run.autoconvert\ndef made():\n    return Point(x=1)\n", namespace)
    with pytest.raises(ConfigError, match="cannot read the source of made.*return run.Config"):
        namespace["made"]()


def test_configured_autoconvert_factory_still_builds_the_object():
    CALLS.clear()
    built = run.build(run.Config(sized, seq_length=64))
    assert isinstance(built, LlamaModel) and built.config.seq_length == 64


# -- dataclass instances as arguments --------------------------------------------------------------------------------
@dataclasses.dataclass(init=False)
class OwnInit:
    value: int

    def __init__(self, raw: str):
        self.value = int(raw)


def takes_anything(model: ModelConfig = None, own: object = None, items: Optional[list] = None):
    return model, own, items


def test_dataclass_arguments_become_configs():
    cfg = run.Config(takes_anything, model=ModelConfig(hidden_size=64, num_heads=4), own=OwnInit("3"),
                     items=[Point(1, 2)])
    assert cfg.model == run.Config(ModelConfig, hidden_size=64, num_heads=4)
    assert isinstance(cfg.own, OwnInit)  # its own __init__: its fields are not its parameters, so it stays a value
    assert cfg.items == [Point(1, 2)]  # inside a container it stays a value, as in NeMo Run
    cfg.model = ModelConfig(num_layers=2)  # by assignment too
    assert cfg.model == run.Config(ModelConfig, num_layers=2)
    cfg.model.num_layers = 6
    assert run.build(cfg)[0] == ModelConfig(num_layers=6)


# -- OptionalDefaultConfig / OptionalDefaultPartial ------------------------------------------------------------------
def train(model: run.OptionalDefaultConfig[ModelConfig] = None,
          training: run.OptionalDefaultPartial[TrainingConfig] = None,
          spelled: Annotated[Optional[Point], run.Config[Point]] = None,
          plain: Optional[Point] = None):
    return model, training, spelled, plain


def test_optional_default_configs_are_filled_when_not_given():
    cfg = run.Partial(train)
    assert cfg.model == run.Config(ModelConfig) and type(cfg.model) is run.Config
    assert cfg.training == run.Partial(TrainingConfig) and type(cfg.training) is run.Partial
    assert cfg.spelled == run.Config(Point)
    assert cfg.plain is None and "plain" not in cfg.__arguments__
    cfg.model.hidden_size = 1024
    model_, training, spelled, plain = run.build(cfg)()
    assert model_ == ModelConfig(hidden_size=1024) and training() == TrainingConfig() and spelled == Point()


def test_optional_default_keeps_what_is_given():
    cfg = run.Config(train, model=None, spelled=run.Config(Point, x=5))
    assert cfg.model is None and cfg.spelled == run.Config(Point, x=5)
    assert run.build(cfg)[0] is None


def test_optional_default_aliases_are_exported():
    base, meta = typing.get_args(run.OptionalDefaultConfig[Point])
    assert base == Optional[Point] and typing.get_origin(meta) is run.Config
    assert typing.get_origin(typing.get_args(run.OptionalDefaultPartial[Point])[1]) is run.Partial
    assert "OptionalDefaultConfig" in dir(run) and "set_nemorun_home" in dir(run)


# -- clone, diff, visualize, walk ------------------------------------------------------------------------------------
def test_clone_is_deep():
    cfg = run.Config(LlamaModel, config=run.Config(Llama3Config, seq_length=8))
    copy = cfg.clone()
    copy.config.seq_length = 16
    assert cfg.config.seq_length == 8 and copy.config.seq_length == 16 and type(copy) is run.Config


def test_visualize_and_diff_draw_with_graphviz():
    graphviz = pytest.importorskip("graphviz")
    old = run.Config(LlamaModel, config=run.Config(Llama3Config, seq_length=8))
    new = old.clone()
    new.config.seq_length = 16
    drawing = new.visualize()
    assert isinstance(drawing, graphviz.Graph) and "Llama3Config" in drawing.source and "16" in drawing.source
    changes = new.diff(old)
    assert isinstance(changes, (graphviz.Graph, graphviz.Digraph)) and "16" in changes.source
    assert "8" in changes.source


def test_visualize_without_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match=r"pip install graphviz.*run\.diff"):
        run.Config(Point).visualize()


def test_walk_takes_nemo_runs_function_of_the_config():
    cfg = run.Config(takes_anything, model=run.Config(ModelConfig, hidden_size=64, num_heads=4))
    assert cfg.walk(hidden_size=lambda c: c.hidden_size * 2).model.hidden_size == 128  # NeMo Run's form
    assert cfg.walk(hidden_size=lambda v: v * 3).model.hidden_size == 192  # ours: a function of the value
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cfg.walk(hidden_size=lambda c: c.nope)


# -- Script ----------------------------------------------------------------------------------------------------------
def test_script_get_name():
    assert run.Script("./scripts/echo.sh").get_name() == "echo.sh"
    assert run.Script(inline="\n  echo 'hi there'\n").get_name() == "echo_hi_t"  # "echo 'hi t": ten characters


def test_script_to_command(tmp_path):
    s = run.Script("train.py", args=["--lr", "3e-4"])
    assert s.to_command() == ["train.py", "--lr", "3e-4"]
    assert s.to_command(with_entrypoint=True) == ["python", "train.py", "--lr", "3e-4"]
    assert run.Script("pkg.train", m=True).to_command(with_entrypoint=True) == ["python", "-m", "pkg.train"]
    inline = run.Script(inline='echo "$HOME"')
    argv = inline.to_command(with_entrypoint=True)
    assert argv == ["bash", "-c", 'echo "$HOME"']
    assert subprocess.run(argv, capture_output=True, text=True, env={"HOME": "/h", "PATH": os.environ["PATH"]}
                          ).stdout == "/h\n"
    target = tmp_path / "scripts" / "inline.sh"
    assert inline.to_command(filename=str(target), is_local=True) == [str(target)]
    assert target.read_text() == '#!/usr/bin/env bash\necho "$HOME"'


# -- the nemorun home ------------------------------------------------------------------------------------------------
def test_set_nemorun_home_reaches_this_process_and_children(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "before"))
    assert run.get_nemorun_home() == str(tmp_path / "before")
    run.set_nemorun_home(tmp_path / "after")
    assert run.get_nemorun_home() == str(tmp_path / "after") == os.environ["NEMORUN_HOME"]
    child = subprocess.run([sys.executable, "-c", "import nemorun_core as run; print(run.get_nemorun_home())"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(tmp_path / "after")
    from nemorun_core.experiment.store import Store

    assert Store().root == str(tmp_path / "after")


def test_set_nemorun_home_expands_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", "/tmp/x")
    monkeypatch.setenv("HOME", "/home/someone")
    run.set_nemorun_home("~/runs")
    assert run.get_nemorun_home() == "/home/someone/runs"
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="needs a directory path"):
            run.set_nemorun_home(bad)
    assert run.get_nemorun_home() == "/home/someone/runs"


# -- YAML written by hand --------------------------------------------------------------------------------------------
def test_yaml_exponent_is_a_float_where_the_field_is_a_float():
    cfg = serialize.from_yaml(textwrap.dedent("""\
        _target_: tests.unit.config._models:TrainingConfig
        learning_rate: 3e-4
        optimizer: 1e5
        """))
    assert cfg.learning_rate == 3e-4 and type(cfg.learning_rate) is float
    assert cfg.optimizer == "1e5"  # a str field keeps its text


def test_yaml_text_for_a_float_field_is_an_error_naming_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("_target_: tests.unit.config._models:TrainingConfig\nlearning_rate: fast\n")
    with pytest.raises(ConfigTypeError, match=r"TrainingConfig\.learning_rate: expected float, got 'fast'"):
        serialize.load_file(path)


def test_plain_yaml_mapping_fills_float_fields(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text("training:\n  learning_rate: 3e-4\n  scheduler: 1e3\nseed: 3\n")
    cfg = from_plain(run.Partial(train_model), serialize.load_file(path))
    assert cfg.training.learning_rate == 3e-4 and type(cfg.training.learning_rate) is float
    assert cfg.training.scheduler == "1e3" and cfg.seed == 3
    with pytest.raises(ConfigTypeError, match=r"learning_rate: expected float, got '3e-4x'"):
        from_plain(run.Partial(train_model), {"training": {"learning_rate": "3e-4x"}})


def test_python_assignment_of_text_to_a_float_field_stays_an_error():
    with pytest.raises(ConfigTypeError, match="learning_rate"):
        run.Config(TrainingConfig, learning_rate="3e-4")


def test_serialize_still_imports_no_fiddle():
    code = "import sys, nemorun_core.config.serialize\nprint('fiddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_list_annotations_stay_usable():
    def pick(models: List[ModelConfig] = None):
        return models

    assert run.build(run.Config(pick, models=[run.Config(ModelConfig)])) == [ModelConfig()]
