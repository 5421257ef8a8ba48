"""Build a config tree into objects, naming the path of any node whose construction fails.

``call_target`` is the one place where a configured call happens; it is shared by :func:`build` (over Fiddle
buildables) and by the runner's decoder (over serialized configs, without importing Fiddle).
"""

from __future__ import annotations

import functools
# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

from nemorun_core.errors import BuildError


def join_path(parent: str, child: Any) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else str(child)


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


def build(config: Any) -> Any:
    """Build ``config``: every nested Config is called, every Partial becomes a ``functools.partial``.

    A node shared in several places is built once, as in Fiddle. Values that are not configs are returned as they
    are (containers are rebuilt with their items built).

    Raises:
        BuildError: a constructor or function raised; ``error.path`` names the node (``"model"``, ``"data[1]"``).
    """
    return _build(config, "", {})


def _build(node: Any, path: str, memo: dict[int, Any]) -> Any:
    import fiddle as fdl

    if isinstance(node, fdl.Buildable):
        if id(node) in memo:
            return memo[id(node)]
        args = {k: _build(v, join_path(path, k), memo) for k, v in node.__arguments__.items()}
        result = call_target(node.__fn_or_cls__, args, isinstance(node, fdl.Partial), path)
        memo[id(node)] = result
        return result
    if isinstance(node, list):
        return [_build(v, join_path(path, i), memo) for i, v in enumerate(node)]
    if isinstance(node, tuple):
        return tuple(_build(v, join_path(path, i), memo) for i, v in enumerate(node))
    if isinstance(node, dict):
        return {k: _build(v, join_path(path, k), memo) for k, v in node.items()}
    return node
