"""Functional tools over config trees: walk, per-argument walk, broadcast, diff, flatten.

Every function here returns a new tree and leaves its input untouched, so a base config can be varied freely
(``base.walk(...)``, ``run.broadcast(base, ...)``) for sweeps. A node shared in several places of the input stays
shared (transformed once) in the output, matching Fiddle's build semantics where a shared node is built once.

Paths are the dotted form used everywhere else: ``model.hidden_size``, ``callbacks[0].every``; the root is ``""``.
A tree that contains itself, or is nested deeper than ``building.MAX_DEPTH``, is refused with a ConfigError naming
the path (see :class:`~nemorun_core.config.building.TreeGuard`).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from nemorun_core.config import typecheck
from nemorun_core.config.buildable import _valid_names, is_buildable, target_name
from nemorun_core.config.building import TreeGuard, join_path
from nemorun_core.errors import ConfigTypeError, UnknownParameterError

_MISSING = object()


def _rebuilt(node: Any, arguments: dict[Any, Any]) -> Any:
    """A copy of buildable ``node`` with ``arguments``; values were already checked by the caller."""
    new = copy.copy(node)
    object.__setattr__(new, "__arguments__", arguments)
    return new


def _rebuild_container(node: Any, items: list[Any]) -> Any:
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*items)
    return type(node)(items) if isinstance(node, (list, tuple)) else items


def walk(config: Any, fn: Callable[[str, Any], Any]) -> Any:
    """Return a new tree where ``fn(path, value)`` has replaced every node, children before their parents.

    ``fn`` sees buildables (already rebuilt from their transformed children), lists, tuples, dicts and leaves; it
    returns the replacement (the value itself to keep it). The root is visited last, with path ``""``.

    Args:
        config: the tree's root.
        fn: ``fn(path, value) -> new value``.

    Returns:
        The transformed tree; ``config`` is not modified.
    """
    memo: dict[int, Any] = {}
    guard = TreeGuard()

    def visit(node: Any, path: str) -> Any:
        if is_buildable(node) and id(node) in memo:
            return memo[id(node)]
        if not is_buildable(node) and not isinstance(node, (list, tuple, dict)):
            return fn(path, node)
        guard.enter(node, path)
        if is_buildable(node):
            args = {k: visit(v, join_path(path, k)) for k, v in node.__arguments__.items()}
            new: Any = _rebuilt(node, args)
        elif isinstance(node, (list, tuple)):
            new = _rebuild_container(node, [visit(v, join_path(path, i)) for i, v in enumerate(node)])
        else:
            new = {k: visit(v, join_path(path, k)) for k, v in node.items()}
        guard.leave(node)
        result = fn(path, new)
        if is_buildable(node):
            memo[id(node)] = result
        return result

    return visit(config, "")


def buildables(config: Any) -> Iterator[tuple[str, Any]]:
    """``(path, node)`` for every Config/Partial of the tree, parents first; a node shared in several places once."""
    return _buildables(config)


def _buildables(config: Any, path: str = "", seen: set[int] | None = None,
                guard: TreeGuard | None = None) -> Iterator[tuple[str, Any]]:
    """Every buildable of the tree with its path, parents first; a shared node once."""
    seen = set() if seen is None else seen
    guard = TreeGuard() if guard is None else guard
    if is_buildable(config):
        if id(config) in seen:
            guard.enter(config, path)  # a shared node is skipped; a node that is its own ancestor is a cycle
            guard.leave(config)
            return
        seen.add(id(config))
        yield path, config
        children = config.__arguments__.items()
    elif isinstance(config, (list, tuple)):
        children = enumerate(config)
    elif isinstance(config, dict):
        children = config.items()
    else:
        return
    guard.enter(config, path)
    for key, value in children:
        yield from _buildables(value, join_path(path, key), seen, guard)
    guard.leave(config)


def _accepts(node: Any, name: str) -> bool:
    """True when ``node``'s target names ``name`` as a parameter (``**kwargs`` does not count: it accepts anything)."""
    try:
        params = inspect.signature(node.__fn_or_cls__).parameters
    except (TypeError, ValueError):
        return False
    param = params.get(name)
    return param is not None and param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _check_names(config: Any, names: list[str], operation: str) -> None:
    nodes = [node for _, node in _buildables(config)]
    for name in names:
        if not any(_accepts(node, name) for node in nodes):
            everything = sorted({p for node in nodes for p in (_valid_names(node.__fn_or_cls__) or [])})
            raise UnknownParameterError(name, f"any config in the tree ({operation})", everything)


def _checked(node: Any, name: str, value: Any, path: str) -> Any:
    annotation = typecheck.parameter_annotations(node.__fn_or_cls__).get(name)
    if annotation is not None:
        reason = typecheck.mismatch(value, annotation)
        if reason is not None:
            detail = "" if reason == "wrong type" else reason
            raise ConfigTypeError(join_path(path, name), typecheck.type_name(annotation), value, detail=detail)
    return value


