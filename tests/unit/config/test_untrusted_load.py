"""Loading a file a user passes never calls or unpickles anything; bounds on what a file can expand to; cycles.

Issue 10, items 2, 3 and 13: ``_instance_: true`` and ``_pickle_`` used to run code while a file was read, a YAML
alias bomb hung the loader, and a config that contains itself (or nests 200 deep) raised a bare RecursionError.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pickle
import re
import time
import tracemalloc
from typing import Any

import pytest

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.config.building import MAX_DEPTH, build
from nemorun_core.config.tree import diff, flatten, walk
from nemorun_core.config.validation import validate
from nemorun_core.errors import ConfigError, SerializationError
from tests.unit.config._models import Color, ModelConfig, Point


class _Touch:
    """Pickles into a call of ``os.system``: what a hostile ``_pickle_`` payload carries."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> Any:
        return os.system, (f"touch {self.path}",)


def node(inner: Any = None, extra: Any = None) -> Any:
    """A function configured in the nesting tests (importable by name, so its configs encode)."""
    return inner


@dataclasses.dataclass
class Holder:
    value: Any = None


def _system_call(pwned: str) -> dict:
    return {"_target_": "os:system", "_instance_": True, "_args_": [f"touch {pwned}"]}


def _pickle_payload(pwned: str) -> str:
    return base64.b64encode(pickle.dumps(_Touch(pwned))).decode("ascii")


def _write(path, data: Any) -> str:
    """Write ``data`` in the format named by the file's extension; returns the path."""
    if str(path).endswith(".json"):
        path.write_text(json.dumps(data))
    elif str(path).endswith(".toml"):
        import tomli_w

        path.write_text(tomli_w.dumps(data))
    else:
        import yaml

        path.write_text(yaml.safe_dump(data))
    return str(path)


# -- item 2: payload markers are refused or left unbuilt ----------------------------------------------------------
@pytest.mark.parametrize("ext", ["yaml", "json", "toml"])
def test_instance_of_a_function_in_a_loaded_file_is_refused_and_never_called(tmp_path, ext):
    pwned = tmp_path / "pwned"
    path = _write(tmp_path / f"evil.{ext}", _system_call(str(pwned)))
    with pytest.raises(SerializationError, match=r"_instance_: true marks a dataclass value.*'os:system'") as info:
        serialize.load_file(path)
    assert path in str(info.value) and "trusted=True" in str(info.value)
    assert not pwned.exists()


def test_every_user_facing_loader_refuses_the_call(tmp_path):
    pwned = tmp_path / "pwned"
    data = {"_target_": "tests.unit.config._models:train_model", "model": _system_call(str(pwned))}
    import yaml

    loaders = [lambda: serialize.from_yaml(yaml.safe_dump(data)), lambda: serialize.from_json(json.dumps(data)),
               lambda: serialize.from_dict(data)]
    for load in loaders:
        with pytest.raises(SerializationError, match="not a dataclass") as info:
            load()
        assert info.value.path == "model"
    assert not pwned.exists()


@pytest.mark.parametrize("where", ["root", "nested", "beside a target", "beside a ref"])
def test_a_pickle_payload_in_a_loaded_file_is_refused_naming_its_path(tmp_path, where):
    pwned = tmp_path / "pwned"
    payload = _pickle_payload(str(pwned))
    data = {
        "root": {"_pickle_": payload},
        "nested": {"_target_": "tests.unit.config._models:train_model", "model": {"_pickle_": payload}},
        "beside a target": {"_target_": "tests.unit.config._models:ModelConfig", "_pickle_": payload},
        "beside a ref": {"_target_": "tests.unit.config._models:train_model",
                         "activation": {"_ref_": "os:system", "_pickle_": payload}},
    }[where]
    path = _write(tmp_path / "evil.yaml", data)
    with pytest.raises(SerializationError, match="_pickle_ is refused in a file you load: unpickling runs") as info:
        serialize.load_file(path)
    assert path in str(info.value)
    if where == "beside a ref":
        assert "activation: _pickle_ is refused" in str(info.value)
    assert not pwned.exists()


def test_a_dataclass_instance_loads_as_an_unbuilt_config(tmp_path):
    path = _write(tmp_path / "point.yaml", {"_target_": "tests.unit.config._models:Point", "_instance_": True,
                                            "x": 3, "y": 4})
    cfg = serialize.load_file(path)
    assert cfg == run.Config(Point, x=3, y=4)
    assert build(cfg) == Point(3, 4)  # building (when the task runs) gives the value


def test_member_needs_an_enum_class_untrusted():
    assert serialize.from_dict({"_target_": "tests.unit.config._models:Color", "_member_": "BLUE"}) is Color.BLUE
    with pytest.raises(SerializationError, match="_member_ needs an enum class"):
        serialize.from_dict({"_target_": "os:environ", "_member_": "HOME"})


def test_trusted_restores_the_payload_markers_for_your_own_files(tmp_path):
    data = {"_target_": f"{__name__}:Holder", "_instance_": True,
            "value": {"_pickle_": base64.b64encode(pickle.dumps(Point(1, 2))).decode()}}
    path = _write(tmp_path / "mine.json", data)
    assert serialize.load_file(path, trusted=True) == Holder(Point(1, 2))
    with pytest.raises(SerializationError, match="_pickle_ is refused"):
        serialize.load_file(path)


