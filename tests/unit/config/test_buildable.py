import functools

import pytest

import nemorun_core as run
from nemorun_core.errors import BuildError, ConfigError, ConfigTypeError, UnknownParameterError
from tests.unit.config._models import (
    DataConfig,
    ModelConfig,
    TrainingConfig,
    add,
    fails,
    nested_experiment,
    train_model,
)


def test_unknown_argument_at_creation_suggests_closest():
    with pytest.raises(UnknownParameterError) as info:
        run.Config(ModelConfig, hiden_size=768)
    assert str(info.value) == "no parameter 'hiden_size' for ModelConfig; did you mean 'hidden_size'?"
    assert info.value.name == "hiden_size" and "hidden_size" in info.value.valid


def test_unknown_argument_on_set_and_get():
    cfg = run.Config(ModelConfig)
    with pytest.raises(UnknownParameterError, match="did you mean 'num_layers'"):
        cfg.num_layer = 3
    with pytest.raises(UnknownParameterError, match="did you mean 'dropout'"):
        cfg.dropot
    with pytest.raises(AttributeError):  # still an AttributeError for hasattr/getattr callers
        cfg.nothing_like_it


def test_unknown_argument_without_close_match_lists_valid_names():
    with pytest.raises(UnknownParameterError, match="valid parameters: a, b"):
        run.Config(add, zzz=1)


def test_type_error_on_creation_and_set_names_target_and_parameter():
    with pytest.raises(ConfigTypeError, match=r"^ModelConfig\.hidden_size: expected int, got 'big'$"):
        run.Config(ModelConfig, hidden_size="big")
    cfg = run.Config(TrainingConfig)
    with pytest.raises(ConfigTypeError, match=r"^TrainingConfig\.learning_rate: expected float, got None "
                       r"\(None is not allowed here"):
        cfg.learning_rate = None
    cfg.learning_rate = 1  # ints are valid floats
    cfg.scheduler = None  # Optional accepts None


def test_optional_mismatch_reports_inner_reason():
    cfg = run.Config(TrainingConfig)
    with pytest.raises(ConfigTypeError) as info:
        cfg.tags = ["a", 1]
    assert str(info.value) == (
        "TrainingConfig.tags: expected Optional[list[str]], got ['a', 1] (item 1 (1) wrong type)"
    )
    with pytest.raises(ConfigTypeError, match=r"expected Optional\[list\[str\]\], got 'a'$"):
        cfg.tags = "a"


def test_nested_config_of_wrong_class_is_refused():
    with pytest.raises(ConfigTypeError, match="a Config of DataConfig builds the wrong type"):
        run.Partial(train_model, model=run.Config(DataConfig, dataset_path="x"))


def test_task_reference_is_accepted_anywhere():
    run.Config(add, a="{prepare.output}")


def test_build_nested_tree():
    result = nested_experiment().build()()
    assert result["model"] == ModelConfig(hidden_size=768, num_heads=12)
    assert result["data"] == DataConfig(dataset_path="/data/train")
    assert result["seed"] == 7


def test_partial_builds_functools_partial():
    built = run.build(run.Partial(add, b=5))
    assert isinstance(built, functools.partial) and built(1) == 6


def test_shared_node_is_built_once():
    shared = run.Config(ModelConfig)
    built = run.build(run.Config(dict, a=shared, b=[shared]))
    assert built["a"] is built["b"][0]


def test_build_error_names_the_failing_node():
    cfg = nested_experiment()
    cfg.model = run.Config(ModelConfig, hidden_size=10, num_heads=3)
    with pytest.raises(BuildError) as info:
        cfg.build()
    assert info.value.path == "model"
    assert "building ModelConfig failed: AssertionError: hidden_size must be divisible by num_heads" in str(info.value)
    assert isinstance(info.value.cause, AssertionError)


def test_build_error_path_inside_lists_and_at_root():
    with pytest.raises(BuildError) as info:
        run.build(run.Config(dict, steps=[run.Config(add, a=1), run.Config(fails, x=2)]))
    assert info.value.path == "steps[1]" and "RuntimeError: boom 2" in str(info.value)
    with pytest.raises(BuildError, match=r"^<root>: building fails failed"):
        run.build(run.Config(fails))


def test_a_class_s_own_field_check_is_named_at_its_place_in_the_config():
    # SlurmExecutor's __post_init__ says "SlurmExecutor.nodes: ..."; inside a config that is the node's field
    cfg = run.Config(dict, executor=run.Config(run.SlurmExecutor, partition="p", nodes=-1))
    with pytest.raises(BuildError) as info:
        run.build(cfg)
    assert info.value.path == "executor.nodes" and isinstance(info.value.cause, ConfigError)
    assert str(info.value) == "executor.nodes: must be an int >= 1, got -1"
    with pytest.raises(BuildError, match=r"^executor\.nodes: must be an int >= 1"):  # a config built at its place
        run.build(run.Config(run.SlurmExecutor, partition="p", nodes=-1), path="executor")
    with pytest.raises(BuildError, match=r"^<root>: building SlurmExecutor failed: .*SlurmExecutor\.nodes: must"):
        run.build(run.Config(run.SlurmExecutor, partition="p", nodes=-1))  # at the root: the class's own words


def test_non_callable_target_is_refused():
    with pytest.raises(TypeError, match="needs a function or class"):
        run.Config(42)


def test_partial_function_target_is_unwrapped():
    from tests.unit.config._models import decorated_train

    assert run.Partial(decorated_train).__fn_or_cls__ is decorated_train.__nemorun_wrapped__


def test_methods_shadow_only_for_reading():
    cfg = run.Config(dict, build=1)
    assert cfg.__arguments__["build"] == 1
    assert callable(cfg.build)


def test_unset_required_parameter_is_not_called_unknown():
    import nemorun_core as run

    def needs(m: int, n: int = 1):
        return m + n

    cfg = run.Config(needs)
    with pytest.raises(AttributeError) as info:
        cfg.m
    assert "not set and has no default" in str(info.value) and "did you mean" not in str(info.value)
