import fiddle as fdl
import pytest

import nemorun_core as run
from nemorun_core.config.validation import REGISTRY, RuleRegistry, validate, validation_rule
from nemorun_core.errors import ConfigTypeError, ValidationError
from tests.unit.config._models import (
    BigModelConfig,
    DataConfig,
    ModelConfig,
    TrainingConfig,
    add,
    decorated_train,
    nested_experiment,
    train_model,
)


@pytest.fixture
def rules():
    return RuleRegistry()


def test_valid_tree_passes(rules):
    validate(nested_experiment(), registry=rules)


def test_type_error_reports_full_path_from_root(rules):
    # Plain Fiddle configs are not checked on set: the wrong value only surfaces when the whole tree is validated.
    cfg = nested_experiment()
    cfg.model = fdl.Config(ModelConfig, hidden_size="big")
    with pytest.raises(ValidationError) as info:
        validate(cfg, registry=rules)
    assert str(info.value) == "model.hidden_size: expected int, got 'big'"
    assert info.value.path == "model.hidden_size"
    assert isinstance(info.value.problems[0], ConfigTypeError)


def test_value_injected_after_creation_is_caught_with_path(rules):
    cfg = nested_experiment()
    cfg.training.__arguments__["tags"] = ["a", 1]
    with pytest.raises(ValidationError, match=r"^training\.tags: expected Optional\[list\[str\]\], got \['a', 1\] "
                       r"\(item 1 \(1\) wrong type\)$"):
        validate(cfg, registry=rules)


def test_missing_required_argument_names_path_and_fix(rules):
    cfg = nested_experiment()
    cfg.data = run.Config(DataConfig)
    with pytest.raises(ValidationError) as info:
        validate(cfg, registry=rules)
    assert str(info.value) == (
        "data.dataset_path: missing required argument; set it with data.dataset_path=..."
    )


def test_root_partial_must_be_complete_but_nested_partial_may_stay_open(rules):
    with pytest.raises(ValidationError, match="^a: missing required argument"):
        validate(run.Partial(add), registry=rules)
    validate(run.Config(train_model, model=run.Partial(ModelConfig), training=run.Partial(TrainingConfig),
                        data=run.Partial(DataConfig)), registry=rules)


def test_task_reference_strings_fit_any_annotation(rules):
    cfg = run.Partial(add, a="{prepare.output}")
    validate(cfg, registry=rules)


def test_paths_through_lists_and_dicts(rules):
    cfg = run.Config(dict, layers=[run.Config(ModelConfig), fdl.Config(ModelConfig, num_layers="x")])
    with pytest.raises(ValidationError, match=r"^layers\[1\]\.num_layers: expected int"):
        validate(cfg, registry=rules)


def test_rule_for_class_applies_to_nested_node_with_path(rules):
    @validation_rule(ModelConfig, registry=rules)
    def small_enough(cfg):
        if cfg.hidden_size > 512:
            return f"hidden_size {cfg.hidden_size} is too big"

    with pytest.raises(ValidationError) as info:
        validate(nested_experiment(), registry=rules)
    assert str(info.value) == "model: rule 'small_enough' failed: hidden_size 768 is too big"
    assert info.value.path == "model"


def test_rule_applies_to_subclasses_and_sees_defaults(rules):
    seen = []
    validation_rule(ModelConfig, registry=rules)(lambda cfg: seen.append(cfg.num_layers))
    validate(run.Config(dict, a=run.Config(BigModelConfig), b=run.Config(DataConfig, dataset_path="p")),
             registry=rules)
    assert seen == [12]


def test_rule_raising_or_returning_false_fails(rules):
    @validation_rule(TrainingConfig, registry=rules)
    def positive_lr(cfg):
        assert cfg.learning_rate > 0, "learning_rate must be positive"

    @validation_rule(DataConfig, registry=rules, name="workers")
    def enough_workers(cfg):
        return cfg.num_workers >= 8

    cfg = nested_experiment()
    cfg.training.learning_rate = -1.0
    with pytest.raises(ValidationError) as info:
        validate(cfg, all_errors=True, registry=rules)
    text = str(info.value)
    assert "training: rule 'positive_lr' failed: learning_rate must be positive" in text
    assert "data: rule 'workers' failed: the rule returned False" in text


