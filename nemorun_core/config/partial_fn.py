"""Kept for existing imports and pickles: ``@run.partial`` is defined in :mod:`nemorun_core.cli.partial_fn`.

A decorated function runs as a task (the experiment layer) and from a command line (the CLI), both above the config
layer, so its implementation moved up beside the CLI and this module imports nothing from above at import time.
Its names load on first use (PEP 562) from there; the layering test allows this one documented shim.
"""

from __future__ import annotations

__all__ = ["PartialFunction", "partial"]

_NAMES = frozenset({*__all__, "_rebound"})  # _rebound: named by pickles of bound copies made before the move


def __getattr__(name: str) -> object:
    if name in _NAMES:
        # A plain import, not importlib: the layering test sees it and allows exactly this one.
        from nemorun_core.cli import partial_fn

        return getattr(partial_fn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
