"""NeMo Run's ``nemo_run.run.*`` module paths (``nemo_run.run.experiment``, ``nemo_run.run.plugin``...) under
nemorun's name, for code moved over with only the import renamed. Each module here re-exports the real one: one
class, one identity. New code should import from ``nemorun_core`` (``run.Experiment``, ``run.Plugin``).

``nemorun_core.run`` is the function ``run.run``, not this package (nemorun_core/__init__.py refuses the binding
the import system would make). ``from nemorun_core.run.experiment import Experiment`` reads ``sys.modules`` and
needs nothing more, but ``import nemorun_core.run.experiment as m`` and ``nemorun_core.run.experiment.Experiment``
walk attributes from ``nemorun_core.run``, that is from the function: so every submodule bound on this package is
also set as an attribute of the function.

Nothing is imported here: each path costs only what its own module imports.
"""

import sys


class _Paths(type(sys)):  # type(sys) is ModuleType, without importing `types`
    """This package's module type: a submodule bound here is bound on the function ``run.run`` too."""

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if isinstance(value, type(sys)) and value.__name__ == f"{self.__name__}.{name}":
            from nemorun_core.experiment.launch import run

            setattr(run, name, value)

    def __reduce__(self) -> tuple:
        # Pickled by name, as any module is (see nemorun_core._Package.__reduce__).
        import importlib

        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Paths
