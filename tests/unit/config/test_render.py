from rich.console import Console
from rich.tree import Tree

import nemorun_core as run
from nemorun_core.config.render import html, rich_tree
from tests.unit.config._models import ModelConfig, Point, TrainingConfig, nested_experiment, relu


def plain(renderable) -> str:
    console = Console(record=True, width=100, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_repr_stays_fiddles_readable_form():
    assert repr(run.Config(ModelConfig, hidden_size=768)) == "<Config[ModelConfig(hidden_size=768)]>"
    assert repr(run.Partial(Point, x=1)) == "<Partial[Point(x=1)]>"


def test_rich_tree_shows_targets_arguments_and_marks_partial():
    tree = rich_tree(nested_experiment())
    assert isinstance(tree, Tree)
    assert plain(tree).splitlines() == [
        "Partial train_model",
        "├── model: Config ModelConfig",
        "│   ├── hidden_size = 768",
        "│   └── num_heads = 12",
        "├── training: Config TrainingConfig",
        "│   ├── learning_rate = 0.0003",
        "│   └── tags = ['a', 'b']",
        "├── data: Config DataConfig",
        "│   └── dataset_path = '/data/train'",
        "└── seed = 7",
    ]


def test_config_renders_itself_in_rich():
    assert plain(run.Config(Point, x=1)).splitlines() == ["Config Point", "└── x = 1"]


def test_rich_tree_lists_of_configs_functions_and_shared_nodes():
    shared = run.Config(Point, x=1)
    text = plain(rich_tree(run.Config(dict, layers=[shared, shared], fn=relu, meta={"k": 1})))
    assert "layers: list of 2" in text
    assert "[0]: Config Point" in text
    assert "[1]: Config Point  (shared, see layers[0])" in text
    assert "fn = tests.unit.config._models.relu" in text
    assert "meta = {'k': 1}" in text
    assert text.count("x = 1") == 1


def test_rich_values_are_not_markup():
    text = plain(rich_tree(run.Config(TrainingConfig, optimizer="[bold red]adam[/]")))
    assert "optimizer = '[bold red]adam[/]'" in text


def test_html_is_nested_and_escaped():
    cfg = run.Partial(dict, model=run.Config(ModelConfig, activation="<script>alert(1)</script>"), seed=1)
    out = html(cfg)
    assert "<script>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert '<span class="kind">Partial</span> <span class="target">dict</span>' in out
    assert out.count("<ul>") == 2  # root arguments and the model's arguments
    assert "<code>model</code>: <span class=\"kind\">Config</span>" in out
    assert cfg._repr_html_() == out