def test_rule_for_a_function_target_unwraps_run_partial(rules):
    calls = []
    validation_rule(decorated_train, registry=rules)(lambda cfg: calls.append(cfg.seed))
    validate(run.Partial(decorated_train, model=run.Config(ModelConfig), seed=3), registry=rules)
    validate(run.Partial(add, a=1), registry=rules)
    assert calls == [3]


def test_root_rule_runs_on_root_only(rules):
    @validation_rule(registry=rules)
    def has_seed(cfg):
        if cfg.__fn_or_cls__ is train_model and cfg.seed == 42:
            return "set an explicit seed"

    validate(nested_experiment(), registry=rules)
    cfg = nested_experiment()
    cfg.seed = 42
    with pytest.raises(ValidationError, match=r"^<root train_model>: rule 'has_seed' failed: set an explicit seed"):
        validate(cfg, registry=rules)


def test_all_errors_lists_every_problem_and_skips_rules_of_broken_nodes(rules):
    calls = []
    validation_rule(ModelConfig, registry=rules)(lambda cfg: calls.append(cfg))
    cfg = nested_experiment()
    cfg.model = fdl.Config(ModelConfig, hidden_size="big", num_layers="deep")
    cfg.data = run.Config(DataConfig)
    with pytest.raises(ValidationError) as info:
        validate(cfg, all_errors=True, registry=rules)
    error = info.value
    assert [p.path for p in error.problems] == ["model.hidden_size", "model.num_layers", "data.dataset_path"]
    assert str(error).startswith("3 problems in the configuration:\n  model.hidden_size: expected int")
    assert error.path == "model.hidden_size"
    assert calls == []


def test_first_error_mode_stops_early(rules):
    cfg = nested_experiment()
    cfg.model = fdl.Config(ModelConfig, hidden_size="big", num_layers="deep")
    with pytest.raises(ValidationError) as info:
        validate(cfg, registry=rules)
    assert len(info.value.problems) == 1


def test_shared_node_is_checked_once(rules):
    calls = []
    validation_rule(ModelConfig, registry=rules)(lambda cfg: calls.append(1))
    shared = run.Config(ModelConfig)
    validate(run.Config(dict, a=shared, b=[shared]), registry=rules)
    assert calls == [1]


def test_handles_unregister(rules):
    rule = validation_rule(ModelConfig, registry=rules)(lambda cfg: "always fails")
    with pytest.raises(ValidationError):
        validate(run.Config(ModelConfig), registry=rules)
    rule.remove()
    rule.remove()  # harmless twice
    validate(run.Config(ModelConfig), registry=rules)
    with validation_rule(ModelConfig, registry=rules)(lambda cfg: "fails") as scoped:
        assert scoped in rules.rules()
    assert rules.rules() == []


def test_decorated_rule_stays_callable(rules):
    @validation_rule(ModelConfig, registry=rules)
    def check(cfg):
        """Docs survive."""
        return "no"

    assert check(None) == "no"
    assert check.__name__ == "check" and check.__doc__ == "Docs survive."


def test_default_registry_and_public_api_with_isolation():
    cfg = run.Config(ModelConfig, hidden_size=1024)
    with REGISTRY.isolated():
        @run.validation_rule(ModelConfig)
        def never_1024(c):
            if c.hidden_size == 1024:
                return "1024 is reserved"

        with pytest.raises(ValidationError, match="never_1024"):
            cfg.validate()
        with pytest.raises(ValidationError, match="never_1024"):
            run.validate(cfg)
    cfg.validate()  # the rule left with the block


def test_rejects_non_callable_target(rules):
    with pytest.raises(TypeError, match="class or function"):
        validation_rule(42, registry=rules)(lambda cfg: None)


def _positional_only(a, /, b=1):
    return a + b


def test_positional_only_arguments_count_as_set(rules):
    validate(run.Config(_positional_only, 1), registry=rules)
    with pytest.raises(ValidationError, match="^a: missing required argument"):
        validate(run.Config(_positional_only), registry=rules)
