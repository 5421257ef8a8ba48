"""``@run.autoconvert``: write a config factory with plain calls, get a ``run.Config`` tree back.

    @run.autoconvert
    def small_model() -> ModelConfig:
        return ModelConfig(hidden_size=256, num_layers=4)

    small_model()   # run.Config(ModelConfig, hidden_size=256, num_layers=4); ModelConfig is never called

As in NeMo Run, this is Fiddle's ``auto_config``: the function's source is rewritten so that every call in it is
*recorded* as a ``run.Config`` (``functools.partial(...)`` as a ``run.Partial``) instead of being made, so no
constructor runs and only the arguments the code writes are set. Builtins (``len``, ``str``, ``range``...) are still
called. Unlike NeMo Run, comprehensions, loops and ``if`` are allowed (the calls inside them are recorded too), and a
call to another ``@run.autoconvert`` factory inlines that factory's config tree. Values that are already configs are
kept; dataclass instances the code holds (a module constant, a closure variable) become configs too, so the result
is all configs. The source must be readable (a file, or a notebook cell); a function without one is an error.

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
    """Decorator: make a factory written with plain calls return the config tree those calls describe.

    Use as ``@run.autoconvert`` or ``@run.autoconvert(partial=True)`` (the root becomes a ``run.Partial``).
    The calls in the function are recorded, not made (see the module docstring); the wrapper keeps the function's
    name, docstring and signature, and carries ``__nemorun_wrapped__`` so that configuring the factory configures
    the original function.

    Args:
        fn: the factory (when used without parentheses).
        partial: return a ``run.Partial`` at the root instead of a ``run.Config``.

    Returns:
        The wrapped factory, or a decorator when called with options only.

    Raises:
        ConfigError: (when the factory is first called) its source cannot be read, or it is not a plain function.
        fiddle's ``UnsupportedLanguageConstructError``: the function uses a construct ``auto_config`` cannot record
            (``global``, ``nonlocal``, a generator); return ``run.Config(...)`` directly instead.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        recorder: list[Any] = []  # the auto_config'd function, made on first call (it parses the source)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not recorder:
                recorder.append(_recording(func))
            return to_config(recorder[0](*args, **kwargs), partial=partial)

        wrapper.__nemorun_wrapped__ = func  # type: ignore[attr-defined]
        wrapper.__nemorun_autoconvert__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate(fn) if fn is not None else decorate


def _recording(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` rewritten by Fiddle's auto_config so that its calls build run.Config / run.Partial nodes."""
    import types

    from fiddle.experimental import auto_config as fdl_auto_config

    from nemorun_core.errors import ConfigError

    name = getattr(func, "__qualname__", repr(func))
    if not isinstance(func, types.FunctionType):
        raise ConfigError(f"@run.autoconvert needs a plain function, got {type(func).__name__} {name}; decorate the "
                          "function itself (put @run.autoconvert directly above def)")

    def exempt(fn_or_cls: Any) -> bool:
        """Calls that are made, not recorded: builtins (Fiddle's policy), config constructors and builders, and other
        autoconvert factories (whose result, a config tree, is inlined)."""
        import fiddle as fdl

        from nemorun_core.config.building import build

        if fdl_auto_config.auto_config_policy.v1(fn_or_cls) or fn_or_cls is build or fn_or_cls is fdl.build:
            return True
        if isinstance(fn_or_cls, type) and issubclass(fn_or_cls, fdl.Buildable):
            return True
        return bool(getattr(fn_or_cls, "__nemorun_autoconvert__", False))

    try:
        rewritten = fdl_auto_config.auto_config(
            func,
            experimental_allow_control_flow=True,
            experimental_allow_dataclass_attribute_access=True,
            experimental_exemption_policy=exempt,
            experimental_config_types=fdl_auto_config.ConfigTypes(config_cls=Config, partial_cls=Partial),
            experimental_result_must_contain_buildable=False,
        )
    except (OSError, TypeError) as exc:  # inspect.getsource: no file behind the function (exec, a bare REPL)
        raise ConfigError(
            f"@run.autoconvert cannot read the source of {name} ({exc}): it records the calls the source makes. "
            "Define the function in a file (or a notebook cell), or return run.Config(...) from a plain function"
        ) from None
    return rewritten.as_buildable
