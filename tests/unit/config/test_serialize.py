import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.errors import SerializationError
from tests.unit.config._models import (
    Color,
    Everything,
    ModelConfig,
    Point,
    concat,
    nested_experiment,
    relu,
    train_model,
)

REPO = pathlib.Path(__file__).resolve().parents[3]

FORMATS = {
    "yaml": (serialize.to_yaml, serialize.from_yaml),
    "toml": (serialize.to_toml, serialize.from_toml),
    "json": (serialize.to_json, serialize.from_json),
}


def everything():
    return run.Config(
        Everything,
        name="näme: with 'quotes'",
        ratio=0.5,
        shape=(1, 2, 3),
        maybe=None,
        color=Color.BLUE,
        where=pathlib.Path("/data/a b"),
        point=Point(3, 4),
        activation=relu,
        nested={"none": None, "list": [None, 1, (2, 3)], "deep": {"p": run.Config(Point, x=1)}},
        items=[run.Partial(Point, y=2), [], {}, Point(5, 6)],
    )


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("make", [nested_experiment, everything], ids=["nested", "everything"])
def test_round_trip_gives_an_equal_config(fmt, make):
    dump, load = FORMATS[fmt]
    cfg = make()
    text = dump(cfg)
    back = load(text, trusted=True)  # nemorun's own output: a dataclass value comes back as the value
    assert back == cfg
    assert type(back) is type(cfg)
    assert dump(back) == text  # stable: a second trip writes the same text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip_preserves_value_types(fmt):
    dump, load = FORMATS[fmt]
    back = load(dump(everything()), trusted=True)
    assert back.shape == (1, 2, 3) and isinstance(back.shape, tuple)
    assert back.maybe is None
    assert back.color is Color.BLUE
    assert back.where == pathlib.Path("/data/a b") and isinstance(back.where, pathlib.Path)
    assert back.point == run.Config(Point, x=3, y=4)  # an argument's dataclass value is stored as its config
    assert back.items[3] == Point(5, 6) and isinstance(back.items[3], Point)  # inside a container it stays a value
    assert back.activation is relu
    assert back.nested["list"] == [None, 1, (2, 3)]
    assert type(back.items[0]) is run.Partial
    untrusted = load(dump(everything()))  # the default for a user's file: nothing is called while it is read
    assert untrusted.point == run.Config(Point, x=3, y=4) and untrusted.color is Color.BLUE
    assert untrusted.items[3] == run.Config(Point, x=5, y=6)


def test_yaml_form_is_readable():
    text = run.Config(ModelConfig, hidden_size=768).to_yaml()
    assert text == "_target_: tests.unit.config._models:ModelConfig\nhidden_size: 768\n"
    assert json.loads(nested_experiment().to_json())["_partial_"] is True


def test_variadic_positional_arguments_round_trip():
    cfg = run.Config(concat, "a", "b", sep="+")
    assert serialize.from_yaml(serialize.to_yaml(cfg)) == cfg


def test_decode_with_build_returns_objects():
    data = serialize.encode(nested_experiment())
    task = serialize.decode(data, build=True)
    assert task()["model"] == ModelConfig(hidden_size=768, num_heads=12)


def test_lambda_is_rejected_in_portable_form_with_path():
    cfg = run.Config(dict, inner=run.Config(Everything, activation=lambda x: x))
    with pytest.raises(SerializationError) as info:
        cfg.to_yaml()
    assert info.value.path == "inner.activation"
    assert "lambda" in str(info.value) and "define it at module level" in str(info.value)


def test_local_function_is_rejected_in_portable_form():
    def local(x: float) -> float:
        return x

    with pytest.raises(SerializationError, match=r"^activation: .*test_local_function_is_rejected"):
        run.Config(Everything, activation=local).to_json()


def test_lambda_is_pickled_in_payload_form():
    data = serialize.encode(run.Config(Everything, activation=lambda x: x + 1), payload=True)
    assert "_pickle_" in data["activation"]
    assert serialize.decode(json.loads(json.dumps(data)), build=True).activation(1) == 2


def test_unexportable_value_names_its_path():
    with pytest.raises(SerializationError, match=r"^nested\.handle: a value of type object cannot be exported"):
        run.Config(Everything, nested={"handle": object()}).to_toml()


def test_reserved_keys_and_non_string_keys_are_refused():
    with pytest.raises(SerializationError, match="reserved"):
        run.Config(Everything, nested={"_target_": 1}).to_json()
    with pytest.raises(SerializationError, match="keys must be strings"):
        run.Config(Everything, nested={1: 1}).to_json()


def test_unknown_target_reports_path():
    with pytest.raises(SerializationError, match=r"^model: .*has no attribute 'Nope'"):
        serialize.from_dict({"_target_": "tests.unit.config._models:train_model",
                             "model": {"_target_": "tests.unit.config._models:Nope"}})


def test_load_file_by_extension(tmp_path):
    cfg = nested_experiment()
    for suffix, dump in ((".yaml", serialize.to_yaml), (".toml", serialize.to_toml), (".json", serialize.to_json)):
        path = tmp_path / f"cfg{suffix}"
        path.write_text(dump(cfg))
        assert serialize.load_file(path) == cfg
    with pytest.raises(SerializationError, match="use a .yaml, .yml, .toml or .json file"):
        serialize.load_file(tmp_path / "cfg.ini")
    with pytest.raises(SerializationError, match="does not exist"):
        serialize.load_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(SerializationError, match="invalid YAML at line"):
        serialize.load_file(bad)


def test_main_targets_run_from_payload_alone_in_another_process(tmp_path):
    """The real test of by-value pickling: the reader has only the payload, not the launching script."""
    script = tmp_path / "launch.py"
    payload = tmp_path / "payload.json"
    script.write_text(textwrap.dedent(
        f"""
        import dataclasses, json
        import nemorun_core as run
        from nemorun_core.config import serialize
        from tests.unit.config._models_alt import ModelConfig  # importable, and free of Fiddle like a user's module

        @dataclasses.dataclass
        class Optimizer:
            lr: float = 0.1

        def scale(x):
            return x * 3

        def train(opt: Optimizer, model: ModelConfig, fn=None, steps: int = 1):
            return {{"lr": opt.lr, "width": model.width, "fn": fn(steps), "type": type(opt).__name__}}

        cfg = run.Partial(train, opt=run.Config(Optimizer, lr=0.5), model=run.Config(ModelConfig, width=64),
                          fn=scale, steps=2)
        # The portable (store) form names them; only this script can resolve those names.
        assert '"__main__:train"' in serialize.to_json(cfg)
        with open({str(payload)!r}, "w") as f:
            json.dump(serialize.encode(cfg, payload=True), f)
        """
    ))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(script)], check=True, env=env, cwd=tmp_path)
    data = json.loads(payload.read_text())
    assert data["_target_"] == "__main__:train" and "_pickle_" in data
    assert "_pickle_" not in data["model"]  # importable targets stay by name
    reader = (
        "import json, sys\n"
        "from nemorun_core.config import serialize\n"
        "task = serialize.decode(json.load(open(sys.argv[1])), build=True)\n"
        "print(json.dumps(task()))\n"
        "assert 'fiddle' not in sys.modules, 'the runner path must not import Fiddle'\n"
    )
    out = subprocess.run([sys.executable, "-c", reader, str(payload)], capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"lr": 0.5, "width": 64, "fn": 6, "type": "Optimizer"}
