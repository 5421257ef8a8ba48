"""``@run.autoconvert``: write a config factory with plain objects, get a ``run.Config`` tree back.

    @run.autoconvert
    def small_model() -> ModelConfig:
        return ModelConfig(hidden_size=256, num_layers=4)

    small_model()   # run.Config(ModelConfig, hidden_size=256, num_layers=4)

Dataclass instances become ``run.Config(cls, **fields)``, recursively, inside lists, tuples and dicts too; values
that are already configs are kept as they are, other values are kept as plain values.

Why the wrapper sets ``__nemorun_wrapped__``: a factory is used in two ways. Called directly (in a script, or by
the CLI to resolve ``model=small_model``), the wrapper's job is to hand back an editable config. Configured
(``run.Config(small_model)``, or referenced from a serialized config), it is a step of the *build*, where the
result must be the built object, not a config of it. Unwrapping at configuration time gives exactly that: the
config calls the original function, which returns the plain object. It also keeps names consistent: the module
attribute (the wrapper) resolves to the function that configs record, so serialization imports it by name.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, TypeVar, overload

from nemorun_core.config.buildable import Config, Partial, is_buildable

F = TypeVar("F", bound=Callable[..., Any])


def to_config(value: Any, *, partial: bool = False) -> Any:
    """Turn plain objects into their config: dataclass instances become ``run.Config`` (``run.Partial`` at the
    root, or for each item of a root list/tuple/dict, when ``partial``), containers are converted item by item,
    configs and other values are kept.

    Only the fields that differ from their defaults are set, so the config reads like the code that made it and a
    later change of a default still reaches configs that never set that field.
    """
    if is_buildable(value):
        if partial and not isinstance(value, Partial):
            return _as_partial(value)
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kwargs = {
            f.name: to_config(getattr(value, f.name))  # nested configs stay Config: only roots become Partial
            for f in dataclasses.fields(value)
            if f.init and not _is_default(f, getattr(value, f.name))
        }
        return (Partial if partial else Config)(type(value), **kwargs)
    # A factory returning several configs (a list or dict of them) has several roots: ``partial`` applies to each.
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(to_config(v, partial=partial) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_config(v, partial=partial) for v in value)
    if isinstance(value, dict):
        return {k: to_config(v, partial=partial) for k, v in value.items()}
    return value


def _is_default(field: dataclasses.Field, value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # values whose == is not a bool (arrays): keep them set, which is always correct
        return False


def _as_partial(config: Any) -> Any:
    args = config.__arguments__
    positional = [args[i] for i in sorted(k for k in args if isinstance(k, int))]
    keywords = {k: v for k, v in args.items() if not isinstance(k, int)}
    return Partial(config.__fn_or_cls__, *positional, **keywords)


@overload
def autoconvert(fn: F) -> F: ...


@overload
def autoconvert(fn: None = None, *, partial: bool = False) -> Callable[[F], F]: ...


def autoconvert(fn: Optional[Callable[..., Any]] = None, *, partial: bool = False) -> Any:
    """Decorator: make a factory that returns plain objects return the equivalent config tree.

    Use as ``@run.autoconvert`` or ``@run.autoconvert(partial=True)`` (the root becomes a ``run.Partial``).
    The wrapper keeps the function's name, docstring and signature, and carries ``__nemorun_wrapped__`` so that
    configuring the factory configures the original function (see the module docstring).

    Args:
        fn: the factory (when used without parentheses).
        partial: return a ``run.Partial`` at the root instead of a ``run.Config``.

    Returns:
        The wrapped factory, or a decorator when called with options only.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return to_config(func(*args, **kwargs), partial=partial)

        wrapper.__nemorun_wrapped__ = func  # type: ignore[attr-defined]
        return wrapper

    return decorate(fn) if fn is not None else decorate
