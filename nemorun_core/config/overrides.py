"""Apply parsed overrides to a ``run.Partial`` / ``run.Config`` tree.

Walking a path creates what the user obviously means and refuses everything else:

* an unset parameter annotated with a dataclass (or ``Optional`` of one) becomes ``run.Config(cls)`` on the way
  down, so ``model.hidden_size=1024`` works before ``model`` was ever set;
* a dataclass *instance* met on the way (a default such as ``model: ModelConfig = ModelConfig()``) is turned into an
  equivalent ``run.Config`` so that setting one field keeps the others;
* anything else (an int, a string, None) has no fields: ``seed.x=1`` is an error naming ``seed``.

Every failure is an :class:`~nemorun_core.errors.OverrideError` that names the override, the path and a fix.

It lives under ``config/`` because applying overrides is a config operation that the orchestrators use as well as the
command line; ``nemorun_core.cli.overrides`` re-exports it.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from typing import Any, Sequence

from nemorun_core.config import grammar
from nemorun_core.config.factories import REGISTRY, FactoryRegistry, call_factory, to_config
from nemorun_core.config.grammar import (
    BareString,
    FactoryCall,
    FileRef,
    LiteralValue,
    Override,
    ValueList,
    error,
    format_path,
)
from nemorun_core.errors import ConfigError, OverrideError, SerializationError, did_you_mean

MISSING = inspect.Parameter.empty


def parameters(target: Any) -> dict[str, tuple[Any, Any]]:
    """``{name: (annotation, default)}`` for a function or class; defaults are ``MISSING`` when required."""
    from nemorun_core.config import typecheck

    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    annotations = typecheck.parameter_annotations(target)
    out = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default
        if dataclasses.is_dataclass(target) and default is not MISSING:
            default = _dataclass_default(target, p.name, default)
        out[p.name] = (annotations.get(p.name), default)
    return out


def _dataclass_default(cls: Any, name: str, default: Any) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            return f.default_factory()  # type: ignore[misc]
    return default


def dataclass_of(annotation: Any) -> type | None:
    """The dataclass named by ``annotation`` (also inside Optional), or None."""
    members = [m for m in grammar.union_members(annotation) if m is not type(None) and m is not None]
    if len(members) == 1 and isinstance(members[0], type) and dataclasses.is_dataclass(members[0]):
        return members[0]
    return None


def all_defaulted(cls: type) -> bool:
    """True for a dataclass whose init fields all have defaults (so ``cls()`` works)."""
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        for f in dataclasses.fields(cls) if f.init
    )


class Applier:
    """Applies overrides to one tree. ``registry`` is where factory names are looked up."""

    def __init__(self, registry: FactoryRegistry | None = None):
        self.registry = registry or REGISTRY

    def apply_all(self, root: Any, overrides: Sequence[Override], *, prefix: Sequence[Any] = ()) -> Any:
        for ov in overrides:
            root = self.apply(root, ov, prefix=prefix)
        return root

    def apply(self, root: Any, ov: Override, *, prefix: Sequence[Any] = ()) -> Any:
        """Apply one override to ``root``; returns the root (a new object only when the root was immutable)."""
        path = ov.path[len(prefix):]
        if not path:
            raise error(ov.text, ov.dotted, "the path names the whole config", "name a parameter, e.g. model=VALUE")
        return self._assign(root, path, 0, ov, tuple(prefix))

    # -- walking ---------------------------------------------------------------------------------------------------
    def _assign(self, node: Any, path: tuple[Any, ...], i: int, ov: Override, prefix: tuple[Any, ...]) -> Any:
        from nemorun_core.config.buildable import is_buildable

        seg = path[i]
        here = format_path(prefix + path[: i + 1])
        last = i == len(path) - 1
        if is_buildable(node):
            if not isinstance(seg, str):
                raise error(ov.text, here, f"{format_path(prefix + path[:i]) or 'the config'} is a config, not a list",
                            "index lists only, for example layers[0].size=3")
            annotation, current = self._lookup(node, seg, ov, here)
            if last:
                new = self._new_value(ov, current, annotation, node, seg, here)
            else:
                child = self._descend(node, seg, annotation, current, ov, here, path[i + 1])
                new = self._assign(child, path, i + 1, ov, prefix)
                if new is child and seg in node.__arguments__:
                    return node
            self._set(node, seg, new, ov, here)
            return node
        if isinstance(node, (list, tuple)):
            if not isinstance(seg, int):
                raise error(ov.text, here, f"{format_path(prefix + path[:i])} is {grammar.a_type(node)}, so it has no field {seg!r}",
                            f"index it, for example {format_path(prefix + path[:i])}[0]")
            if not -len(node) <= seg < len(node):
                raise error(ov.text, here, f"index {seg} is out of range for a list of {len(node)} items",
                            f"use an index from 0 to {len(node) - 1}" if node else "the list is empty; set it whole")
            current = node[seg]
            new = self._new_value(ov, current, MISSING, None, None, here) if last else \
                self._assign(self._as_node(current, ov, here), path, i + 1, ov, prefix)
            items = list(node)
            items[seg] = new
            if isinstance(node, list):
                node[seg] = new
                return node
            return tuple(items)
        if isinstance(node, dict):
            key = str(seg)
            if last:
                node[key] = self._new_value(ov, node.get(key, MISSING), MISSING, None, None, here)
                return node
            if key not in node:
                hint = did_you_mean(key, [str(k) for k in node]).lstrip("; ") or f"keys: {', '.join(map(str, node))}"
                raise error(ov.text, here, f"no key {key!r} in this mapping", hint)
            node[key] = self._assign(self._as_node(node[key], ov, here), path, i + 1, ov, prefix)
            return node
        parent = format_path(prefix + path[:i])
        raise error(ov.text, here, f"{parent} is {grammar.a_type(node)} ({node!r}), not a config, so it has no "
                    f"field {seg!r}", f"set {parent} itself, for example {parent}=VALUE")

    def _lookup(self, node: Any, name: str, ov: Override, here: str) -> tuple[Any, Any]:
        from nemorun_core.config.buildable import target_name

        params = parameters(node.__fn_or_cls__)
        if params and name not in params and not _takes_kwargs(node.__fn_or_cls__):
            valid = list(params)
            hint = did_you_mean(name, valid).lstrip("; ")
            hint = hint or f"valid names: {', '.join(valid)}"
            raise error(ov.text, here, f"no parameter {name!r} for {target_name(node.__fn_or_cls__)}", hint)
        annotation, default = params.get(name, (None, MISSING))
        current = node.__arguments__.get(name, default)
        return annotation, current

    def _descend(self, node: Any, name: str, annotation: Any, current: Any, ov: Override, here: str,
                 path_next: Any) -> Any:
        from nemorun_core.config.buildable import Config, is_buildable

        if is_buildable(current) or isinstance(current, (list, tuple, dict)):
            if name in node.__arguments__:
                return current
            # A config (or list) used as a parameter default is shared by every call: edit a copy of this tree's own.
            current = copy.deepcopy(current)
            node.__arguments__[name] = current
            return current
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            child = to_config(current)
        elif current is MISSING or current is None:
            cls = dataclass_of(annotation)
            if cls is None:
                what = "is not set" if current is MISSING else "is None"
                raise error(ov.text, here, f"{here} {what} and is not a dataclass, so it has no fields to set",
                            f"set {here} itself first, for example {here}=some_factory or {here}=@file.yaml")
            child = Config(cls)
        else:
            raise error(ov.text, here, f"{here} is {grammar.a_type(current)} ({current!r}), not a config, so it "
                        f"has no field {path_next!r}", f"set {here} itself, for example {here}=VALUE")
        self._set(node, name, child, ov, here)
        return child

    def _as_node(self, value: Any, ov: Override, here: str) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return to_config(value)
        return value

    def _set(self, node: Any, name: str, value: Any, ov: Override, here: str) -> None:
        try:
            setattr(node, name, value)
        except ConfigError as exc:
            msg = str(exc).split(": ", 1)[1] if exc.path else str(exc)
            raise error(ov.text, here, msg, f"check the type of {here}") from None

    # -- values ----------------------------------------------------------------------------------------------------
    def _new_value(self, ov: Override, current: Any, annotation: Any, owner: Any, name: str | None, here: str) -> Any:
        value = ov.value
        if isinstance(value, ValueList):
            items = self._list_items(value, annotation, owner, name, ov, here)
            if ov.op == "=":
                return grammar.coerce(LiteralValue(items, ov.text), annotation, text=ov.text, path=here) \
                    if not any(_is_config(i) for i in items) else _as_sequence(items, annotation)
            if current is MISSING or current is None:
                current = []
            if not isinstance(current, (list, tuple)):
                raise error(ov.text, here, f"+= with a list needs a list, but {here} is {grammar.a_type(current)}",
                            f"set {here}=[...] instead")
            return type(current)(list(current) + items) if isinstance(current, tuple) else list(current) + items
        if ov.op != "=":
            if current is MISSING or current is None:
                raise error(ov.text, here, f"{here} has no value to apply {ov.op} to",
                            f"set it first, for example {here}=1 (overrides apply left to right)")
            assert isinstance(value, (LiteralValue, BareString))
            return grammar.combine(ov.op, current, value, annotation, text=ov.text, path=here)
        if isinstance(value, FileRef):
            return self._from_file(value, annotation, ov, here)
        factories = None
        if owner is not None:
            if isinstance(value, FactoryCall) or (
                isinstance(value, BareString) and value.is_identifier and not _takes_str(annotation)
            ):
                factories = self.registry.for_parameter(owner.__fn_or_cls__, name, annotation)
        if isinstance(value, FactoryCall) or factories and isinstance(value, BareString) and any(
            f.name == value.text for f in factories
        ):
            fname = value.name if isinstance(value, FactoryCall) else value.text  # type: ignore[union-attr]
            kwargs = dict(value.kwargs) if isinstance(value, FactoryCall) else {}
            args = value.args if isinstance(value, FactoryCall) else ()
            return self._from_factory(fname, kwargs, factories or [], annotation, ov, here, args)
        if isinstance(value, BareString) and value.is_identifier and dataclass_of(annotation) is not None:
            # ``model=big`` for a ModelConfig parameter can only mean a factory; say which exist.
            return self._from_factory(value.text, {}, factories or [], annotation, ov, here)
        assert isinstance(value, (LiteralValue, BareString))
        return grammar.coerce(value, annotation, text=ov.text, path=here)

    def _list_items(self, value: ValueList, annotation: Any, owner: Any, name: str | None, ov: Override,
                    here: str) -> list[Any]:
        """The items of ``[f(), g(x=1), 3]``: factory calls made for the list's item type, literals coerced."""
        item_ann = _item_annotation(annotation)
        out = []
        for i, item in enumerate(value.items):
            where = f"{here}[{i}]"
            factories = self.registry.for_parameter(owner.__fn_or_cls__, name, item_ann) if owner is not None \
                else self.registry.for_parameter(None, None, item_ann)
            if isinstance(item, FactoryCall):
                out.append(self._from_factory(item.name, dict(item.kwargs), factories, item_ann, ov, where, item.args))
            elif isinstance(item, BareString) and (any(f.name == item.text for f in factories) or
                                                   dataclass_of(item_ann) is not None):
                out.append(self._from_factory(item.text, {}, factories, item_ann, ov, where))
            else:
                out.append(grammar.coerce(item, item_ann, text=ov.text, path=where))
        return out

    def _from_factory(self, fname: str, kwargs: dict[str, Any], factories: list[Any], annotation: Any,
                      ov: Override, here: str, args: Sequence[Any] = ()) -> Any:
        from nemorun_core.config import typecheck

        match = [f for f in factories if f.name == fname]
        if not match and "." in fname:
            return self._from_dotted(fname, args, kwargs, annotation, ov, here)
        if not match:
            names = sorted({f.name for f in factories})
            hint = did_you_mean(fname, names).lstrip("; ")
            hint = hint or (
                f"factories for {here}: {', '.join(names)}" if names else
                f"register one with @run.cli.factory returning {typecheck.type_name(annotation)}, or use {here}=@file.yaml"
            )
            raise error(ov.text, here, f"unknown factory {fname!r} for {here}", hint)
        f = match[-1]
        params = parameters(f.fn)
        if len(args) > len(params):
            raise error(ov.text, here, f"factory {fname} takes {len(params)} positional argument(s), got {len(args)}",
                        f"its parameters: {', '.join(params) or 'none'}")
        for pname, arg in zip(params, args):
            if pname in kwargs:
                raise error(ov.text, here, f"factory {fname} got {pname} both by position and by name",
                            f"give {pname} once")
            kwargs[pname] = arg
        bad = [k for k in kwargs if k not in params]
        if bad:
            hint = did_you_mean(bad[0], list(params)).lstrip("; ") or f"its parameters: {', '.join(params) or 'none'}"
            raise error(ov.text, here, f"factory {fname} has no parameter {bad[0]!r}", hint)
        for k, v in list(kwargs.items()):
            ann = params[k][0]
            lit = BareString(v) if isinstance(v, str) and not _takes_str(ann) else LiteralValue(v, repr(v))
            kwargs[k] = grammar.coerce(lit, ann, text=ov.text, path=f"{here}: {fname}({k}=...)")
        missing = [k for k, (_, d) in params.items() if d is MISSING and k not in kwargs]
        if missing:
            raise error(ov.text, here, f"factory {fname} needs {', '.join(missing)}",
                        f"pass them, for example {here}={fname}({missing[0]}=...)")
        try:
            return call_factory(f, kwargs)
        except OverrideError:
            raise
        except Exception as exc:
            raise error(ov.text, here, f"factory {fname} raised {type(exc).__name__}: {exc}",
                        "check the factory's arguments") from exc

    def _from_dotted(self, path: str, args: Sequence[Any], kwargs: dict[str, Any], annotation: Any, ov: Override,
                     here: str) -> Any:
        """``model=my_pkg.factories.big(1024)``: a function (or class) by dotted path, called; must fit ``here``."""
        from nemorun_core.config.factories import import_dotted

        try:
            fn = import_dotted(path)
        except Exception as exc:  # the module itself failed to import: say so rather than "unknown"
            raise error(ov.text, here, f"importing {path} failed: {type(exc).__name__}: {exc}",
                        "fix the module, or use a registered factory's name") from None
        if fn is None or not callable(fn):
            raise error(ov.text, here, f"unknown factory {path!r} for {here}: nothing callable at that dotted path",
                        "check the module and function names (module.function), or use a registered factory")
        try:
            value = to_config(fn(*args, **kwargs))
        except Exception as exc:
            raise error(ov.text, here, f"{path} raised {type(exc).__name__}: {exc}", "check its arguments") from exc
        problem = loaded_target_problem(value, annotation)
        if problem is not None:
            raise error(ov.text, here, f"{path}: {problem[1]}", f"give {here} a factory that builds what it takes")
        return value

    def _from_file(self, ref: FileRef, annotation: Any, ov: Override, here: str) -> Any:
        from nemorun_core.config import serialize
        from nemorun_core.config.buildable import Config

        try:
            value = serialize.load_file(ref.path)
        except SerializationError as exc:
            raise error(ov.text, here, f"cannot load {ref.path!r}: {exc}",
                        "point @ at an existing .yaml, .yml, .toml or .json file with a valid config") from None
        cls = dataclass_of(annotation)
        if cls is not None and isinstance(value, dict):
            try:
                return from_plain(Config(cls), value, prefix=here)
            except ConfigError as exc:
                raise error(ov.text, here, f"{ref.path}: {exc}", f"fix the keys in {ref.path}") from None
        problem = loaded_target_problem(value, annotation)
        if problem is not None:
            where, reason = problem
            where = f"{here}.{where}" if where else here
            raise error(ov.text, where, f"{ref.path}: {reason}",
                        f"make the _target_ at {where} a class that builds what {where} takes (or a function "
                        "annotated to return it)")
        return value