def walk_arguments(config: Any, **fns: Callable[[Any], Any]) -> Any:
    """Return a copy where every *set* argument named like a keyword is replaced by ``fn(old value)``.

    Backs ``cfg.walk(hidden_size=lambda v: v * 2)``. Arguments left at their default are not touched (set them with
    :func:`broadcast`). New values are type-checked against the parameter, with their full path in the error.
    NeMo Run's spelling, a function of the config node (``cfg.walk(a=lambda cfg: cfg.a * 2)``), works too: when the
    function fails on the value with ``AttributeError`` (an ``int`` has no ``.a``), it is called with the node.

    Raises:
        UnknownParameterError: no config in the tree accepts one of the names (a likely typo; the closest name is
            suggested).
        ConfigTypeError: a function returned a value that does not fit the parameter.
    """
    _check_names(config, list(fns), "walk")
    return _set_arguments(config, lambda node, name, args: name in args,
                          lambda node, name, old: _walked(fns[name], node, old), fns)


def _walked(fn: Callable[[Any], Any], node: Any, old: Any) -> Any:
    try:
        return fn(old)
    except AttributeError as first:
        if is_buildable(old):
            raise
        try:
            return fn(node)  # NeMo Run's form: the function reads the argument from the node
        except AttributeError:
            raise first from None


def broadcast(config: Any, **values: Any) -> Any:
    """Return a copy where each argument is set to its value in every config of the tree whose target accepts it.

    A Config given as a value is shared by all the nodes that receive it (built once), as Fiddle shares nodes.

    Raises:
        UnknownParameterError: no config in the tree accepts one of the names; the closest name is suggested.
        ConfigTypeError: the value does not fit a receiving parameter's annotation (the path names which).
    """
    _check_names(config, list(values), "broadcast")
    return _set_arguments(config, lambda node, name, args: _accepts(node, name),
                          lambda node, name, old: values[name], values)


def _set_arguments(config: Any, applies: Callable[[Any, str, dict], bool],
                   new_value: Callable[[Any, str, Any], Any], names: Iterable[str]) -> Any:
    """Rewrite arguments ``names`` in every config node where ``applies(node, name, args)``, type-checked."""

    def apply(path: str, node: Any) -> Any:
        if not is_buildable(node):
            return node
        args = dict(node.__arguments__)
        for name in names:
            if applies(node, name, args):
                args[name] = _checked(node, name, new_value(node, name, args.get(name)), path)
        return _rebuilt(node, args)

    return walk(config, apply)


def flatten(config: Any, *, include_defaults: bool = False) -> dict[str, Any]:
    """Map each dotted path to its leaf value: ``{"model.hidden_size": 768, "data.paths[0]": "a"}``.

    Configs and containers are not leaves; their contents are. An empty container is a leaf (so it is not lost).

    Args:
        config: the tree's root.
        include_defaults: also list the parameters left at their default value.
    """
    out: dict[str, Any] = {}
    for path, value in _leaves(config, "", include_defaults, set(), TreeGuard()):
        out[path] = value
    return out


def _arguments(node: Any, include_defaults: bool) -> dict[Any, Any]:
    if not include_defaults:
        return dict(node.__arguments__)
    args: dict[Any, Any] = {}
    try:
        params = inspect.signature(node.__fn_or_cls__).parameters.values()
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.default is not inspect.Parameter.empty and not _is_factory_default(p.default):
            args[p.name] = p.default
    args.update(node.__arguments__)
    return args


def _is_factory_default(default: Any) -> bool:
    # Dataclass fields with default_factory show a sentinel as their default, not a value.
    return type(default).__name__ == "_HAS_DEFAULT_FACTORY_CLASS"


def _leaves(node: Any, path: str, include_defaults: bool, seen: set[int],
            guard: TreeGuard) -> Iterator[tuple[str, Any]]:
    if is_buildable(node):
        if id(node) in seen:
            guard.enter(node, path)  # a shared node is skipped; a node that is its own ancestor is a cycle
            guard.leave(node)
            return
        seen.add(id(node))
        children: Any = _arguments(node, include_defaults).items()
    elif isinstance(node, (list, tuple)) and node:
        children = enumerate(node)
    elif isinstance(node, dict) and node:
        children = node.items()
    else:
        yield path, node
        return
    guard.enter(node, path)
    for key, value in children:
        yield from _leaves(value, join_path(path, key), include_defaults, seen, guard)
    guard.leave(node)


