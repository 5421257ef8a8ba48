"""Serialize config trees to plain data (and YAML, TOML, JSON), and read them back.

The plain form is readable and stable, in the style of ``_target_`` configs::

    _target_: my_project.model:ModelConfig
    hidden_size: 768
    layers: {_tuple_: [1, 2]}

Markers: ``_target_`` (a configured call; ``_partial_: true`` for a Partial, ``_instance_: true`` for a dataclass
value such as an executor), ``_args_`` (positional arguments), ``_ref_`` (a function or class used as a value),
``_member_`` (an enum member, with ``_target_`` its class), ``_tuple_``, ``_path_``, ``_none_`` (TOML has no null),
``_secret_`` (a :class:`~nemorun_core.secrets.Secret`; the store keeps it as ``{_secret_: <redacted>}``),
and ``_pickle_`` (cloudpickle, base64: only in the *payload* form sent to the runner, for objects that cannot be
imported by name, such as functions defined in the launching script's ``__main__``).

Two forms:

* ``portable`` (exports, the store's human-readable files): names only; a value that cannot be named is an error.
* ``payload`` (what the runner receives): may embed pickles, so ``__main__`` functions run anywhere.

:func:`decode` reads either form, into configs (``build=False``) or straight into built objects (``build=True``,
used by the runner: it never imports Fiddle).
"""

from __future__ import annotations

import importlib
import json

# Only the decode path runs in job processes: it imports nothing it does not meet (pathlib, base64, pickle...).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

from nemorun_core.config.building import call_target, join_path
from nemorun_core.errors import SerializationError
from nemorun_core.secrets import Secret

MARKERS = frozenset(
    {"_target_", "_partial_", "_instance_", "_args_", "_ref_", "_member_", "_tuple_", "_path_", "_none_", "_pickle_",
     "_secret_"}
)


# -- names -----------------------------------------------------------------------------------------------------------
def ref_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise SerializationError(f"{obj!r} has no importable name")
    return f"{module}:{qualname}"


def resolve(ref: str) -> Any:
    """Import ``"module:qualname"`` (``"module.qualname"`` is accepted too) and return the object."""
    if ":" in ref:
        module_name, _, qualname = ref.partition(":")
    else:
        module_name, _, qualname = ref.rpartition(".")
    if not module_name or not qualname:
        raise SerializationError(f"{ref!r} is not a name of the form 'package.module:Name'")
    try:
        # Not sys.modules first: while another thread imports the module, sys.modules already holds it half
        # initialized; import_module waits for that import to finish (triggers load executors in threads).
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SerializationError(f"cannot import module {module_name!r} for {ref!r}: {exc}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SerializationError(
                f"{ref!r}: module {module_name!r} has no attribute {qualname!r}"
                + ("; objects of a script's __main__ only resolve inside that script" if module_name == "__main__" else "")
            ) from None
    return getattr(obj, "__nemorun_wrapped__", obj)


def _importable(obj: Any) -> bool:
    qualname = getattr(obj, "__qualname__", "") or ""
    if "<locals>" in qualname or "<lambda>" in qualname:
        return False
    try:
        return resolve(ref_of(obj)) is obj
    except SerializationError:
        return False


def _pickled(obj: Any) -> str:
    import base64

    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(obj)).decode("ascii")


def _unpickled(text: str) -> Any:
    import base64
    import pickle

    return pickle.loads(base64.b64decode(text))


