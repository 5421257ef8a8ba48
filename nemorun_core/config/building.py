"""Build a config tree into objects, naming the path of any node whose construction fails.

``call_target`` is the one place where a configured call happens; it is shared by :func:`build` (over Fiddle
buildables) and by the runner's decoder (over serialized configs, without importing Fiddle).

:class:`TreeGuard` is shared by every recursive walker of config trees (build, encode/decode, walk, diff, flatten,
codegen, validation): it turns a cycle or a runaway depth into an error that names the path.
"""

from __future__ import annotations

import functools
# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

from nemorun_core.errors import BuildError, ConfigError

# Real configs are under twenty levels deep. A hundred keeps every walker well inside Python's recursion limit (each
# level costs a walker two or three frames), so a bad tree ends with a named error, never a bare RecursionError.
MAX_DEPTH = 100


def join_path(parent: str, child: Any) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else str(child)


class TreeGuard:
    """Stops a recursive walk at a cycle or past :data:`MAX_DEPTH` levels, with an error that names the path.

    A walker calls :meth:`enter` before visiting a container's children (a buildable, list, tuple or dict) and
    :meth:`leave` after. Only a node that is its own ancestor is a cycle: a node shared in several places of a tree
    (built once, as in Fiddle) is not. A cycle can never be built, written or compared, and without this guard it
    ends in Python's bare ``RecursionError`` a thousand frames down, naming nothing.

    Args:
        error: the ConfigError subclass to raise (SerializationError for encode/decode, ConfigError elsewhere).
        max_depth: the deepest nesting accepted.
    """

    __slots__ = ("error", "max_depth", "_open")

    def __init__(self, error: type = ConfigError, max_depth: int = MAX_DEPTH):
        self.error = error
        self.max_depth = max_depth
        self._open: set[int] = set()  # ids of the containers on the path being visited: its ancestors

    def enter(self, node: Any, path: str) -> None:
        where = path or "<root>"
        if id(node) in self._open:
            self._raise(f"cycle at {where}: this {type(node).__name__} contains itself; a config must be a tree "
                        "(share a node in several places instead of nesting it inside itself)", where)
        if len(self._open) >= self.max_depth:
            self._raise(f"nested deeper than {self.max_depth} levels at {where}; flatten the config, or look for "
                        "a value that nests itself by accident", where)
        self._open.add(id(node))

    def leave(self, node: Any) -> None:
        self._open.discard(id(node))

    def _raise(self, message: str, where: str) -> None:
        error = self.error(message)
        error.path = where  # the message names the path already: set the attribute without prefixing it twice
        raise error


def call_target(target: Any, args: Mapping[Any, Any], partial: bool, path: str) -> Any:
    """Call (or partially apply) ``target`` with ``args``; int keys are positional. Wraps errors in BuildError."""
    positional = [args[k] for k in sorted(k for k in args if isinstance(k, int))]
    keywords = {k: v for k, v in args.items() if not isinstance(k, int)}
    if partial:
        return functools.partial(target, *positional, **keywords)
    try:
        return target(*positional, **keywords)
    except BuildError:
        raise
    except Exception as exc:
        name = getattr(target, "__qualname__", None) or repr(target)
        raise BuildError(path, name, exc) from exc


def build(config: Any, *, path: str = "") -> Any:
    """Build ``config``: every nested Config is called, every Partial becomes a ``functools.partial``.

    A node shared in several places is built once, as in Fiddle. Values that are not configs are returned as they
    are (containers are rebuilt with their items built).

    Raises:
        BuildError: a constructor or function raised; ``error.path`` names the node (``"model"``, ``"data[1]"``),
            under ``path`` when the config sits at that place of a larger one (``"executor"``).
    """
    return _build(config, path, {}, TreeGuard())


def _build(node: Any, path: str, memo: dict[int, Any], guard: TreeGuard) -> Any:
    import fiddle as fdl

    if isinstance(node, fdl.Buildable):
        if id(node) in memo:
            return memo[id(node)]
        guard.enter(node, path)
        args = {k: _build(v, join_path(path, k), memo, guard) for k, v in node.__arguments__.items()}
        guard.leave(node)
        result = call_target(node.__fn_or_cls__, args, isinstance(node, fdl.Partial), path)
        memo[id(node)] = result
        return result
    if not isinstance(node, (list, tuple, dict)):
        return node
    guard.enter(node, path)
    if isinstance(node, list):
        out: Any = [_build(v, join_path(path, i), memo, guard) for i, v in enumerate(node)]
    elif isinstance(node, tuple):
        out = tuple(_build(v, join_path(path, i), memo, guard) for i, v in enumerate(node))
    else:
        out = {k: _build(v, join_path(path, k), memo, guard) for k, v in node.items()}
    guard.leave(node)
    return out
