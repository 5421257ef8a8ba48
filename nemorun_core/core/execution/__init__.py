"""``nemo_run.core.execution.*`` paths: each backend's module re-exports its real executor module.

The modules in this directory (``base``, ``local``, ``docker``, ``slurm``, ``launcher``) are written out. Every
other backend gets its path from the registry (nemorun_core/executors/registry.py: the built-ins and the
``nemorun.executors`` entry points): ``nemorun_core.core.execution.NAME``, for a backend called ``NAME`` (or an
alias of it, ``-`` written ``_``) with no module here, *is* the module its registry entry names (the ``module`` of
``"module:Class"``), the same module object under a second name. So ``from nemorun_core.core.execution.kuberay
import KubeRayExecutor`` works as soon as a ``kuberay`` backend is registered, and the class is the one its
registry entry loads.

The finder below answers only for direct children of this package that the file system does not have (it comes
after the standard finders on ``sys.meta_path``). An unknown name is a ``ModuleNotFoundError`` that lists the known
backends; a backend that cannot be imported (its extra not installed, a broken entry point) is an ``ImportError``
with the registry's reason and fix, so ``except ImportError`` around an optional backend works as it did in NeMo Run.
"""

from __future__ import annotations

import importlib.machinery
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType
    from typing import Sequence

    from nemorun_core.executors.registry import BackendEntry


def module_names(entry: "BackendEntry") -> tuple[str, ...]:
    """The child names of this package that select ``entry``: its name and aliases, ``-`` written ``_``."""
    return tuple(dict.fromkeys(n.replace("-", "_") for n in entry.names))


class BackendModuleFinder:
    """A ``sys.meta_path`` finder: ``PACKAGE.NAME`` is the module of the registered backend ``NAME``.

    Args:
        package: the package whose children it answers for (this one).
    """

    def __init__(self, package: str = __name__):
        self.package = package

    def find_spec(self, fullname: str, path: "Sequence[str] | None" = None,
                  target: "ModuleType | None" = None) -> "importlib.machinery.ModuleSpec | None":
        parent, _, name = fullname.rpartition(".")
        if parent != self.package:
            return None
        entry = self._entry(fullname, name)
        return importlib.machinery.ModuleSpec(fullname, _Alias(fullname, entry))

    def _entry(self, fullname: str, name: str) -> "BackendEntry":
        # Imported here, not at module level: the written-out paths (core.execution.base...) never need the registry.
        from nemorun_core.executors import registry

        # The built-ins first, so that a broken third-party entry point never hides a built-in backend's path.
        for entry in registry.BUILTINS:
            if name in module_names(entry):
                return entry
        try:
            entries = registry.entries()
        except registry.RegistryError as exc:
            raise ImportError(f"cannot import {fullname!r}: the backend registry failed: {exc}", name=fullname) \
                from None
        for entry in entries:
            if name in module_names(entry):
                return entry
        import pkgutil

        from nemorun_core.errors import did_you_mean

        backends = [n for e in entries for n in module_names(e)]
        files = sorted(m.name for m in pkgutil.iter_modules(getattr(sys.modules.get(self.package), "__path__", [])))
        others = [n for n in files if n not in backends]
        raise ModuleNotFoundError(
            f"No module named {fullname!r}: {name!r} is neither a module there nor a registered backend"
            f"{did_you_mean(name, [*backends, *others])}; the backends: {', '.join(backends)}; the other modules: "
            f"{', '.join(others)}; a package that provides another backend registers it in the entry-point group "
            f"{registry.GROUP!r}", name=fullname)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.package!r})"


class _Alias:
    """The loader of one backend path: the module is the backend's own module, imported (and checked) by the
    registry entry; nothing is executed a second time."""

    def __init__(self, fullname: str, entry: "BackendEntry"):
        self.fullname = fullname
        self.entry = entry
        self._spec: "importlib.machinery.ModuleSpec | None" = None

    def create_module(self, spec: "importlib.machinery.ModuleSpec") -> "ModuleType":
        from nemorun_core.executors.registry import RegistryError

        try:
            self.entry.load()  # imports the module and checks the class, with the registry's install hints
        except RegistryError as exc:
            raise ImportError(f"cannot import {self.fullname!r}: {exc}", name=self.fullname) from None
        module = sys.modules[self.entry.module]
        self._spec = module.__spec__
        return module

    def exec_module(self, module: "ModuleType") -> None:
        # The import system has just set this alias's spec on the module; the module keeps its own.
        module.__spec__ = self._spec


def install(package: str = __name__) -> BackendModuleFinder:
    """Put the finder for ``package`` on ``sys.meta_path`` (after the standard finders); idempotent."""
    for finder in sys.meta_path:
        if type(finder).__name__ == BackendModuleFinder.__name__ and getattr(finder, "package", None) == package:
            return finder  # type: ignore[return-value]
    finder = BackendModuleFinder(package)
    sys.meta_path.append(finder)
    return finder


install()
