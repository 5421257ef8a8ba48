import math
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.config.codegen import to_code
from nemorun_core.errors import SerializationError
from tests.unit.config import _models_alt
from tests.unit.config._models import (
    Color,
    DataConfig,
    Everything,
    ModelConfig,
    Point,
    add,
    concat,
    decorated_train,
    nested_experiment,
    relu,
    train_model,
)

REPO = pathlib.Path(__file__).resolve().parents[3]


def rebuilt(code: str, **namespace):
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace["config"]


def test_nested_experiment_exact_text_and_round_trip():
    cfg = nested_experiment()
    code = cfg.to_code()
    assert code == textwrap.dedent(
        """\
        import nemorun_core as run
        from tests.unit.config._models import DataConfig, ModelConfig, TrainingConfig, train_model

        config = run.Partial(
            train_model,
            model=run.Config(ModelConfig, hidden_size=768, num_heads=12),
            training=run.Config(TrainingConfig, learning_rate=0.0003, tags=['a', 'b']),
            data=run.Config(DataConfig, dataset_path='/data/train'),
            seed=7,
        )
        """
    )
    assert rebuilt(code) == cfg


def test_short_config_stays_on_one_line():
    assert to_code(run.Config(Point, x=1)).splitlines()[-1] == "config = run.Config(Point, x=1)"


def test_every_value_kind_round_trips():
    cfg = run.Config(
        Everything,
        name="it's \"quoted\"\n",
        ratio=float("inf"),
        shape=(3,),
        maybe=None,
        color=Color.BLUE,
        where=pathlib.Path("/tmp/a b"),
        activation=relu,
        nested={"a": [1, None, True], "b": {"c": (1, 2)}},
        items=[run.Config(Point, x=3), {1, 2}, frozenset(), b"raw"],
    )
    cfg.point = Point(1, 0)  # a dataclass value is stored as its config, as in NeMo Run
    code = to_code(cfg)
    assert "from pathlib import Path" in code and "where=Path('/tmp/a b')" in code
    assert "point=run.Config(Point, x=1)" in code  # only fields that differ from defaults
    assert "shape=(3,)" in code and "ratio=float('inf')" in code
    assert rebuilt(code) == cfg


def test_nan_is_written_as_code():
    code = to_code(run.Config(Everything, ratio=float("nan")))
    assert "ratio=float('nan')" in code
    assert math.isnan(rebuilt(code).ratio)


def test_named_and_variadic_positional_arguments():
    # Fiddle stores positional values of named parameters by name; only *args stay positional.
    assert to_code(run.Config(add, 1, b=2)).splitlines()[-1] == "config = run.Config(add, a=1, b=2)"
    cfg = run.Config(concat, "x", "y", sep="-")
    code = to_code(cfg)
    assert code.splitlines()[-1] == "config = run.Config(concat, 'x', 'y', sep='-')"
    assert rebuilt(code) == cfg and run.build(rebuilt(code)) == "x-y"


def test_shared_nodes_become_variables_and_stay_shared():
    shared = run.Config(ModelConfig, hidden_size=64, num_heads=4)
    cfg = run.Config(dict, teacher=shared, student=[shared, run.Config(ModelConfig)])
    code = to_code(cfg)
    assert "model_config = run.Config(ModelConfig, hidden_size=64, num_heads=4)" in code
    assert code.count("hidden_size=64") == 1
    out = rebuilt(code)
    assert out == cfg and out.teacher is out.student[0]


def test_name_clashes_get_aliases():
    cfg = run.Config(dict, a=run.Config(ModelConfig), b=run.Config(_models_alt.ModelConfig, width=2))
    code = to_code(cfg)
    assert "from tests.unit.config._models_alt import ModelConfig as _models_alt_ModelConfig" in code
    assert "from tests.unit.config._models import ModelConfig\n" in code
    assert rebuilt(code) == cfg


def test_imports_sorted_and_deduplicated():
    cfg = run.Config(dict, a=run.Config(Point), b=run.Config(Point), c=run.Config(DataConfig, dataset_path="d"))
    imports = [line for line in to_code(cfg).splitlines() if line.startswith("from ")]
    assert imports == ["from tests.unit.config._models import DataConfig, Point"]


def test_run_partial_wrapper_target_is_imported_by_name():
    cfg = run.Partial(decorated_train, model=run.Config(ModelConfig), seed=1)
    code = to_code(cfg)
    assert "from tests.unit.config._models import ModelConfig, decorated_train" in code
    assert rebuilt(code) == cfg


def test_long_nested_call_is_indented():
    cfg = run.Partial(train_model, model=run.Config(ModelConfig, architecture="a" * 60, hidden_size=1024,
                                                      num_heads=16, activation="swiglu"))
    lines = to_code(cfg).splitlines()
    assert "    model=run.Config(" in lines
    assert "        ModelConfig," in lines and "        architecture='" + "a" * 60 + "'," in lines
    assert "    )," in lines
    assert all(len(line) <= 100 for line in lines)


def test_lambda_is_rejected_with_its_path():
    cfg = run.Config(dict, inner=run.Config(Everything, activation=lambda x: x))
    with pytest.raises(SerializationError, match=r"^inner\.activation: .*lambda"):
        to_code(cfg)


def test_unsupported_value_is_rejected_with_its_path():
    cfg = run.Config(dict, handle=object())
    with pytest.raises(SerializationError, match=r"^handle: a value of type object cannot be written as code"):
        to_code(cfg)


def test_main_objects_are_listed_and_referenced_bare(tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(textwrap.dedent(
        """
        import dataclasses
        import nemorun_core as run
        from tests.unit.config._models import ModelConfig

        @dataclasses.dataclass
        class LocalModel:
            width: int = 1

        def train(model, base: ModelConfig, epochs: int = 1):
            return model

        cfg = run.Partial(train, model=run.Config(LocalModel, width=3), base=run.Config(ModelConfig))
        code = cfg.to_code()
        print(code)
        namespace = {"LocalModel": LocalModel, "train": train}
        exec(code, namespace)
        assert namespace["config"] == cfg, "generated code did not rebuild the config"
        """
    ))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "# defined in the launching script: LocalModel, train" in proc.stdout
    assert "config = run.Partial(train, model=run.Config(LocalModel, width=3), base=run.Config(ModelConfig))" in (
        proc.stdout
    )
    assert "from __main__" not in proc.stdout
