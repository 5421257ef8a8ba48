"""The override grammar: parsing, coercion, arithmetic, and applying to config trees."""

from __future__ import annotations

import pathlib
from typing import Optional

import pytest

import nemorun_core as run
from nemorun_core.cli import grammar
from nemorun_core.cli.factories import FactoryRegistry
from nemorun_core.cli.grammar import BareString, FactoryCall, FileRef, LiteralValue
from nemorun_core.cli.overrides import apply_overrides
from nemorun_core.errors import OverrideError
from tests.unit.cli._targets import DataConfig, Layer, ModelConfig, Precision, everything, train_model, uses_layers


# -- parsing ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, path, op, value",
    [
        ("model.hidden_size=1024", ("model", "hidden_size"), "=", LiteralValue(1024, "1024")),
        ("layers[0].size=3", ("layers", 0, "size"), "=", LiteralValue(3, "3")),
        ("a[1][2]=3", ("a", 1, 2), "=", LiteralValue(3, "3")),
        ("lr=1e-4", ("lr",), "=", LiteralValue(1e-4, "1e-4")),
        ("x+=2", ("x",), "+=", LiteralValue(2, "2")),
        ("x-=2.5", ("x",), "-=", LiteralValue(2.5, "2.5")),
        ("x*=2", ("x",), "*=", LiteralValue(2, "2")),
        ("x/=4", ("x",), "/=", LiteralValue(4, "4")),
        ("name='abc'", ("name",), "=", LiteralValue("abc", "'abc'")),
        ("xs=[1, 2]", ("xs",), "=", LiteralValue([1, 2], "[1, 2]")),
        ("d={'a': 1}", ("d",), "=", LiteralValue({"a": 1}, "{'a': 1}")),
        ("t=(1, 2)", ("t",), "=", LiteralValue((1, 2), "(1, 2)")),
        ("b=True", ("b",), "=", LiteralValue(True, "True")),
        ("n=None", ("n",), "=", LiteralValue(None, "None")),
        ("data_path=/path/to/data", ("data_path",), "=", BareString("/path/to/data")),
        ("q=a=b", ("q",), "=", BareString("a=b")),
        ("empty=", ("empty",), "=", BareString("")),
        ("model=@conf/m.yaml", ("model",), "=", FileRef("conf/m.yaml")),
        ("model=my_model(hidden_size=3)", ("model",), "=", FactoryCall("my_model", {"hidden_size": 3})),
        ("model=my_model()", ("model",), "=", FactoryCall("my_model", {})),
        ("model=f(act=gelu)", ("model",), "=", FactoryCall("f", {"act": "gelu"})),
        ("model=my_model", ("model",), "=", BareString("my_model")),
    ],
)
def test_parse(text, path, op, value):
    ov = grammar.parse(text)
    assert (ov.path, ov.op, ov.value) == (path, op, value)
    assert ov.text == text


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model.hidden_size", "there is no '='"),  # missing =
        ("=3", "path before '=' is empty"),  # empty path
        ("a..b=1", "empty name"),  # doubled dot
        (".a=1", "empty name"),  # leading dot
        ("a.=1", "empty name"),  # trailing dot
        ("a;rm -rf=1", "not a valid name"),  # shell metacharacters
        ("$(reboot)=1", "not a valid name"),
        ("1abc=1", "not a valid name"),
        ("a[x]=1", "not a valid name"),
        ("xs=[1, 2", "not a valid Python literal"),  # unbalanced brackets
        ("s='abc", "not a valid Python literal"),  # unbalanced quote
        ("m=@", "must be followed by a file name"),
        ("m=f(*xs)", "not *args or **kwargs"),
        ("m=f(a=[1)", "cannot parse the arguments"),
        ("m=f(a=x+1)", "is not a literal"),
        ("x+=@f.yaml", "needs a literal operand"),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(OverrideError) as info:
        grammar.parse(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message  # names the override as typed
    assert "hint:" in message  # and a fix


# -- coercion --------------------------------------------------------------------------------------------------------
def _coerce(raw: str, annotation):
    return grammar.coerce(grammar.parse_value(raw), annotation, text=f"x={raw}", path="x")


@pytest.mark.parametrize(
    "raw, annotation, expected",
    [
        ("true", bool, True), ("Yes", bool, True), ("off", bool, False), ("no", Optional[bool], False),
        ("null", Optional[int], None), ("none", Optional[str], None), ("None", Optional[int], None),
        ("true", str, "true"),  # a str parameter keeps the word
        ("1.10", str, "1.10"),  # the digits as typed, not str(1.1)
        ("007", str, "007"),
        ("3", float, 3.0), ("inf", float, float("inf")),
        ("[1, 2]", tuple, (1, 2)),
        ("/a/b", pathlib.Path, pathlib.Path("/a/b")),
        ("BF16", Precision, Precision.BF16), ("bf16", Precision, Precision.BF16),
        ("3", None, 3),  # no annotation: the literal as parsed
        ("big", None, "big"),
    ],
)
def test_coerce(raw, annotation, expected):
    assert _coerce(raw, annotation) == expected


@pytest.mark.parametrize(
    "raw, annotation, fragment",
    [
        ("big", int, "expected int, got 'big'"),
        ("'3'", int, "expected int, got '3'"),  # quotes mean a string: never silently an int
        ("true", int, "expected int, got 'true'"),
        ("True", int, "expected int, got True (a bool is not an int here)"),
        ("2.5", int, "expected int, got 2.5"),
        ("maybe", bool, "expected bool, got 'maybe'"),
        ("null", int, "expected int, got 'null'"),
        ("FP16", Precision, "expected Precision"),
    ],
)
def test_coerce_refuses(raw, annotation, fragment):
    with pytest.raises(OverrideError) as info:
        _coerce(raw, annotation)
    assert str(info.value).startswith("x: " + fragment)


# -- applying --------------------------------------------------------------------------------------------------------
def _cfg():
    return run.Partial(train_model, model=run.Config(ModelConfig), data_path="/d", output_dir="/o")


def test_spec_example_overrides_apply_in_order():
    cfg = apply_overrides(_cfg(), [
        "model.hidden_size=1024", "training.learning_rate=2e-4", "data_path=/path/to/data", "output_dir=/tmp/x",
        "model.hidden_size*=2", "training.batch_size+=16",
    ])
    assert cfg.model.hidden_size == 2048
    assert cfg.training.learning_rate == 2e-4  # training was unset: auto-created as run.Config(TrainingConfig)
    assert cfg.training.batch_size == 48  # += on the dataclass default
    assert cfg.data_path == "/path/to/data"


def test_arithmetic_and_int_division():
    cfg = apply_overrides(_cfg(), ["seed/=2", "model.dropout*=2", "model.architecture+=_xl", "seed-=1"])
    assert cfg.seed == 20 and isinstance(cfg.seed, int)
    assert cfg.model.dropout == pytest.approx(0.2)
    assert cfg.model.architecture == "transformer_xl"


def test_lists_tuples_and_dataclass_defaults():
    cfg = apply_overrides(run.Partial(uses_layers), ["layers[1].size*=2", "layers[0].size=1"])
    assert run.build(cfg)() == [1, 32]
    cfg = apply_overrides(run.Partial(everything), ["layers=[1, 2]", "layers[-1]=5", "layers+=[7]"])
    assert cfg.layers == [1, 5, 7]


def test_optional_dataclass_is_created_and_mapping_keys():
    cfg = apply_overrides(run.Partial(everything), ["data.dataset_path=/x", "mapping={'a': {'b': 1}}",
                                                    "mapping.a.b=2"])
    assert cfg.data.dataset_path == "/x" and cfg.data.__fn_or_cls__ is DataConfig
    assert cfg.mapping == {"a": {"b": 2}}


def test_file_override(tmp_path):
    (tmp_path / "m.yaml").write_text("hidden_size: 64\nnum_layers: 2\n")
    (tmp_path / "full.json").write_text(run.Config(ModelConfig, dropout=0.3).to_json())
    cfg = apply_overrides(_cfg(), [f"model=@{tmp_path / 'm.yaml'}"])
    assert (cfg.model.hidden_size, cfg.model.num_layers) == (64, 2)
    cfg = apply_overrides(_cfg(), [f"model=@{tmp_path / 'full.json'}", "model.hidden_size=8"])
    assert (cfg.model.dropout, cfg.model.hidden_size) == (0.3, 8)


def test_factory_override_uses_registry():
    reg = FactoryRegistry()
    from nemorun_core.cli.factories import factory

    @factory(registry=reg)
    def small(hidden_size: int = 3) -> ModelConfig:
        return ModelConfig(hidden_size=hidden_size)

    cfg = apply_overrides(_cfg(), ["model=small(hidden_size=5)"], registry=reg)
    assert cfg.model.hidden_size == 5
    cfg = apply_overrides(_cfg(), ["model=small"], registry=reg)
    assert cfg.model.hidden_size == 3


def _fails(overrides, fragment, cfg=None, registry=None, tmp=None):
    with pytest.raises(OverrideError) as info:
        apply_overrides(cfg if cfg is not None else _cfg(), overrides, registry=registry)
    message = str(info.value)
    assert fragment in message, message
    assert "hint:" in message
    assert repr(overrides[-1]) in message
    return message


def test_apply_errors(tmp_path):
    assert _fails(["model.hiden_size=3"], "no parameter 'hiden_size' for ModelConfig").count("'hidden_size'") == 1
    _fails(["modle.hidden_size=3"], "did you mean 'model'?")
    _fails(["nope=1"], "no parameter 'nope' for train_model")
    msg = _fails(["model.hidden_size=big"], "model.hidden_size: expected int, got 'big'")
    assert msg.startswith("model.hidden_size: expected int, got 'big'")
    _fails(["model.architecture*=2"], "*= does not apply to a str")
    _fails(["seed/=0"], "division by zero")
    _fails(["seed/=5"], "is not whole")
    _fails(["seed+=abc"], "+= needs a number")
    _fails(["debug+=1"], "does not apply to a bool")
    _fails(["seed.x=1"], "seed is an int (42), not a config, so it has no field 'x'")
    _fails(["data_path.x=1"], "data_path is a str ('/d'), not a config")
    _fails(["model.hidden_size[0]=1"], "is an int")
    _fails(["model[0]=1"], "is a config, not a list")
    _fails(["layers[5].size=1"], "index 5 is out of range for a list of 2 items", cfg=run.Partial(uses_layers))
    _fails(["layers.size=1"], "is a tuple, so it has no field 'size'", cfg=run.Partial(uses_layers))
    _fails(["tags+=[1]"], "has no value to apply += to", cfg=run.Partial(everything))
    _fails(["model=@missing.yaml"], "does not exist")
    (tmp_path / "m.txt").write_text("x")
    _fails([f"model=@{tmp_path / 'm.txt'}"], "use a .yaml, .yml, .toml or .json file")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    _fails([f"model=@{tmp_path / 'bad.yaml'}"], "invalid YAML")
    (tmp_path / "keys.yaml").write_text("hiden_size: 3\n")
    _fails([f"model=@{tmp_path / 'keys.yaml'}"], "hiden_size")
    _fails(["model=big"], "unknown factory 'big' for model")


def test_factory_errors():
    from nemorun_core.cli.factories import factory

    reg = FactoryRegistry()

    @factory(registry=reg)
    def small(hidden_size: int = 3) -> ModelConfig:
        return ModelConfig(hidden_size=hidden_size)

    @factory(registry=reg)
    def needs(size: int) -> ModelConfig:
        return ModelConfig(hidden_size=size)

    @factory(registry=reg)
    def broken() -> ModelConfig:
        raise ValueError("no GPU")

    _fails(["model=smal()"], "unknown factory 'smal' for model", registry=reg)
    assert "did you mean 'small'" in _fails(["model=smal"], "unknown factory", registry=reg).lower()
    _fails(["model=small(hiden_size=3)"], "factory small has no parameter 'hiden_size'", registry=reg)
    _fails(["model=small(hidden_size='big')"], "expected int, got 'big'", registry=reg)
    _fails(["model=needs()"], "factory needs needs size", registry=reg)
    _fails(["model=broken"], "factory broken raised ValueError: no GPU", registry=reg)


def test_parse_all_before_applying():
    cfg = _cfg()
    with pytest.raises(OverrideError):
        apply_overrides(cfg, ["seed=1", "bad"])
    assert "seed" not in cfg.__arguments__  # nothing changed: the late typo failed first


def test_layer_dataclass_instance_default_is_not_mutated():
    apply_overrides(run.Partial(uses_layers), ["layers[0].size=99"])
    import inspect

    assert inspect.signature(uses_layers).parameters["layers"].default[0] == Layer()
