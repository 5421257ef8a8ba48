import pytest
from rich.console import Console
from rich.text import Text

import nemorun_core as run
from nemorun_core.config.tree import Change, diff, flatten, walk
from nemorun_core.errors import ConfigTypeError, UnknownParameterError
from tests.unit.config._models import BigModelConfig, DataConfig, ModelConfig, Point, TrainingConfig, nested_experiment


# -- walk ------------------------------------------------------------------------------------------------------------
def test_walk_visits_children_before_parents_with_paths():
    cfg = run.Config(dict, a=run.Config(dict, a=1, b=[2, 3]), b=4)
    order = []
    walk(cfg, lambda path, value: order.append(path) or value)
    assert order == ["a.a", "a.b[0]", "a.b[1]", "a.b", "a", "b", ""]


def test_walk_returns_new_tree_and_leaves_input_alone():
    cfg = nested_experiment()
    doubled = walk(cfg, lambda path, v: v * 2 if isinstance(v, int) and not isinstance(v, bool) else v)
    assert doubled.model.hidden_size == 1536 and doubled.seed == 14
    assert cfg.model.hidden_size == 768 and cfg.seed == 7
    assert doubled.model is not cfg.model
    assert type(doubled) is run.Partial and type(doubled.model) is run.Config


def test_walk_can_replace_whole_nodes_and_sees_rebuilt_children():
    cfg = run.Config(dict, a=run.Config(Point, x=1), b=2)

    def swap(path, v):
        if isinstance(v, run.Config) and v.__fn_or_cls__ is Point:
            return v.x + 100  # the child leaf was already transformed below
        return v + 1 if isinstance(v, int) else v

    assert walk(cfg, swap).a == 102


def test_walk_keeps_shared_nodes_shared():
    shared = run.Config(Point, x=1)
    out = walk(run.Config(dict, a=shared, b=[shared]), lambda p, v: v)
    assert out.a is out.b[0] and out.a is not shared


def test_walk_arguments_changes_set_values_everywhere():
    cfg = run.Config(dict, a=run.Config(ModelConfig, hidden_size=64), b=run.Config(ModelConfig), c=run.Config(
        ModelConfig, hidden_size=128))
    out = cfg.walk(hidden_size=lambda v: v * 2)
    assert (out.a.hidden_size, out.c.hidden_size) == (128, 256)
    assert "hidden_size" not in out.b.__arguments__  # defaults are not touched
    assert cfg.a.hidden_size == 64


def test_walk_arguments_suggests_name_on_typo():
    with pytest.raises(UnknownParameterError, match="did you mean 'hidden_size'"):
        nested_experiment().walk(hiden_size=lambda v: v)


def test_walk_arguments_checks_new_value_with_full_path():
    with pytest.raises(ConfigTypeError, match=r"^model\.hidden_size: expected int, got '768'"):
        nested_experiment().walk(hidden_size=str)


# -- broadcast -------------------------------------------------------------------------------------------------------
def test_broadcast_sets_every_accepting_node():
    cfg = run.Config(dict, m1=run.Config(ModelConfig), m2=run.Config(ModelConfig, dropout=0.5),
                     data=run.Config(DataConfig, dataset_path="p"))
    out = run.broadcast(cfg, dropout=0.0, num_workers=2)
    assert out.m1.dropout == 0.0 and out.m2.dropout == 0.0
    assert out.data.num_workers == 2 and "dropout" not in out.data.__arguments__
    assert cfg.m2.dropout == 0.5  # input untouched
    assert cfg.broadcast(dropout=0.3).m1.dropout == 0.3


def test_broadcast_unknown_name_suggests():
    with pytest.raises(UnknownParameterError) as info:
        nested_experiment().broadcast(learning_rat=1.0)
    assert "did you mean 'learning_rate'" in str(info.value)


def test_broadcast_type_error_names_node():
    with pytest.raises(ConfigTypeError, match=r"^training\.batch_size: expected int"):
        nested_experiment().broadcast(batch_size="many")


# -- diff ------------------------------------------------------------------------------------------------------------
def test_diff_of_equal_trees_is_empty():
    d = diff(nested_experiment(), nested_experiment())
    assert not d and d.changes == [] and str(d) == "no differences"


def test_diff_changed_value_text():
    new = nested_experiment()
    new.model.hidden_size = 1024
    d = diff(nested_experiment(), new)
    assert d.changes == [Change("model.hidden_size", "changed", 768, 1024)]
    assert str(d) == "- model.hidden_size: 768\n+ model.hidden_size: 1024"


def test_diff_default_equals_explicit_default():
    assert not diff(run.Config(ModelConfig), run.Config(ModelConfig, hidden_size=512))
    assert diff(run.Config(ModelConfig), run.Config(ModelConfig, hidden_size=256)).changes == [
        Change("hidden_size", "changed", 512, 256)
    ]


def test_diff_added_removed_and_lists():
    old = run.Config(dict, a=1, items=[1, 2, 3])
    new = run.Config(dict, b=2, items=[1, 5])
    assert diff(old, new).changes == [
        Change("a", "removed", 1, None),
        Change("items[1]", "changed", 2, 5),
        Change("items[2]", "removed", 3, None),
        Change("b", "added", None, 2),
    ]
    assert str(diff(old, new)).splitlines() == ["- a: 1", "- items[1]: 2", "+ items[1]: 5", "- items[2]: 3", "+ b: 2"]


def test_diff_target_change_is_one_change_at_its_path():
    old = nested_experiment()
    new = nested_experiment()
    new.model = run.Config(BigModelConfig, hidden_size=768, num_heads=12)
    d = diff(old, new)
    assert [(c.path, c.kind) for c in d.changes] == [("model", "changed")]
    assert d.changes[0].new is new.model
    partial = nested_experiment()
    partial.training = run.Partial(TrainingConfig, learning_rate=3e-4, tags=["a", "b"])
    assert [c.path for c in diff(old, partial)] == ["training"]


def test_diff_type_matters():
    assert diff(run.Config(dict, a=1), run.Config(dict, a=True))
    assert not diff(run.Config(dict, a=1), run.Config(dict, a=1.0))


def test_diff_rich_rendering_is_colored():
    new = nested_experiment()
    new.seed = 8
    rendered = diff(nested_experiment(), new).__rich__()
    assert isinstance(rendered, Text)
    styles = {str(span.style) for span in rendered.spans}
    assert styles == {"red", "green"}
    console = Console(record=True, width=80, color_system=None)
    console.print(diff(nested_experiment(), new))
    assert console.export_text().splitlines() == ["- seed: 7", "+ seed: 8"]


# -- flatten ---------------------------------------------------------------------------------------------------------
def test_flatten_uses_dotted_paths():
    assert flatten(nested_experiment()) == {
        "model.hidden_size": 768,
        "model.num_heads": 12,
        "training.learning_rate": 3e-4,
        "training.tags[0]": "a",
        "training.tags[1]": "b",
        "data.dataset_path": "/data/train",
        "seed": 7,
    }


def test_flatten_with_defaults_and_empty_containers():
    flat = flatten(run.Config(dict, a=[], b=run.Config(Point, x=1)), include_defaults=True)
    assert flat == {"a": [], "b.x": 1, "b.y": 0}