def loaded_target_problem(value: Any, annotation: Any, path: str = "") -> tuple[str, str] | None:
    """``(path, reason)`` for the first Config read from a file that cannot be shown to build its place's type.

    A file is read into unbuilt configs (see ``serialize``), and the task's run builds them. Where a parameter is
    annotated with a type, a Config from a file must visibly build that type: its target a fitting class, or a
    function annotated to return one. In Python code ``run.Config(fn)`` of an unannotated function is trusted to fit;
    a file that puts ``_target_: os:system`` in a ``model: ModelConfig`` slot is not, so it never runs. Open
    parameters (``Any``, unannotated) take any config, as they do in code; Partials build nothing, so they pass.

    Returns:
        None when every node fits; else the node's path relative to ``value`` and why.
    """
    import fiddle as fdl

    from nemorun_core.config import typecheck
    from nemorun_core.config.buildable import is_buildable, target_name
    from nemorun_core.config.building import join_path

    if not is_buildable(value):
        return None
    concrete = [m for m in grammar.union_members(annotation)
                if not grammar.is_open(m) and m is not None and m is not type(None)]
    if isinstance(value, fdl.Config) and concrete and not grammar.is_open(annotation):
        produced = typecheck.produced_type(value)
        wanted = typecheck.type_name(annotation)
        if produced is None:
            return path, f"{target_name(value.__fn_or_cls__)} does not say what it builds, and this parameter takes " \
                         f"{wanted}"
        if typecheck.mismatch(value, annotation) is not None:
            return path, f"a Config of {produced.__name__} does not build {wanted}"
    annotations = typecheck.parameter_annotations(value.__fn_or_cls__)
    for key, child in value.__arguments__.items():
        found = loaded_target_problem(child, annotations.get(key) if isinstance(key, str) else None,
                                      join_path(path, key))
        if found is not None:
            return found
    return None


