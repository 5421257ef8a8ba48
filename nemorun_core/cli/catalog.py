"""Finding entrypoints and factories by name: ``list_entrypoints``, ``list_factories``, ``resolve_factory``.

NeMo Run's lookup functions over nemorun's registries: entrypoints decorated with a ``namespace`` (and those that
other distributions declare under the ``nemorun.cli`` entry-point group, left unloaded until used), and the
factories of :mod:`nemorun_core.config.factories`, found by the type they build, by the function and argument they
were registered for, or by their ``namespace``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from nemorun_core.config.factories import REGISTRY, Factory, FactoryRegistry
from nemorun_core.errors import ConfigError, did_you_mean

ENTRY_POINT_GROUP = "nemorun.cli"

# namespace -> name -> decorated function. Filled by ``@run.cli.entrypoint(namespace=...)`` at import of the
# user's module (a decorator has nowhere else to put it); re-decorating a name replaces it.
_ENTRYPOINTS: dict[str, dict[str, Any]] = {}


def register_entrypoint(namespace: str, name: str, fn: Any) -> None:
    _ENTRYPOINTS.setdefault(namespace, {})[name] = fn


def list_entrypoints(namespace: str | None = None) -> dict[str, dict[str, Any]]:
    """Entrypoints by namespace and name: ``{"llm": {"train": <fn>}}``.

    Args:
        namespace: only this namespace (a dotted name also selects its sub-namespaces: ``llm`` gives ``llm.gpt``).

    Returns:
        The decorated functions of this process, and ``importlib.metadata.EntryPoint`` objects (not loaded) for
        what installed distributions declare under the ``nemorun.cli`` group as ``namespace.name = module:fn``.
    """
    from importlib.metadata import entry_points

    out: dict[str, dict[str, Any]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ns, _, name = ep.name.rpartition(".")
        out.setdefault(ns or "default", {}).setdefault(name, ep)
    for ns, items in _ENTRYPOINTS.items():
        out.setdefault(ns, {}).update(items)
    if namespace is not None:
        out = {ns: items for ns, items in out.items() if ns == namespace or ns.startswith(namespace + ".")}
    return {ns: dict(sorted(items.items())) for ns, items in sorted(out.items())}


def _matches(f: Factory, type_or_namespace: Any) -> bool:
    if isinstance(type_or_namespace, str):
        return f.namespace == type_or_namespace or _qualname(f.target, f.target_arg) == type_or_namespace or \
            _qualname(f.returns_class) == type_or_namespace
    if f.target is not None:
        return f.target is getattr(type_or_namespace, "__nemorun_wrapped__", type_or_namespace) and \
            f.target_arg is None
    cls = f.returns_class
    return cls is not None and inspect.isclass(type_or_namespace) and issubclass(cls, type_or_namespace)


def _qualname(obj: Any, arg: str | None = None) -> str | None:
    if obj is None:
        return None
    base = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
    return f"{base}.{arg}" if arg else base


def list_factories(type_or_namespace: Any, *, registry: FactoryRegistry | None = None) -> list[Callable[..., Any]]:
    """The factory functions registered for a type (and its subclasses), a task function, or a namespace.

    Args:
        type_or_namespace: a class (factories whose return annotation builds it), a task function (its
            whole-task factories, ``--factory NAME``), or a string: a ``namespace=`` given to ``@run.cli.factory``,
            a class's dotted name (``my_pkg.ModelConfig``), or ``module.fn.arg`` for ``target=fn, target_arg=arg``.

    Returns:
        The functions, in registration order.
    """
    return [f.fn for f in (registry or REGISTRY).all() if _matches(f, type_or_namespace)]


def resolve_factory(target: Any, name: str, *, registry: FactoryRegistry | None = None) -> Callable[..., Any]:
    """The factory called ``name`` registered for ``target`` (see :func:`list_factories` for what ``target`` may be).

    A dotted ``name`` (``my_pkg.factories.base_model``) not registered under that name is imported.

    Raises:
        ConfigError: no such factory; the message lists those registered for ``target``, with a did-you-mean.
    """
    found = [f for f in (registry or REGISTRY).all() if _matches(f, target) and f.name == name]
    if found:
        return found[-1].fn
    if "." in name:
        from nemorun_core.config.factories import import_dotted

        fn = import_dotted(name)
        if fn is not None:
            return fn
    names = sorted({f.name for f in (registry or REGISTRY).all() if _matches(f, target)})
    label = target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))
    hint = did_you_mean(name, names).lstrip("; ") or (f"factories for {label}: {', '.join(names)}" if names else
                                                        f"register one with @run.cli.factory for {label}")
    raise ConfigError(f"no factory {name!r} for {label}\n  hint: {hint}")