def test_untrusted_data_cannot_be_built_while_read():
    with pytest.raises(SerializationError, match="untrusted data cannot be built"):
        serialize.decode({"_target_": "os:getcwd"}, build=True, trusted=False)


def test_nemorun_own_payload_stays_trusted():
    """The runner's path: encode(payload=True) + decode(build=True) still builds dataclasses and pickles."""
    cfg = run.Partial(node, inner=Point(1, 2), extra=lambda: 7)
    built = serialize.decode(json.loads(json.dumps(serialize.encode(cfg, payload=True))), build=True)
    assert built() == Point(1, 2) and built.keywords["extra"]() == 7


# -- item 3: bounds ------------------------------------------------------------------------------------------------
def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_fails_at_once_with_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SerializationError, match=r"expands to more than 2,000,000 values") as info:
            serialize.load_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10  # was over 40 s and 770 MB; this is a loaded machine's generous bound
    assert peak < 50 * 1024 * 1024
    assert str(path) in str(info.value) and "alias bomb" in str(info.value)


def test_a_yaml_value_that_contains_itself_is_refused(tmp_path):
    with pytest.raises(SerializationError, match="line 1 contains itself through an alias"):
        serialize.from_yaml("&a [1, *a]\n")


def test_normal_aliases_and_merge_keys_still_load():
    text = ("base: &base {hidden_size: 8, num_layers: 2}\n"
            "model: {_target_: tests.unit.config._models:ModelConfig, <<: *base}\n"
            "again: *base\n")
    data = serialize.from_yaml(text)
    assert data["model"] == run.Config(ModelConfig, hidden_size=8, num_layers=2)
    assert data["again"] == {"hidden_size": 8, "num_layers": 2}


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(serialize.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(SerializationError, match=r"over the 16,777,216-byte limit") as info:
        serialize.load_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt,text", [("json", "[" * 50000 + "]" * 50000), ("yaml", "[" * 50000 + "]" * 50000),
                                      ("toml", "a = " + "[" * 50000 + "]" * 50000)])
def test_text_nested_past_what_python_can_read_is_a_clear_error(fmt, text):
    with pytest.raises(SerializationError, match=f"the {fmt.upper()} is nested too deep"):
        getattr(serialize, f"from_{fmt}")(text)


def test_a_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(SerializationError, match="is not UTF-8 text"):
        serialize.load_file(path)


# -- item 13: cycles and depth in every walker ---------------------------------------------------------------------
def _self_containing_config() -> Any:
    cfg = run.Config(node)
    cfg.inner = run.Config(node)
    cfg.inner.extra = cfg
    return cfg


def _self_containing_list() -> Any:
    items: list = [1]
    items.append(items)
    return run.Config(node, inner=items)


def _nested(depth: int) -> Any:
    cfg = run.Config(node)
    for _ in range(depth):
        cfg = run.Config(node, inner=cfg)
    return cfg


WALKERS = {
    "encode": serialize.encode, "to_yaml": serialize.to_yaml, "to_json": serialize.to_json,
    "to_code": serialize.to_code, "build": build, "walk": lambda c: walk(c, lambda p, v: v),
    "flatten": flatten, "diff": lambda c: diff(c, c), "validate": validate,
}


@pytest.mark.parametrize("walker", sorted(WALKERS))
@pytest.mark.parametrize("make,path", [(_self_containing_config, "inner.extra"), (_self_containing_list, "inner[1]")],
                         ids=["config", "list"])
def test_a_cycle_is_named_by_every_walker(walker, make, path):
    with pytest.raises(ConfigError, match=f"cycle at {re.escape(path)}: ") as info:
        WALKERS[walker](make())
    assert info.value.path == path and "RecursionError" not in str(info.value)


@pytest.mark.parametrize("walker", sorted(WALKERS))
def test_a_config_nested_200_deep_is_named_by_every_walker(walker):
    with pytest.raises(ConfigError, match=rf"nested deeper than {MAX_DEPTH} levels at inner(\.inner){{{MAX_DEPTH - 1}}};"):
        WALKERS[walker](_nested(200))


def test_decode_of_a_dict_that_contains_itself_names_the_cycle():
    data: dict = {"a": {}}
    data["a"]["b"] = data
    with pytest.raises(SerializationError, match=r"cycle at a\.b"):
        serialize.from_dict(data)


def test_shared_nodes_are_not_cycles_and_normal_depth_works():
    shared = run.Config(Point, x=1)
    cfg = run.Config(node, inner=[shared, shared], extra={"again": shared})
    assert serialize.from_yaml(serialize.to_yaml(cfg)).extra == {"again": shared}
    assert flatten(cfg) == {"inner[0].x": 1} and "point = run.Config(" in serialize.to_code(cfg)
    built = build(cfg)
    assert built[0] is built[1]  # built once, as in Fiddle
    deep = _nested(MAX_DEPTH - 5)
    text = serialize.to_json(deep)  # compared as text: Fiddle's == on a deep tree is very slow
    assert serialize.to_json(serialize.from_json(text)) == text and not diff(deep, deep)
    assert build(deep) is None
