"""Packagers: how the user's code reaches the machine where a job runs (one deterministic ``.tar.gz``), or not at
all with the pass-through ``Packager()``.

Thin re-exports; names load on first use (PEP 562), so importing ``nemorun_core.packaging.base`` (which executors
do) does not load git or the archive writer. ``from nemorun_core.packaging import GitArchivePackager`` works as it
does from ``nemorun_core`` and NeMo Run's ``nemo_run.core.packaging``.
"""

from __future__ import annotations

from nemorun_core.lazy import lazy_exports

TYPE_CHECKING = False

_EXPORTS: dict[str, str] = {
    "Packager": "nemorun_core.packaging.base",
    "Package": "nemorun_core.packaging.base",
    "PackagingError": "nemorun_core.packaging.base",
    "PackagerSettingError": "nemorun_core.packaging.base",
    "packages_code": "nemorun_core.packaging.base",
    "GitArchivePackager": "nemorun_core.packaging.git",
    "GitPackage": "nemorun_core.packaging.git",
    "PatternPackager": "nemorun_core.packaging.pattern",
    "PatternPackage": "nemorun_core.packaging.pattern",
    "HybridPackager": "nemorun_core.packaging.hybrid",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("nemorun_core.packaging", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nemorun_core.packaging.base import Package, Packager, PackagerSettingError, PackagingError, packages_code
    from nemorun_core.packaging.git import GitArchivePackager, GitPackage
    from nemorun_core.packaging.hybrid import HybridPackager
    from nemorun_core.packaging.pattern import PatternPackage, PatternPackager
