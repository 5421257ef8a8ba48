"""Constructor arguments of packagers: NeMo Run's names beside ours, and did-you-mean for a misspelled one.

A packager class lists NeMo Run's argument names in ``nemo_run_names`` (``{"basepath": "repo"}``). Each is turned
into the field it sets *before* the dataclass ``__init__`` runs, so an instance only ever has the canonical fields:
``dataclasses.fields``, equality, ``repr`` and serialization see one spelling, and a packager written either way
round-trips to the same YAML. ``inspect.signature(cls)`` lists the NeMo Run names too (keyword-only), so
``run.Config(run.GitArchivePackager, basepath=...)`` and the CLI accept them like any parameter.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from nemorun_core.initargs import CheckedInit, UnknownArgumentError

_SIGNATURES: dict[type, inspect.Signature] = {}


def _fields_signature(cls: type) -> inspect.Signature:
    sig = inspect.signature(cls.__init__)
    return sig.replace(parameters=list(sig.parameters.values())[1:])  # drop self


def full_signature(cls: type) -> inspect.Signature:
    """The canonical parameters of ``cls``, then its NeMo Run names as keyword-only parameters (default None)."""
    sig = _SIGNATURES.get(cls)
    if sig is None:
        base = _fields_signature(cls)
        params = list(base.parameters.values())
        for name, field in getattr(cls, "nemo_run_names", {}).items():
            if name not in base.parameters:
                annotation = base.parameters[field].annotation if field in base.parameters else Any
                params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                                annotation=annotation))
        sig = _SIGNATURES[cls] = base.replace(parameters=params)
    return sig


def canonical_kwargs(cls: type, args: tuple, kwargs: Mapping[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` with each NeMo Run name replaced by the field it sets (positional arguments that have a
    name are passed by name, so a setting given positionally is seen too).

    Raises:
        UnknownArgumentError: a keyword that is neither a field nor a NeMo Run name (with did-you-mean over both).
        PackagerSettingError: one setting given twice, under both of its names.
    """
    from nemorun_core.packaging.base import PackagerSettingError  # here: base imports this module

    aliases: Mapping[str, str] = getattr(cls, "nemo_run_names", {})
    if not aliases:
        return args, dict(kwargs)
    try:
        params = _fields_signature(cls).parameters
    except (TypeError, ValueError):  # no introspectable __init__: leave the arguments to it
        return args, dict(kwargs)
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and not n.startswith("_")] + list(aliases)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params and key not in aliases:
                raise UnknownArgumentError(key, cls.__name__, accepted)
    named = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    out = dict(zip(named, args))
    rest = args[len(named):]
    for key, value in kwargs.items():
        if key in out:  # also given positionally: Python's own error
            raise TypeError(f"{cls.__name__}() got multiple values for argument {key!r}")
        if key in params or key not in aliases:  # a field, or one for the subclass's own **kwargs
            out[key] = value
    sources: dict[str, str] = {}
    applied: list[tuple[str, Any]] = []
    for key, value in kwargs.items():
        if key in params or key not in aliases:
            continue
        field, converted = cls.nemo_run_value(key, value)
        if field is None:  # a NeMo Run setting that changes others (HybridPackager's extract_at_root)
            applied.append((key, value))
            continue
        other = sources.get(field) or (field if field in out else None)
        if other is not None:
            raise PackagerSettingError(
                f"{other}= and {key}= are one setting ({key} is NeMo Run's name for {field}); pass only one",
                path=f"{cls.__name__}.{field}")
        sources[field] = key
        out[field] = converted
    for key, value in applied:
        cls.apply_nemo_run_setting(key, value, out)
    return rest, out


class PackagerMeta(CheckedInit):
    """The metaclass of ``Packager``: NeMo Run's argument names become canonical fields, then the executors'
    argument check (did-you-mean, missing arguments) runs as for every executor."""

    def canonical_args(cls, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        return canonical_kwargs(cls, args, kwargs)

    def shown_signature(cls) -> Any:
        return full_signature(cls)


def check_bool(value: Any, path: str) -> None:
    """Refuse a switch that is not ``True`` or ``False`` (``"false"`` would be true)."""
    from nemorun_core.packaging.base import PackagerSettingError  # here: base imports this module

    if not isinstance(value, bool):
        raise PackagerSettingError(f"must be True or False, got {value!r}", path=path)


def check_text(value: Any, path: str, *, optional: bool = False, what: str = "a string") -> None:
    """Refuse a setting that must be a string (or None, when ``optional``)."""
    from nemorun_core.packaging.base import PackagerSettingError

    if value is None and optional:
        return
    if not isinstance(value, str):
        raise PackagerSettingError(f"must be {what}{' or None' if optional else ''}, got {value!r}", path=path)


def as_patterns(value: Any, path: str, *, empty_string_is_none: bool = False) -> list[str]:
    """A pattern or a list of patterns as a list of strings (``""`` as no pattern where NeMo Run writes it so)."""
    from nemorun_core.packaging.base import PackagerSettingError

    if isinstance(value, str):
        return [] if empty_string_is_none and value == "" else [value]
    if not isinstance(value, (list, tuple)):
        raise PackagerSettingError(f"expected a pattern or a list of patterns, got {value!r}", path=path)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise PackagerSettingError(f"item {i} must be a string (a glob), got {item!r}", path=path)
    return list(value)
