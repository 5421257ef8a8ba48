"""Check a configured value against a parameter annotation, at configuration time.

The checker is deliberately forgiving where Python typing is open-ended (an unresolvable annotation, ``Any``, a
protocol, a generic it does not know): it only rejects values that certainly do not fit, so a correct program is
never refused.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import re
import types
import typing
from typing import Any, Callable, Literal, Union

# A value like "{train.output}" is a reference to another task's result, resolved when the task runs; it is checked
# against the annotation then, so at configuration time it fits any parameter.
TASK_REF = re.compile(r"\{([A-Za-z_][\w\-.]*)\.(output|dir)((?:\.[\w\-]+)*)\}")

_NONE_TYPE = type(None)


@functools.lru_cache(maxsize=1024)
def parameter_annotations(fn_or_cls: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of the parameters of ``fn_or_cls`` (its ``__init__`` for classes); {} if unknowable."""
    target = fn_or_cls
    if inspect.isclass(fn_or_cls):
        target = fn_or_cls.__init__ if "__init__" in vars(fn_or_cls) or not dataclasses.is_dataclass(fn_or_cls) else fn_or_cls
    try:
        hints = typing.get_type_hints(target, include_extras=False)
    except Exception:  # forward refs to names that do not exist, exotic annotations: do not guess
        hints = {}
        try:
            hints = {k: v for k, v in inspect.get_annotations(target).items() if not isinstance(v, str)}
        except Exception:
            return {}
    hints.pop("return", None)
    if dataclasses.is_dataclass(fn_or_cls):
        try:
            field_hints = typing.get_type_hints(fn_or_cls)
        except Exception:
            field_hints = {}
        for f in dataclasses.fields(fn_or_cls):
            if f.name in field_hints and f.init:
                hints.setdefault(f.name, field_hints[f.name])
    return hints


@functools.lru_cache(maxsize=1024)
def default_buildables(fn_or_cls: Callable[..., Any]) -> tuple[tuple[str, type, Any], ...]:
    """``(name, buildable class, T)`` for each parameter annotated ``Annotated[Optional[T], run.Config[T]]``
    (``run.OptionalDefaultConfig[T]``; ``run.Partial[T]`` for ``OptionalDefaultPartial``): the parameters that get
    a fresh ``run.Config(T)`` when they are not given. Empty when the annotations cannot be resolved."""
    target = fn_or_cls
    if inspect.isclass(fn_or_cls) and not dataclasses.is_dataclass(fn_or_cls):
        target = fn_or_cls.__init__
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        return ()
    found = []
    for name, hint in hints.items():
        if name == "return":
            continue
        spec = _optional_default(hint)
        if spec is not None:
            found.append((name, *spec))
    return tuple(found)


def _optional_default(hint: Any) -> tuple[type, Any] | None:
    import fiddle as fdl

    from nemorun_core.config.buildable import Config, Partial

    if typing.get_origin(hint) in (Union, types.UnionType):  # Optional[Annotated[...]]: implicit Optional of old
        arms = [a for a in typing.get_args(hint) if a is not _NONE_TYPE]
        if len(arms) != 1:
            return None
        hint = arms[0]
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    base, *metadata = typing.get_args(hint)
    if typing.get_origin(base) not in (Union, types.UnionType) or _NONE_TYPE not in typing.get_args(base):
        return None
    arms = [a for a in typing.get_args(base) if a is not _NONE_TYPE]
    if len(arms) != 1:
        return None
    for meta in metadata:
        cls = typing.get_origin(meta) or meta
        if not (isinstance(cls, type) and issubclass(cls, fdl.Buildable)):
            continue
        if not issubclass(cls, (Config, Partial)):  # plain fiddle classes: use ours, which check names and types
            cls = Partial if issubclass(cls, fdl.Partial) else Config
        produced = (typing.get_args(meta) or arms)[0]
        if isinstance(produced, typing.TypeVar):  # OptionalDefaultConfig[T]: metadata is not substituted
            produced = arms[0]
        return (cls, produced) if callable(produced) else None
    return None


# A number as YAML 1.2 (and JSON, TOML, Python) writes it. YAML 1.1, which PyYAML reads, takes ``3e-4`` and ``1e5``
# (no dot, or no sign in the exponent) for strings.
_NUMBER_TEXT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")


def file_value(value: Any, annotation: Any) -> Any:
    """A value read from a config file, fitted to its parameter: text that is a number (``"3e-4"``, as YAML 1.1 reads
    ``learning_rate: 3e-4``) becomes a float where the parameter takes a float and not a string. Any other value is
    returned as it is, so a string that is no number still fails the type check, naming the parameter."""
    if not isinstance(value, str) or type(value) is not str or not _NUMBER_TEXT.fullmatch(value.strip()):
        return value
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    arms = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    if float in arms and str not in arms and Any not in arms:
        return float(value.strip())
    return value


def type_name(annotation: Any) -> str:
    """A short readable name for an annotation: ``int``, ``Optional[str]``, ``List[int]``, ``ModelConfig``."""
    if annotation is _NONE_TYPE or annotation is None:
        return "None"
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        if len(args) == 2 and _NONE_TYPE in args:
            other = args[0] if args[1] is _NONE_TYPE else args[1]
            return f"Optional[{type_name(other)}]"
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(a) for a in args)}]" if args else base
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def produced_type(value: Any) -> type | None:
    """The type a Config would build into (its class), or None when unknown (a function, a Partial)."""
    from nemorun_core.config.buildable import is_buildable

    if is_buildable(value):
        import fiddle as fdl

        target = value.__fn_or_cls__
        if isinstance(value, fdl.Partial):
            return None
        if inspect.isclass(target):
            return target
        ret = parameter_return(target)
        return ret if inspect.isclass(ret) else None
    return None


