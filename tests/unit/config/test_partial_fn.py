import inspect
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import types

import cloudpickle
import pytest

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.config.partial_fn import PartialFunction
from tests.unit.config import _models
from tests.unit.config._models import ModelConfig, decorated_train

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_wrapper_keeps_function_metadata():
    fn = decorated_train.__nemorun_wrapped__
    assert isinstance(decorated_train, PartialFunction)
    assert decorated_train.__name__ == "decorated_train"
    assert decorated_train.__qualname__ == "decorated_train"
    assert decorated_train.__module__ == "tests.unit.config._models"
    assert decorated_train.__doc__ == "Decorated training function."
    assert decorated_train.__wrapped__ is fn
    assert str(inspect.signature(decorated_train)) == str(inspect.signature(fn))
    assert not isinstance(fn, PartialFunction)


def test_plain_call_without_executor():
    assert decorated_train(ModelConfig(hidden_size=64), seed=1) == 65
    assert decorated_train.executor is None


def test_partial_method_and_configuring_the_wrapper_configure_the_function():
    fn = decorated_train.__nemorun_wrapped__
    p = decorated_train.partial(model=run.Config(ModelConfig), seed=3)
    assert type(p) is run.Partial and p.__fn_or_cls__ is fn
    assert run.Config(decorated_train, model=run.Config(ModelConfig)).__fn_or_cls__ is fn
    assert p.build()() == 515


def test_configured_wrapper_serializes_by_name():
    p = decorated_train.partial(model=run.Config(ModelConfig), seed=3)
    text = p.to_yaml()
    assert "_target_: tests.unit.config._models:decorated_train" in text
    assert serialize.from_yaml(text) == p
    assert "_pickle_" not in str(serialize.encode(p, payload=True))


def test_decorator_with_executor_argument_and_with_executor():
    executor = object()

    @run.partial(executor=executor)
    def job(x: int) -> int:
        return x

    assert isinstance(job, PartialFunction) and job.executor is executor
    other = object()
    bound = decorated_train.with_executor(other)
    assert bound is not decorated_train and bound.executor is other and decorated_train.executor is None
    assert bound.__nemorun_wrapped__ is decorated_train.__nemorun_wrapped__


def test_bound_call_goes_through_launch_run(monkeypatch):
    calls = []
    fake = types.ModuleType("nemorun_core.experiment.launch")
    fake.run = lambda task, executor=None, **kwargs: calls.append((task, executor, kwargs)) or "result"
    monkeypatch.setitem(sys.modules, "nemorun_core.experiment.launch", fake)
    executor = object()
    assert decorated_train.with_executor(executor)(run.Config(ModelConfig), seed=5) == "result"
    [(task, used, kwargs)] = calls
    assert used is executor and kwargs == {"name": "decorated_train"}
    assert task == run.Partial(decorated_train, run.Config(ModelConfig), seed=5)


@pytest.mark.local
def test_bound_call_runs_on_local_executor(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bound = decorated_train.with_executor(run.LocalExecutor())
    assert bound(run.Config(ModelConfig, hidden_size=64, num_heads=4), seed=2) == 66


def test_main_delegates_to_cli(monkeypatch):
    calls = []
    fake = types.ModuleType("nemorun_core.cli")
    fake.main = lambda fn, argv: calls.append((fn, argv)) or 0
    monkeypatch.setitem(sys.modules, "nemorun_core.cli", fake)
    assert decorated_train.main(["seed=3"]) == 0
    assert calls == [(decorated_train, ["seed=3"])]


def test_pickles_by_name_when_importable():
    assert pickle.loads(pickle.dumps(decorated_train)) is decorated_train
    assert cloudpickle.loads(cloudpickle.dumps(decorated_train)) is decorated_train


def test_bound_copy_pickles_through_the_named_wrapper():
    bound = decorated_train.with_executor("exec")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(bound))
        assert back is not bound and back.executor == "exec"
        assert back.__nemorun_wrapped__ is decorated_train.__nemorun_wrapped__


def test_main_defined_wrapper_survives_cloudpickle_in_a_fresh_process(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(
        """
        import sys
        import cloudpickle
        import nemorun_core as run

        @run.partial
        def train(x: int = 1) -> int:
            return x * 10

        sys.stdout.buffer.write(cloudpickle.dumps(train))
        """
    ))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    blob = subprocess.run([sys.executable, str(script)], capture_output=True, env=env, check=True).stdout
    loader = "import pickle, sys; fn = pickle.loads(sys.stdin.buffer.read()); print(type(fn).__name__, fn(4))"
    out = subprocess.run([sys.executable, "-c", loader], input=blob, capture_output=True, env=env, check=True)
    assert out.stdout.decode().strip() == "PartialFunction 40"


def test_module_attribute_is_the_wrapper():
    assert serialize.resolve("tests.unit.config._models:decorated_train") is decorated_train.__nemorun_wrapped__
    assert _models.decorated_train is decorated_train
