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

Trust. The payload markers (``_instance_: true`` builds a value, ``_pickle_`` unpickles one) run code while data is
read, so they are honoured only for *trusted* data: what nemorun wrote itself (the runner's task payload, the
store's files, the executor configs that Prefect blocks and Airflow triggers persist). Everything a user passes --
:func:`load_file`, :func:`from_yaml`, :func:`from_json`, :func:`from_toml`, :func:`from_dict`, and so
``--yaml FILE``, ``--factory @FILE`` and ``arg=@FILE`` on the command line -- is read *untrusted* by default:

* ``_pickle_`` is an error naming its path in the file (unpickling runs arbitrary code);
* ``_instance_: true`` gives a ``run.Config`` of the dataclass it names (nothing is called); its target must be a
  dataclass, the only kind of value nemorun writes that way;
* ``_member_`` must name a member of an ``enum.Enum`` class.

Reading a ``_target_`` or ``_ref_`` imports the module it names (as Hydra and Fiddle do: a config names its
functions by import path), so importing a module must not have side effects the user does not want. Calling the
target happens only when the config is *built*: running a task built from a file runs what the file names, as
running any config does; loading it, ``--dryrun`` and ``--to-yaml`` never do (the command line builds an executor
from a file only after checking that every node names an executor, tunnel, packager or launcher class). For your
own files, ``load_file(path, trusted=True)`` restores the payload markers.

Bounds. A loaded file is at most :data:`MAX_FILE_BYTES`; a YAML file is composed first and its nodes counted with
aliases expanded (memoized, so counting is cheap) before any object is made, so an alias bomb fails at once past
:data:`MAX_NODES`. Every walker refuses cycles and nesting past ``building.MAX_DEPTH`` with the path.
"""

from __future__ import annotations

import importlib
import json

# Only the decode path runs in job processes: it imports nothing it does not meet (pathlib, base64, pickle...).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

from nemorun_core.config.building import TreeGuard, call_target, join_path
from nemorun_core.errors import SerializationError
from nemorun_core.secrets import Secret

# A config file is a few kilobytes; these bounds are far above any real one and far below what hurts a machine.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 2_000_000  # values of a loaded YAML document, counted with every alias expanded

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
    """Turn a config tree (or any supported value) into plain data. See the module docstring for the form.

    Raises:
        SerializationError: a value cannot be written (no importable name, a reserved key), the tree contains a
            cycle, or it is nested deeper than ``building.MAX_DEPTH``; ``error.path`` says where.
    """
    return _encode(value, payload, path, TreeGuard(SerializationError))


def _encode(value: Any, payload: bool, path: str, guard: TreeGuard) -> Any:
    if isinstance(value, Secret):
        return {"_secret_": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    import dataclasses
    import enum
    import pathlib

    import fiddle as fdl

    if isinstance(value, fdl.Buildable):
        guard.enter(value, path)
        data: dict[str, Any] = _named(value.__fn_or_cls__, "_target_", payload, path)
        if isinstance(value, fdl.Partial):
            data["_partial_"] = True
        positional = [k for k in value.__arguments__ if isinstance(k, int)]
        if positional:
            data["_args_"] = [_encode(value.__arguments__[k], payload, join_path(path, k), guard)
                              for k in sorted(positional)]
        for k, v in value.__arguments__.items():
            if not isinstance(k, int):
                data[k] = _encode(v, payload, join_path(path, k), guard)
        guard.leave(value)
        return data
    if isinstance(value, enum.Enum):
        return {**_named(type(value), "_target_", payload, path), "_member_": value.name}
    if isinstance(value, (list, dict)) or isinstance(value, tuple) and not hasattr(value, "_fields"):
        guard.enter(value, path)
        out = _encode_container(value, payload, path, guard)
        guard.leave(value)
        return out
    if isinstance(value, pathlib.PurePath):
        return {"_path_": str(value)}
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__") and not dataclasses.is_dataclass(value):
        return _named(value, "_ref_", payload, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        guard.enter(value, path)
        data = {**_named(type(value), "_target_", payload, path), "_instance_": True}
        for f in dataclasses.fields(value):
            if f.init:
                data[f.name] = _encode(getattr(value, f.name), payload, join_path(path, f.name), guard)
        guard.leave(value)
        return data
    if payload:
        return {"_pickle_": _pickled(value)}
    raise SerializationError(
        f"a value of type {type(value).__name__} cannot be exported; configure it with run.Config instead", path=path
    )


def _encode_container(value: Any, payload: bool, path: str, guard: TreeGuard) -> Any:
    if isinstance(value, list):
        return [_encode(v, payload, join_path(path, i), guard) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"_tuple_": [_encode(v, payload, join_path(path, i), guard) for i, v in enumerate(value)]}
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            if payload:
                return {"_pickle_": _pickled(value)}
            raise SerializationError(f"dict keys must be strings to export, got {k!r}", path=path)
        if k in MARKERS:
            raise SerializationError(f"the key {k!r} is reserved by nemorun's config format", path=path)
        out[k] = _encode(v, payload, join_path(path, k), guard)
    return out


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
def decode(data: Any, *, build: bool = False, path: str = "", trusted: bool = True) -> Any:
    """Read plain data back: into Config/Partial objects, or (``build=True``) into the built objects.

    ``decode`` is the reader of data nemorun wrote itself, so it trusts by default; its callers choose: the runner's
    task payload (``build=True``), the store's own files and the executor configs that orchestrators persist are
    trusted; the loaders of user files (:func:`load_file` and the ``from_*`` functions) pass ``trusted=False``.

    Args:
        data: the plain form (see the module docstring).
        build: call every target while reading (the runner); needs ``trusted``.
        path: the path of ``data`` inside a larger tree, for error messages.
        trusted: honour the payload markers ``_pickle_`` and ``_instance_`` (see "Trust" in the module docstring).

    Raises:
        SerializationError: a target cannot be imported, an untrusted input uses ``_pickle_`` or a non-dataclass
            ``_instance_``, or the data contains a cycle or is nested too deep; ``error.path`` says where.
    """
    if build and not trusted:
        raise SerializationError("untrusted data cannot be built while it is read; decode it into configs "
                                 "(build=False) and check them first")
    return _Decoder(build, trusted).value(data, path)


class _Decoder:
    """One decode: its mode and the guard against cycles and depth (a dict handed to from_dict may be cyclic)."""

    def __init__(self, build: bool, trusted: bool):
        self.build = build
        self.trusted = trusted
        self.guard = TreeGuard(SerializationError)

    def value(self, data: Any, path: str) -> Any:
        if not isinstance(data, (list, dict)):
            return data
        self.guard.enter(data, path)
        out = self._container(data, path)
        self.guard.leave(data)
        return out

    def _container(self, data: Any, path: str) -> Any:
        if isinstance(data, list):
            return [self.value(v, join_path(path, i)) for i, v in enumerate(data)]
        if "_secret_" in data:
            return Secret(data["_secret_"])
        if "_tuple_" in data:
            return tuple(self.value(v, join_path(path, i)) for i, v in enumerate(data["_tuple_"]))
        if "_path_" in data:
            import pathlib

            return pathlib.Path(data["_path_"])
        if "_none_" in data:
            return None
        if "_ref_" in data:
            return self._named(data, "_ref_", path)
        if "_target_" in data:
            return self._target(data, path)
        if "_pickle_" in data:
            return self._unpickled(data, path)
        return {k: self.value(v, join_path(path, k)) for k, v in data.items()}

    def _target(self, data: Mapping[str, Any], path: str) -> Any:
        target = self._named(data, "_target_", path)
        if "_member_" in data:
            return self._member(target, data, path)
        args: dict[Any, Any] = {}
        for i, v in enumerate(data.get("_args_", [])):
            args[i] = self.value(v, join_path(path, i))
        for k, v in data.items():
            if k not in MARKERS:
                args[k] = self.value(v, join_path(path, k))
        instance = bool(data.get("_instance_"))
        if instance and not self.trusted:
            _require_dataclass(target, data["_target_"], path)
        elif self.build or instance:
            return call_target(target, args, bool(data.get("_partial_")), path)
        from nemorun_core.config import typecheck
        from nemorun_core.config.buildable import Config, Partial

        # Numbers written as text by hand (``learning_rate: 3e-4``, a string to YAML 1.1) for float parameters.
        annotations = typecheck.parameter_annotations(getattr(target, "__nemorun_wrapped__", target))
        for k in args:
            if isinstance(k, str):
                args[k] = typecheck.file_value(args[k], annotations.get(k))
        cls = Partial if data.get("_partial_") else Config
        positional = [args.pop(i) for i in sorted(k for k in list(args) if isinstance(k, int))]
        return cls(target, *positional, **args)

    def _member(self, target: Any, data: Mapping[str, Any], path: str) -> Any:
        if not self.trusted:
            import enum

            if not (isinstance(target, type) and issubclass(target, enum.Enum)):
                raise SerializationError(f"_member_ needs an enum class as its _target_, and {data['_target_']!r} "
                                         "is not one", path=path or "<root>")
        try:
            return target[data["_member_"]]
        except (KeyError, TypeError):
            raise SerializationError(f"{data['_target_']} has no member {data['_member_']!r}", path=path) from None

    def _named(self, data: Mapping[str, Any], marker: str, path: str) -> Any:
        if "_pickle_" in data:
            obj = self._unpickled(data, path)
            return getattr(obj, "__nemorun_wrapped__", obj)
        ref = data[marker]
        if not isinstance(ref, str):
            raise SerializationError(f"{marker} must be a string like 'package.module:Name', got {ref!r}", path=path)
        try:
            return resolve(ref)
        except SerializationError as exc:
            raise SerializationError(str(exc), path=path or None) from None

    def _unpickled(self, data: Mapping[str, Any], path: str) -> Any:
        if not self.trusted:
            raise SerializationError(
                "_pickle_ is refused in a file you load: unpickling runs arbitrary code. Name the object instead "
                "(_target_ / _ref_ with its import path); only nemorun's own task payloads carry pickles. For a "
                "file you wrote yourself, load it with load_file(path, trusted=True)",
                path=path or "<root>",
            )
        return _unpickled(data["_pickle_"])


def _require_dataclass(target: Any, ref: str, path: str) -> None:
    import dataclasses

    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        raise SerializationError(
            f"_instance_: true marks a dataclass value (an executor, a dataclass default), and {ref!r} is not a "
            "dataclass; a file you load is never called while it is read. Drop _instance_ to configure a call "
            "(it runs only when the task runs), or load a file you trust with load_file(path, trusted=True)",
            path=path or "<root>",
        )


# -- formats ---------------------------------------------------------------------------------------------------------
def to_dict(config: Any) -> Any:
    return encode(config)


def from_dict(data: Any, *, trusted: bool = False) -> Any:
    """Read plain data (as :func:`to_dict` gives) into configs; untrusted unless ``trusted`` (module docstring)."""
    return decode(data, trusted=trusted)


def to_json(config: Any, *, indent: int = 2) -> str:
    return json.dumps(encode(config), indent=indent) + "\n"


def from_json(text: str, *, trusted: bool = False) -> Any:
    """Read a JSON config into configs; untrusted unless ``trusted`` (see the module docstring)."""
    _check_size(len(text))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise _too_deep("JSON") from None
    return decode(data, trusted=trusted)


def to_yaml(config: Any) -> str:
    import yaml

    return yaml.safe_dump(encode(config), sort_keys=False, default_flow_style=False, allow_unicode=True)


def from_yaml(text: str, *, trusted: bool = False) -> Any:
    """Read a YAML config into configs; untrusted unless ``trusted`` (see the module docstring).

    The document is composed, then its nodes are counted with aliases expanded before any object is made, so a
    file whose aliases expand past :data:`MAX_NODES` values (an alias bomb) fails at once instead of exhausting
    memory; a document that refers to itself through an alias is refused too (a config is a tree).
    """
    import yaml

    _check_size(len(text))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return decode(None, trusted=trusted)
        _count_nodes(node)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SerializationError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise _too_deep("YAML") from None
    finally:
        loader.dispose()
    return decode(data, trusted=trusted)


def _count_nodes(root: Any) -> int:
    """The number of values ``root`` stands for with every alias expanded; raises past :data:`MAX_NODES`.

    An alias is the same node object as its anchor, so each node's expanded size is computed once and reused:
    the count costs as much as the composed document, not as much as its expansion.
    """
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # ancestors of the node being counted: meeting one again is a self-reference

    def size(node: Any, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1
        line = node.start_mark.line + 1
        if id(node) in open_nodes:
            raise SerializationError(f"the YAML value at line {line} contains itself through an alias; "
                                     "a config must be a tree")
        if depth > 4 * _max_depth():
            raise _too_deep("YAML")
        open_nodes.add(id(node))
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise SerializationError(
                    f"the YAML expands to more than {MAX_NODES:,} values (aliases expanded, from line {line}); a "
                    "config is far smaller: is it an alias bomb? Write the values out instead of nesting aliases"
                )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root, 0)


def _max_depth() -> int:
    from nemorun_core.config.building import MAX_DEPTH

    return MAX_DEPTH


def _too_deep(fmt: str) -> SerializationError:
    return SerializationError(f"the {fmt} is nested too deep to read (configs are nested at most "
                              f"{_max_depth()} levels); flatten it")


def _check_size(size: int, source: str = "the config text") -> None:
    if size > MAX_FILE_BYTES:
        raise SerializationError(f"{source} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit of a config "
                                 "file; a config is a few kilobytes: keep data out of it and pass its path instead")


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


def from_toml(text: str, *, trusted: bool = False) -> Any:
    """Read a TOML config into configs; untrusted unless ``trusted`` (see the module docstring)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    _check_size(len(text))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SerializationError(f"invalid TOML: {exc}") from None
    except RecursionError:
        raise _too_deep("TOML") from None
    if set(data) == {"value"}:
        data = data["value"]
    return decode(data, trusted=trusted)


def to_code(config: Any) -> str:
    """Python code that rebuilds ``config`` with ``import nemorun_core as run``."""
    from nemorun_core.config.codegen import to_code as _to_code

    return _to_code(config)


LOADERS = {".yaml": from_yaml, ".yml": from_yaml, ".toml": from_toml, ".json": from_json}


def load_file(path: str | pathlib.Path, *, trusted: bool = False) -> Any:
    """Load a config from a ``.yaml``/``.yml``/``.toml``/``.json`` file, choosing the format by extension.

    Loading never calls or unpickles anything named by the file unless ``trusted`` (see "Trust" in the module
    docstring); the result is configs, built only when the task runs.

    Args:
        path: the file.
        trusted: honour the payload markers ``_pickle_`` and ``_instance_``, for a file you wrote yourself (or one
            nemorun wrote); they run code while the file is read.

    Raises:
        SerializationError: the file is missing, unreadable, over :data:`MAX_FILE_BYTES`, invalid, expands past
            :data:`MAX_NODES` values, or uses a payload marker untrusted; the message starts with the file's path.
    """
    import pathlib

    p = pathlib.Path(path)
    loader = LOADERS.get(p.suffix.lower())
    if loader is None:
        raise SerializationError(
            f"cannot tell the format of {str(p)!r}: use a .yaml, .yml, .toml or .json file"
        )
    try:
        _check_size(p.stat().st_size, f"config file {str(p)!r}")
        text = p.read_text()
    except FileNotFoundError:
        raise SerializationError(f"config file {str(p)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise SerializationError(f"config file {str(p)!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SerializationError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        return loader(text, trusted=trusted)
    except SerializationError as exc:
        raise SerializationError(f"{p}: {exc}") from None