# -- encode ----------------------------------------------------------------------------------------------------------
def encode(value: Any, *, payload: bool = False, path: str = "") -> Any:
    """Turn a config tree (or any supported value) into plain data. See the module docstring for the form."""
    if isinstance(value, Secret):
        return {"_secret_": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    import dataclasses
    import enum
    import pathlib

    import fiddle as fdl

    if isinstance(value, fdl.Buildable):
        data: dict[str, Any] = _named(value.__fn_or_cls__, "_target_", payload, path)
        if isinstance(value, fdl.Partial):
            data["_partial_"] = True
        positional = [k for k in value.__arguments__ if isinstance(k, int)]
        if positional:
            data["_args_"] = [encode(value.__arguments__[k], payload=payload, path=join_path(path, k)) for k in sorted(positional)]
        for k, v in value.__arguments__.items():
            if not isinstance(k, int):
                data[k] = encode(v, payload=payload, path=join_path(path, k))
        return data
    if isinstance(value, enum.Enum):
        return {**_named(type(value), "_target_", payload, path), "_member_": value.name}
    if isinstance(value, list):
        return [encode(v, payload=payload, path=join_path(path, i)) for i, v in enumerate(value)]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"_tuple_": [encode(v, payload=payload, path=join_path(path, i)) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                if payload:
                    return {"_pickle_": _pickled(value)}
                raise SerializationError(f"dict keys must be strings to export, got {k!r}", path=path)
            if k in MARKERS:
                raise SerializationError(f"the key {k!r} is reserved by nemorun's config format", path=path)
            out[k] = encode(v, payload=payload, path=join_path(path, k))
        return out
    if isinstance(value, pathlib.PurePath):
        return {"_path_": str(value)}
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__") and not dataclasses.is_dataclass(value):
        return _named(value, "_ref_", payload, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {**_named(type(value), "_target_", payload, path), "_instance_": True}
        for f in dataclasses.fields(value):
            if f.init:
                data[f.name] = encode(getattr(value, f.name), payload=payload, path=join_path(path, f.name))
        return data
    if payload:
        return {"_pickle_": _pickled(value)}
    raise SerializationError(
        f"a value of type {type(value).__name__} cannot be exported; configure it with run.Config instead", path=path
    )


def _named(obj: Any, marker: str, payload: bool, path: str) -> dict[str, Any]:
    obj = getattr(obj, "__nemorun_wrapped__", obj)
    qualname = getattr(obj, "__qualname__", "") or ""
    if "<locals>" in qualname or "<lambda>" in qualname or not getattr(obj, "__module__", None):
        if payload:
            return {marker: f"{getattr(obj, '__module__', '?')}:{qualname or repr(obj)}", "_pickle_": _pickled(obj)}
        raise SerializationError(
            f"{qualname or obj!r} is defined inside a function or is a lambda and has no importable name; "
            "define it at module level",
            path=path,
        )
    data = {marker: ref_of(obj)}
    if payload and (obj.__module__ == "__main__" or not _importable(obj)):
        data["_pickle_"] = _pickled(obj)
    return data


# -- decode ----------------------------------------------------------------------------------------------------------
def decode(data: Any, *, build: bool = False, path: str = "") -> Any:
    """Read plain data back: into Config/Partial objects, or (``build=True``) into the built objects."""
    if isinstance(data, list):
        return [decode(v, build=build, path=join_path(path, i)) for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if "_secret_" in data:
        return Secret(data["_secret_"])
    if "_tuple_" in data:
        return tuple(decode(v, build=build, path=join_path(path, i)) for i, v in enumerate(data["_tuple_"]))
    if "_path_" in data:
        import pathlib

        return pathlib.Path(data["_path_"])
    if "_none_" in data:
        return None
    if "_ref_" in data:
        return _load_named(data, "_ref_", path)
    if "_target_" in data:
        target = _load_named(data, "_target_", path)
        if "_member_" in data:
            try:
                return target[data["_member_"]]
            except KeyError:
                raise SerializationError(f"{data['_target_']} has no member {data['_member_']!r}", path=path) from None
        args: dict[Any, Any] = {}
        for i, v in enumerate(data.get("_args_", [])):
            args[i] = decode(v, build=build, path=join_path(path, i))
        for k, v in data.items():
            if k not in MARKERS:
                args[k] = decode(v, build=build, path=join_path(path, k))
        if data.get("_instance_") or build:
            return call_target(target, args, bool(data.get("_partial_")), path)
        from nemorun_core.config.buildable import Config, Partial

        cls = Partial if data.get("_partial_") else Config
        positional = [args.pop(i) for i in sorted(k for k in list(args) if isinstance(k, int))]
        return cls(target, *positional, **args)
    if "_pickle_" in data:
        return _unpickled(data["_pickle_"])
    return {k: decode(v, build=build, path=join_path(path, k)) for k, v in data.items()}


def _load_named(data: Mapping[str, Any], marker: str, path: str) -> Any:
    if "_pickle_" in data:
        obj = _unpickled(data["_pickle_"])
        return getattr(obj, "__nemorun_wrapped__", obj)
    ref = data[marker]
    if not isinstance(ref, str):
        raise SerializationError(f"{marker} must be a string like 'package.module:Name', got {ref!r}", path=path)
    try:
        return resolve(ref)
    except SerializationError as exc:
        raise SerializationError(str(exc), path=path or None) from None


# -- formats ---------------------------------------------------------------------------------------------------------
def to_dict(config: Any) -> Any:
    return encode(config)


def from_dict(data: Any) -> Any:
    return decode(data)


def to_json(config: Any, *, indent: int = 2) -> str:
    return json.dumps(encode(config), indent=indent) + "\n"


def from_json(text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return decode(data)


def to_yaml(config: Any) -> str:
    import yaml

    return yaml.safe_dump(encode(config), sort_keys=False, default_flow_style=False, allow_unicode=True)


def from_yaml(text: str) -> Any:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SerializationError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return decode(data)


def _toml_safe(data: Any) -> Any:
    if data is None:
        return {"_none_": True}
    if isinstance(data, list):
        return [_toml_safe(v) for v in data]
    if isinstance(data, dict):
        return {k: _toml_safe(v) for k, v in data.items()}
    return data


def to_toml(config: Any) -> str:
    import tomli_w

    data = _toml_safe(encode(config))
    if not isinstance(data, dict):
        data = {"value": data}
    return tomli_w.dumps(data)


def from_toml(text: str) -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SerializationError(f"invalid TOML: {exc}") from None
    if set(data) == {"value"}:
        data = data["value"]
    return decode(data)


def to_code(config: Any) -> str:
    """Python code that rebuilds ``config`` with ``import nemorun_core as run``."""
    from nemorun_core.config.codegen import to_code as _to_code

    return _to_code(config)


LOADERS = {".yaml": from_yaml, ".yml": from_yaml, ".toml": from_toml, ".json": from_json}


def load_file(path: str | pathlib.Path) -> Any:
    """Load a config from a ``.yaml``/``.yml``/``.toml``/``.json`` file, choosing the format by extension."""
    import pathlib

    p = pathlib.Path(path)
    loader = LOADERS.get(p.suffix.lower())
    if loader is None:
        raise SerializationError(
            f"cannot tell the format of {str(p)!r}: use a .yaml, .yml, .toml or .json file"
        )
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SerializationError(f"config file {str(p)!r} does not exist") from None
    except OSError as exc:
        raise SerializationError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        return loader(text)
    except SerializationError as exc:
        raise SerializationError(f"{p}: {exc}") from None
