"""``@run.cli.factory``: registration, where factories are offered, whole-task factories, isolation."""

from __future__ import annotations

import pytest

import nemorun_core as run
from nemorun_core.cli.argv import UsageError
from nemorun_core.cli.factories import REGISTRY, FactoryRegistry, isolated_registry
from nemorun_core.errors import OverrideError
from tests.unit.cli._targets import ModelConfig, TrainingConfig, train_model

BASE = ["data_path=/d", "output_dir=/o"]


@pytest.fixture()
def reg():
    with isolated_registry() as registry:
        yield registry


def test_decorator_returns_the_function_and_registers(reg):
    @run.cli.factory
    def my_model(hidden_size: int = 3) -> ModelConfig:
        return run.Config(ModelConfig, hidden_size=hidden_size)

    assert my_model(hidden_size=4).hidden_size == 4  # still a plain function
    assert [f.name for f in reg.for_parameter(train_model, "model", ModelConfig)] == ["my_model"]
    assert reg.for_parameter(train_model, "training", TrainingConfig) == []  # return type does not fit


def test_factory_by_call_and_by_name(reg):
    @run.cli.factory
    def my_model(hidden_size: int = 3) -> ModelConfig:
        return run.Config(ModelConfig, hidden_size=hidden_size)

    out = run.cli.main(train_model, ["model=my_model(hidden_size=3)", *BASE])
    assert out["hidden_size"] == 3
    out = run.cli.main(train_model, ["model=my_model", "model.hidden_size+=1", *BASE])
    assert out["hidden_size"] == 4


def test_plain_object_is_autoconverted(reg):
    @run.cli.factory(name="tiny")
    def make() -> ModelConfig:
        return ModelConfig(hidden_size=16)

    cfg = run.cli.main(train_model, ["model=tiny", "--dryrun", *BASE])
    assert run.is_buildable(cfg.model) if hasattr(run, "is_buildable") else cfg.model.__fn_or_cls__ is ModelConfig
    assert cfg.model.hidden_size == 16


def test_targeted_factory_fits_any_annotation(reg):
    @run.cli.factory(target=train_model, target_arg="data_path")
    def imagenet() -> str:
        return "/datasets/imagenet"

    assert run.cli.main(train_model, ["data_path=imagenet()", "output_dir=/o"])["data_path"] == "/datasets/imagenet"
    # a bare word for a str parameter stays a string: factories are called only with ()
    assert run.cli.main(train_model, ["data_path=imagenet", "output_dir=/o"])["data_path"] == "imagenet"


def test_targeted_factory_is_not_offered_elsewhere(reg):
    @run.cli.factory(target=train_model, target_arg="model")
    def only_here() -> ModelConfig:
        return ModelConfig()

    def other(model: ModelConfig):
        return model

    assert reg.for_parameter(other, "model", ModelConfig) == []
    assert [f.name for f in reg.for_parameter(train_model.__nemorun_wrapped__, "model", ModelConfig)] == ["only_here"]


def test_task_factory_with_dash_factory(reg):
    @run.cli.factory(target=train_model)
    def quick() -> run.Partial:
        return run.Partial(train_model, model=run.Config(ModelConfig, hidden_size=8), training=run.Config(
            TrainingConfig, epochs=1), data_path="/q", output_dir="/qo")

    out = run.cli.main(train_model, ["--factory", "quick", "model.hidden_size*=4"])
    assert (out["hidden_size"], out["data_path"]) == (32, "/q")
    assert [f.name for f in reg.for_task(train_model)] == ["quick"]


def test_unknown_factory_suggests_among_valid_ones(reg):
    @run.cli.factory
    def my_model() -> ModelConfig:
        return ModelConfig()

    @run.cli.factory
    def my_training() -> TrainingConfig:
        return TrainingConfig()

    with pytest.raises(OverrideError, match="did you mean 'my_model'"):
        run.cli.main(train_model, ["model=my_modle", *BASE])
    with pytest.raises(OverrideError) as info:
        run.cli.main(train_model, ["model=zzz()", *BASE])
    assert "factories for model: my_model" in str(info.value)  # my_training does not fit ModelConfig
    with pytest.raises(UsageError, match="unknown factory 'quick'"):
        run.cli.main(train_model, ["--factory", "quick"])


def test_target_default_factory_fills_a_required_parameter(reg):
    @run.cli.factory(target=train_model, target_arg="data_path", is_target_default=True)
    def default_data() -> str:
        return "/default/data"

    assert run.cli.main(train_model, ["output_dir=/o"])["data_path"] == "/default/data"


def test_reregistering_replaces_and_unregister_removes():
    reg = FactoryRegistry()

    def a() -> ModelConfig:
        return ModelConfig(hidden_size=1)

    def b() -> ModelConfig:
        return ModelConfig(hidden_size=2)

    run.cli.factory(a, name="m", registry=reg)
    run.cli.factory(b, name="m", registry=reg)
    assert [f.fn for f in reg.all()] == [b]
    assert reg.unregister("m") == 1 and reg.all() == []


def test_isolated_registry_restores_global_state():
    before = REGISTRY.all()
    with isolated_registry():
        @run.cli.factory
        def temp() -> ModelConfig:
            return ModelConfig()

        assert len(REGISTRY.all()) == 1
    assert REGISTRY.all() == before


def test_target_arg_needs_target():
    with pytest.raises(TypeError, match="needs target="):
        run.cli.factory(target_arg="model")