def from_plain(cfg: Any, data: dict[str, Any], *, prefix: str = "") -> Any:
    """Set the keys of a plain mapping on ``cfg``; nested mappings fill dataclass-annotated parameters."""
    from nemorun_core.config import typecheck
    from nemorun_core.config.buildable import Config

    params = parameters(cfg.__fn_or_cls__)
    for key, value in data.items():
        annotation = params.get(key, (None, MISSING))[0]
        cls = dataclass_of(annotation)
        if isinstance(value, dict) and "_factory_" in value:  # NeMo Run's YAML: start from a registered factory
            here = f"{prefix}.{key}" if prefix else key
            base = _plain_factory(cfg.__fn_or_cls__, key, annotation, value["_factory_"], here)
            value = from_plain(base, {k: v for k, v in value.items() if k != "_factory_"}, prefix=here)
        elif cls is not None and isinstance(value, dict):
            value = from_plain(Config(cls), value, prefix=f"{prefix}.{key}" if prefix else key)
        setattr(cfg, key, typecheck.file_value(value, annotation))  # ``lr: 3e-4`` (text to YAML 1.1): a float
    return cfg


def _plain_factory(owner: Any, key: str, annotation: Any, name: Any, here: str) -> Any:
    """The config of the factory ``name`` registered for parameter ``key`` of ``owner`` (``_factory_: name``)."""
    from nemorun_core.config.buildable import is_buildable

    factories = REGISTRY.for_parameter(owner, key, annotation)
    match = [f for f in factories if f.name == name]
    if not match:
        hint = did_you_mean(str(name), [f.name for f in factories]).lstrip("; ") or \
            f"factories for {here}: {', '.join(sorted({f.name for f in factories})) or 'none registered'}"
        raise ConfigError(f"unknown _factory_ {name!r}\n  hint: {hint}", path=here)
    value = call_factory(match[-1], {})
    if not is_buildable(value):
        raise ConfigError(f"_factory_ {name!r} returned {type(value).__name__}, not a config, so the other keys "
                          "cannot be set on it", path=here)
    return value