@functools.lru_cache(maxsize=1024)
def parameter_return(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:
        return None


def mismatch(value: Any, annotation: Any) -> str | None:
    """Return None if ``value`` may fit ``annotation``, else a short reason. Never raises."""
    try:
        return _mismatch(value, annotation)
    except Exception:
        return None


def _mismatch(value: Any, ann: Any) -> str | None:
    if ann is Any or ann is inspect.Parameter.empty or ann is object:
        return None
    if isinstance(value, str) and TASK_REF.fullmatch(value):
        return None
    from nemorun_core.config.buildable import is_buildable

    if is_buildable(value):
        produced = produced_type(value)
        if produced is None:
            return None
        return _class_fits(produced, ann)
    if isinstance(ann, typing.TypeVar):
        return None
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (Union, types.UnionType):
        return _union_mismatch(value, args)
    if origin is Literal:
        return None if value in args else "not one of the allowed values"
    if origin is typing.Annotated:
        return _mismatch(value, args[0])
    if ann is None or ann is _NONE_TYPE:
        return None if value is None else "expected None"
    if origin is not None:
        return _mismatch_generic(value, origin, args)
    if isinstance(ann, str) or not isinstance(ann, type):
        return None  # unresolved forward reference or a typing special form we do not model
    if value is None:
        return _NONE_NOT_ALLOWED
    return _instance_fits(value, ann)


_NONE_NOT_ALLOWED = "None is not allowed here (annotate the parameter Optional[...] to allow it)"
# Reasons that only say "the outer type is not this arm"; any other reason means the value matched an arm's outer
# type and failed inside it, which is the explanation a user needs (``item 1 (1) wrong type``).
_SHALLOW_REASONS = frozenset(
    {"wrong type", "wrong container type", "expected None", _NONE_NOT_ALLOWED, "expected a class", "expected a callable"}
)


def _union_mismatch(value: Any, arms: tuple[Any, ...]) -> str | None:
    reasons = [_mismatch(value, a) for a in arms]
    if any(r is None for r in reasons):
        return None
    for reason in reasons:
        if reason not in _SHALLOW_REASONS:
            return reason  # the closest arm: the value got past its outer check
    return _NONE_NOT_ALLOWED if value is None else "wrong type"


def _instance_fits(value: Any, ann: type) -> str | None:
    if ann is float and isinstance(value, int) and not isinstance(value, bool):
        return None  # ints are valid floats, as in the numeric tower
    if ann is complex and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if ann is int and isinstance(value, bool):
        return "a bool is not an int here"
    if typing.is_protocol(ann) if hasattr(typing, "is_protocol") else getattr(ann, "_is_protocol", False):
        return None
    if isinstance(value, ann):
        return None
    if issubclass(ann, enum.Enum) and isinstance(value, str) and value in ann.__members__:
        return None
    return "wrong type"


def _class_fits(produced: type, ann: Any) -> str | None:
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        return None if any(_class_fits(produced, a) is None for a in typing.get_args(ann)) else "wrong type"
    if origin is not None:
        ann = origin
    if not isinstance(ann, type) or getattr(ann, "_is_protocol", False):
        return None
    try:
        return None if issubclass(produced, ann) else f"a Config of {produced.__name__} builds the wrong type"
    except TypeError:
        return None


def _mismatch_generic(value: Any, origin: Any, args: tuple[Any, ...]) -> str | None:
    if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence, set, frozenset,
                  collections.abc.Set, collections.abc.Iterable, collections.abc.Collection):
        allowed: tuple[type, ...] = (list, tuple) if origin is not list else (list, tuple)
        if origin in (set, frozenset, collections.abc.Set):
            allowed = (set, frozenset, list, tuple)
        if not isinstance(value, allowed) or isinstance(value, str):
            return "wrong container type"
        if args:
            for i, item in enumerate(value):
                reason = _mismatch(item, args[0])
                if reason:
                    return f"item {i} ({item!r}) {reason}"
        return None
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return "wrong container type"
        if args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return f"expected {len(args)} items, got {len(value)}"
            for i, (item, a) in enumerate(zip(value, args)):
                reason = _mismatch(item, a)
                if reason:
                    return f"item {i} ({item!r}) {reason}"
        elif args:
            for i, item in enumerate(value):
                reason = _mismatch(item, args[0])
                if reason:
                    return f"item {i} ({item!r}) {reason}"
        return None
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        if not isinstance(value, dict):
            return "wrong container type"
        if len(args) == 2:
            for k, v in value.items():
                reason = _mismatch(k, args[0]) or _mismatch(v, args[1])
                if reason:
                    return f"entry {k!r}: {reason}"
        return None
    if origin is type:
        return None if inspect.isclass(value) else "expected a class"
    if origin is collections.abc.Callable:
        return None if callable(value) else "expected a callable"
    if isinstance(origin, type):
        return None if isinstance(value, origin) else "wrong type"
    return None
