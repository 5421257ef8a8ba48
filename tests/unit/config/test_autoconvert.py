import dataclasses
import inspect

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.config.autoconvert import to_config
from tests.unit.config._models import Color, ModelConfig, Point, TrainingConfig, small_model, train_recipe


@dataclasses.dataclass
class Holder:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    points: list = dataclasses.field(default_factory=list)
    color: Color = Color.RED


def test_returns_config_with_only_changed_fields():
    cfg = small_model()
    assert type(cfg) is run.Config
    assert cfg == run.Config(ModelConfig, hidden_size=256, num_layers=4)
    assert set(cfg.__arguments__) == {"hidden_size", "num_layers"}


def test_nested_dataclasses_and_containers_are_converted():
    @run.autoconvert
    def factory():
        return {"h": Holder(model=ModelConfig(hidden_size=64, num_heads=4), points=[Point(1, 2), 3]), "n": (Point(),)}

    out = factory()
    assert out == {
        "h": run.Config(Holder, model=run.Config(ModelConfig, hidden_size=64, num_heads=4),
                        points=[run.Config(Point, x=1, y=2), 3]),
        "n": (run.Config(Point),),
    }
    assert run.build(out["h"]) == Holder(model=ModelConfig(hidden_size=64, num_heads=4), points=[Point(1, 2), 3])


def test_default_factory_fields_equal_to_default_are_left_out():
    assert to_config(Holder()) == run.Config(Holder)
    assert set(to_config(Holder()).__arguments__) == set()
    assert set(to_config(Holder(color=Color.BLUE)).__arguments__) == {"color"}


def test_existing_configs_are_kept():
    cfg = run.Config(Point, x=5)

    @run.autoconvert
    def factory():
        return cfg

    assert factory() is cfg


def test_partial_option_makes_roots_partial():
    @run.autoconvert(partial=True)
    def recipe():
        return TrainingConfig(batch_size=8, tags=["x"])

    out = recipe()
    assert type(out) is run.Partial and out == run.Partial(TrainingConfig, batch_size=8, tags=["x"])
    roots = train_recipe()
    assert [type(r) for r in roots] == [run.Partial, run.Partial]

    @run.autoconvert(partial=True)
    def from_config():
        return run.Config(Holder, model=ModelConfig())

    converted = from_config()
    assert type(converted) is run.Partial and converted.__fn_or_cls__ is Holder


def test_wrapper_keeps_name_doc_signature_and_unwraps_when_configured():
    assert small_model.__name__ == "small_model" and small_model.__doc__ == "A small model."
    assert str(inspect.signature(small_model)) == "() -> 'ModelConfig'"
    raw = small_model.__nemorun_wrapped__
    assert raw() == ModelConfig(hidden_size=256, num_layers=4)
    # Configuring the factory configures the original function, so building gives the object, not a config.
    assert run.build(run.Config(small_model)) == ModelConfig(hidden_size=256, num_layers=4)


def test_configured_factory_serializes_by_name():
    cfg = run.Config(small_model)
    assert serialize.to_json(cfg).count("tests.unit.config._models:small_model") == 1
    assert serialize.from_json(serialize.to_json(cfg)) == cfg
    assert "_pickle_" not in str(serialize.encode(cfg, payload=True))