def _is_config(value: Any) -> bool:
    from nemorun_core.config.buildable import is_buildable

    return is_buildable(value)


def _item_annotation(annotation: Any) -> Any:
    """``Model`` for ``list[Model]``, ``Sequence[Model]``, ``tuple[Model, ...]`` (also in Optional); else None."""
    import collections.abc

    for m in grammar.union_members(annotation):
        origin = typing.get_origin(m)
        args = typing.get_args(m)
        if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.MutableSequence) and args:
            return args[0]
    return None


def _as_sequence(items: list[Any], annotation: Any) -> Any:
    wants_tuple = any(typing.get_origin(m) is tuple or m is tuple for m in grammar.union_members(annotation))
    return tuple(items) if wants_tuple else items


def _takes_kwargs(target: Any) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return True


def _takes_str(annotation: Any) -> bool:
    return grammar.is_open(annotation) or any(m is str for m in grammar.union_members(annotation)) or any(
        typing.get_origin(m) is typing.Literal for m in grammar.union_members(annotation)
    )


def apply_overrides(root: Any, texts: Sequence[str], *, registry: FactoryRegistry | None = None) -> Any:
    """Parse every override first (so a typo late in the line fails before anything changes), then apply in order."""
    parsed = [grammar.parse(t) for t in texts]
    return Applier(registry).apply_all(root, parsed)
