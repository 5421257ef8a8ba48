"""``@run.cli.factory``: named functions that build a config for a parameter, or for a whole task.

Two kinds of factory::

    @run.cli.factory
    def my_model(hidden_size: int = 3) -> ModelConfig:           # for any parameter annotated ModelConfig
        return run.Config(ModelConfig, hidden_size=hidden_size)

    @run.cli.factory(target=train_model)                          # a whole-task base: ``--factory fast``
    def fast() -> run.Partial[train_model]:
        return run.Partial(train_model, training=run.Config(TrainingConfig, epochs=1))

``@run.cli.factory(target=train_model, target_arg="model")`` offers a factory to one parameter whatever its
annotation. The decorator returns the function unchanged, so factories stay ordinary functions.

Registrations live in a :class:`FactoryRegistry`. Decorators write to the process-wide :data:`REGISTRY` (a
decorator has nowhere else to put them), and tests isolate themselves with :func:`isolated_registry` or
:meth:`FactoryRegistry.unregister`, so no registration leaks from one test into another.

The registry lives under ``config/`` because applying an override (``model=my_model(...)``) looks factories up, and
overrides are config-level; ``nemorun_core.cli.factories`` re-exports it, so ``@run.cli.factory`` is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import typing
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Factory:
    """One registration. ``target``/``target_arg`` restrict where it is offered; ``returns`` is its annotation."""

    name: str
    fn: Callable[..., Any]
    target: Callable[..., Any] | None = None
    target_arg: str | None = None
    is_target_default: bool = False
    namespace: str | None = None

    @property
    def returns_class(self) -> type | None:
        """The class this factory builds, from its return annotation; None when it does not say."""
        return _produced_class(self.returns)

    @property
    def returns(self) -> Any:
        try:
            return typing.get_type_hints(self.fn).get("return")
        except Exception:  # unresolvable forward references: offer the factory everywhere rather than nowhere
            return inspect.signature(self.fn).return_annotation if callable(self.fn) else None

    @property
    def is_task_factory(self) -> bool:
        return self.target is not None and self.target_arg is None

    def fits(self, annotation: Any) -> bool:
        """Whether this (untargeted) factory's return annotation fits a parameter annotated ``annotation``."""
        produced = _produced_class(self.returns)
        if produced is None:
            return True  # unannotated: we cannot tell, so do not hide it
        return _accepts_class(annotation, produced)


def _accepts_class(annotation: Any, produced: type) -> bool:
    """Whether a parameter annotated ``annotation`` takes what builds a ``produced`` (open annotations take all)."""
    from nemorun_core.config.grammar import is_open, union_members

    if is_open(annotation):
        return True
    for member in union_members(annotation):
        origin = typing.get_origin(member) or member
        if isinstance(origin, type):
            try:
                if issubclass(produced, origin):
                    return True
            except TypeError:
                return True
    return False


def _produced_class(returns: Any) -> type | None:
    """``ModelConfig`` for ``-> ModelConfig`` and for ``-> run.Config[ModelConfig]``; None when unknown."""
    if returns is None or returns is inspect.Signature.empty or isinstance(returns, str):
        return None
    origin = typing.get_origin(returns)
    if origin is not None:
        args = typing.get_args(returns)
        # ``run.Config[X]`` / ``fdl.Config[X]`` build an X.
        if getattr(origin, "__module__", "").startswith(("nemorun_core.config", "fiddle")):
            return args[0] if args and isinstance(args[0], type) else None
        return origin if isinstance(origin, type) else None
    return returns if isinstance(returns, type) else None


def _unwrap(fn: Any) -> Any:
    return getattr(fn, "__nemorun_wrapped__", fn)


