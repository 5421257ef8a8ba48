"""Lazy public names for package ``__init__`` modules (PEP 562), in one place.

Each package lists its public names in a table (name -> defining module) and binds them on first use, so importing
the package costs nothing until a name is needed (see ``nemorun_core/__init__.py`` for why that matters).

Public because ``nemorun_prefect`` and ``nemorun_airflow`` build their own ``__init__`` tables with it, and no package
imports another package's private modules.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable


def lazy_exports(package: str, exports: dict[str, str], namespace: dict, *, submodules: "Iterable[str]" = (),
                 extra: "Iterable[str]" = ()) -> "tuple[Callable[[str], object], Callable[[], list[str]]]":
    """Return ``(__getattr__, __dir__)`` for ``package``: names from ``exports`` are imported from their module on
    first access and cached in ``namespace`` (the package's ``globals()``); ``submodules`` are imported by name.
    ``__dir__`` lists exactly the public names (plus ``extra``, e.g. ``__version__``)."""
    subs = frozenset(submodules)
    public = sorted({*exports, *subs, *extra})

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            namespace[name] = value  # later lookups are plain attribute reads
            return value
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(public)

    return __getattr__, __dir__