# -- diff ------------------------------------------------------------------------------------------------------------
class Change(NamedTuple):
    """One difference: ``kind`` is ``"added"``, ``"removed"`` or ``"changed"``; absent sides are None."""

    path: str
    kind: str
    old: Any
    new: Any


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigDiff:
    """The differences between two config trees. False when there are none; ``str()`` gives a ``-``/``+`` listing."""

    def __init__(self, changes: list[Change]):
        self.changes = changes

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def lines(self) -> list[tuple[str, str]]:
        """``(sign, text)`` pairs, ``sign`` being ``"-"`` or ``"+"``: the rendering shared by str and rich."""
        out = []
        for change in self.changes:
            name = change.path or "<root>"
            if change.kind in ("removed", "changed"):
                out.append(("-", f"{name}: {_short(change.old)}"))
            if change.kind in ("added", "changed"):
                out.append(("+", f"{name}: {_short(change.new)}"))
        return out

    def __str__(self) -> str:
        if not self.changes:
            return "no differences"
        return "\n".join(f"{sign} {text}" for sign, text in self.lines())

    def __repr__(self) -> str:
        return f"<ConfigDiff: {len(self.changes)} change(s)>"

    def __rich__(self) -> Any:
        from rich.text import Text

        if not self.changes:
            return Text("no differences", style="dim")
        text = Text()
        for i, (sign, line) in enumerate(self.lines()):
            if i:
                text.append("\n")
            text.append(f"{sign} {line}", style="red" if sign == "-" else "green")
        return text


def diff(old: Any, new: Any) -> ConfigDiff:
    """Compare two config trees.

    An argument left at its default compares equal to the same value set explicitly. A node whose target or kind
    (Config / Partial) differs is reported as one change at its path, not as a change of each argument.

    Returns:
        A :class:`ConfigDiff`; ``changes`` are in tree order.
    """
    changes: list[Change] = []
    _Differ(changes).diff(old, new, "")
    return ConfigDiff(changes)


def _default(node: Any, name: Any) -> Any:
    if not isinstance(name, str):
        return _MISSING
    try:
        param = inspect.signature(node.__fn_or_cls__).parameters.get(name)
    except (TypeError, ValueError):
        return _MISSING
    if param is None or param.default is inspect.Parameter.empty or _is_factory_default(param.default):
        return _MISSING
    return param.default


class _Differ:
    """One comparison; a guard per side, since either tree may contain itself."""

    def __init__(self, out: list[Change]):
        self.out = out
        self.old_guard = TreeGuard()
        self.new_guard = TreeGuard()

    def diff(self, old: Any, new: Any, path: str) -> None:
        both_buildable = is_buildable(old) and is_buildable(new)
        if both_buildable and (type(old) is not type(new) or old.__fn_or_cls__ is not new.__fn_or_cls__):
            self.out.append(Change(path, "changed", old, new))
            return
        sequences = type(old) is type(new) and isinstance(old, (list, tuple))
        if not (both_buildable or sequences or isinstance(old, dict) and isinstance(new, dict)):
            if not _same(old, new):
                self.out.append(Change(path, "changed", old, new))
            return
        self.old_guard.enter(old, path)
        self.new_guard.enter(new, path)
        if both_buildable:
            self._arguments(old, new, path)
        elif sequences:
            for i in range(max(len(old), len(new))):
                self.pair(old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING,
                          join_path(path, i))
        else:
            for key in list(old) + [k for k in new if k not in old]:
                self.pair(old.get(key, _MISSING), new.get(key, _MISSING), join_path(path, key))
        self.old_guard.leave(old)
        self.new_guard.leave(new)

    def _arguments(self, old: Any, new: Any, path: str) -> None:
        keys = list(old.__arguments__) + [k for k in new.__arguments__ if k not in old.__arguments__]
        for key in keys:
            a = old.__arguments__.get(key, _MISSING)
            b = new.__arguments__.get(key, _MISSING)
            a = _default(old, key) if a is _MISSING else a
            b = _default(new, key) if b is _MISSING else b
            self.pair(a, b, join_path(path, key))

    def pair(self, a: Any, b: Any, path: str) -> None:
        if a is _MISSING and b is _MISSING:
            return
        if a is _MISSING:
            self.out.append(Change(path, "added", None, b))
        elif b is _MISSING:
            self.out.append(Change(path, "removed", a, None))
        else:
            self.diff(a, b, path)


def _same(a: Any, b: Any) -> bool:
    def numeric(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if type(a) is not type(b) and not (numeric(a) and numeric(b)):
        return False  # 1 and True, or 1 and "1", are different configs even where == says otherwise
    try:
        return bool(a == b)
    except Exception:  # arrays and other values whose == is not a plain bool
        return a is b


def describe(node: Any) -> str:
    """``Config[ModelConfig]`` / ``Partial[train]``: a node's short name, as diffs and renderers show it."""
    return f"{type(node).__name__}[{target_name(node.__fn_or_cls__)}]"