class FactoryRegistry:
    """Factories by name. Registering a name again for the same target replaces it (re-running a script)."""

    def __init__(self) -> None:
        self._items: list[Factory] = []

    def register(self, factory: Factory) -> Factory:
        self._items = [f for f in self._items if not self._same_slot(f, factory)] + [factory]
        return factory

    @staticmethod
    def _same_slot(a: Factory, b: Factory) -> bool:
        return a.name == b.name and a.target is b.target and a.target_arg == b.target_arg

    def unregister(self, fn_or_name: Callable[..., Any] | str) -> int:
        """Remove the factories registered for a function (or under a name); return how many were removed."""
        before = len(self._items)
        self._items = [
            f for f in self._items if not (f.fn is fn_or_name or f.name == fn_or_name)
        ]
        return before - len(self._items)

    def all(self) -> list[Factory]:
        return list(self._items)

    def for_parameter(self, owner: Any, arg: str | None, annotation: Any) -> list[Factory]:
        """Factories offered for parameter ``arg`` of ``owner`` (a function or class) annotated ``annotation``."""
        owner = _unwrap(owner)
        out = []
        for f in self._items:
            if f.target is not None:
                if f.target_arg is not None and f.target is owner and f.target_arg == arg:
                    out.append(f)
                elif f.target_arg is None and inspect.isclass(f.target) and _accepts_class(annotation, f.target):
                    out.append(f)  # NeMo Run's ``@run.cli.factory(target=ModelConfig)``: a factory for a type
            elif f.fits(annotation):
                out.append(f)
        return out

    def for_task(self, fn: Any) -> list[Factory]:
        """Whole-task factories for ``fn`` (used by ``--factory NAME``)."""
        fn = _unwrap(fn)
        return [f for f in self._items if f.is_task_factory and f.target is fn]

    def default_for(self, owner: Any, arg: str, annotation: Any) -> Factory | None:
        for f in self.for_parameter(owner, arg, annotation):
            if f.is_target_default:
                return f
        return None


REGISTRY = FactoryRegistry()


@contextlib.contextmanager
def isolated_registry() -> Iterator[FactoryRegistry]:
    """Run a block with the process-wide registry emptied, then restore it (for tests)."""
    saved = REGISTRY._items
    REGISTRY._items = []
    try:
        yield REGISTRY
    finally:
        REGISTRY._items = saved


def factory(
    fn: F | None = None,
    *,
    target: Callable[..., Any] | None = None,
    target_arg: str | None = None,
    name: str | None = None,
    is_target_default: bool = False,
    namespace: str | None = None,
    registry: FactoryRegistry | None = None,
) -> Any:
    """Register ``fn`` as a CLI factory; usable bare (``@run.cli.factory``) or with options.

    Args:
        fn: the factory function. Its return annotation decides which parameters it is offered to.
        target: restrict the factory to one function: with ``target_arg``, to one of its parameters; without, the
            factory builds the whole task and is chosen with ``--factory NAME``.
        target_arg: the parameter of ``target`` the factory is offered to, whatever that parameter's annotation.
        name: the name used on the command line; defaults to the function's name.
        is_target_default: use this factory for its parameter when the user sets nothing and the parameter has no
            default of its own.
        namespace: a group to find the factory by (``run.cli.list_factories("my_ns")``, ``resolve_factory``).
        registry: where to register (defaults to the process-wide :data:`REGISTRY`).

    Returns:
        ``fn`` itself (or a decorator when called with options only).
    """
    if target_arg is not None and target is None:
        raise TypeError("@run.cli.factory(target_arg=...) needs target= as well (the function that owns the argument)")

    def decorate(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@run.cli.factory decorates a function, got {f!r}")
        (registry or REGISTRY).register(
            Factory(name or f.__name__, f, _unwrap(target) if target is not None else None, target_arg,
                    is_target_default, namespace)
        )
        return f

    return decorate(fn) if fn is not None else decorate


def import_dotted(path: str) -> Any:
    """The object at a dotted path (``pkg.module.fn``, or ``pkg.module:fn``), importing its module; None if absent."""
    import importlib

    module, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module:
        return None
    obj: Any = None
    parts = attr.split(".")
    # ``pkg.mod.Class.method``: find the longest importable module prefix.
    mod_parts = module.split(".")
    while mod_parts:
        try:
            obj = importlib.import_module(".".join(mod_parts))
            break
        except ImportError:
            parts.insert(0, mod_parts.pop())
    if obj is None:
        return None
    for part in parts:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def call_factory(f: Factory, kwargs: dict[str, Any]) -> Any:
    """Call a factory and normalize its result: a dataclass instance becomes an equivalent ``run.Config``."""
    return to_config(f.fn(**kwargs))


def to_config(value: Any) -> Any:
    """A dataclass instance -> an equivalent ``run.Config`` (``run.autoconvert`` semantics); else unchanged."""
    from nemorun_core.config.autoconvert import to_config as _to_config

    return _to_config(value)
