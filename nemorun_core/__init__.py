"""nemorun_core: configure, package and launch ML experiments.

    import nemorun_core as run

    cfg = run.Partial(train, lr=3e-4)
    result = run.run(cfg, executor=run.LocalExecutor())

The public API is the table below. Names are bound on first use (PEP 562) rather than at import: Fiddle alone costs
about 0.27 s to import, and every job process starts ``python -m nemorun_core.runner``, which must not pay for Fiddle,
the CLI or any backend SDK. The table is explicit, so ``dir(nemorun_core)``, ``from nemorun_core import X`` and static
type checkers (through the ``TYPE_CHECKING`` block) all see the same curated list.
"""

from __future__ import annotations

import sys

from nemorun_core.lazy import lazy_exports
from nemorun_core._version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing costs every job process a few milliseconds.
TYPE_CHECKING = False

# public name -> module that defines it. A literal table on purpose: static checkers read the TYPE_CHECKING block
# below, and building it from the backend registry (nemorun_core/executors/registry.py) at import would cost every
# job process that import. tests/unit/test_registry.py keeps each built-in backend's executor class here, in
# __all__ and in the TYPE_CHECKING block, in agreement with the registry.
_EXPORTS: dict[str, str] = {
    # configuration
    "Config": "nemorun_core.config.buildable",
    "Partial": "nemorun_core.config.buildable",
    "Script": "nemorun_core.config.script",
    "build": "nemorun_core.config.building",
    "autoconvert": "nemorun_core.config.autoconvert",
    "partial": "nemorun_core.cli.partial_fn",
    "validation_rule": "nemorun_core.config.validation",
    "validate": "nemorun_core.config.validation",
    "walk": "nemorun_core.config.tree",
    "broadcast": "nemorun_core.config.tree",
    "diff": "nemorun_core.config.tree",
    "OptionalDefaultConfig": "nemorun_core.config.buildable",
    "OptionalDefaultPartial": "nemorun_core.config.buildable",
    "get_nemorun_home": "nemorun_core.home",
    "set_nemorun_home": "nemorun_core.home",
    # execution
    "Executor": "nemorun_core.executors.base",
    "JobHandle": "nemorun_core.executors.base",
    "JobState": "nemorun_core.executors.base",
    "JobStatus": "nemorun_core.executors.base",
    "LocalExecutor": "nemorun_core.executors.local",
    "Torchrun": "nemorun_core.launchers.torchrun",
    "FaultTolerance": "nemorun_core.launchers.fault_tolerance",
    # packaging
    "Packager": "nemorun_core.packaging.base",
    "Package": "nemorun_core.packaging.base",
    "GitArchivePackager": "nemorun_core.packaging.git",
    "GitPackage": "nemorun_core.packaging.git",
    "PatternPackager": "nemorun_core.packaging.pattern",
    "PatternPackage": "nemorun_core.packaging.pattern",
    "HybridPackager": "nemorun_core.packaging.hybrid",
    "SSHTunnel": "nemorun_core.tunnel.ssh",
    "LocalTunnel": "nemorun_core.tunnel.local",
    "SlurmExecutor": "nemorun_core.executors.slurm",
    "SlurmResources": "nemorun_core.executors.slurm",
    "DockerExecutor": "nemorun_core.executors.docker",
    "DockerImagePackager": "nemorun_core.executors.docker",
    "RayExecutor": "nemorun_core.executors.ray",
    # experiments
    "run": "nemorun_core.experiment.launch",
    "Experiment": "nemorun_core.experiment.experiment",
    "Plugin": "nemorun_core.experiment.plugin",
    "log_metrics": "nemorun_core.metrics",
    "Secret": "nemorun_core.secrets",
    # command line
    "cli_command": "nemorun_core.cli.entrypoint",
}
_SUBMODULES = frozenset({"cli", "config", "errors", "executors", "experiment", "launchers", "packaging", "ray"})

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


__getattr__, __dir__ = lazy_exports("nemorun_core", _EXPORTS, globals(), submodules=_SUBMODULES,
                                    extra=["__version__"])


class _Package(type(sys)):  # type(sys) is ModuleType, without importing `types`
    """This package's module type: it keeps ``run`` the function ``run.run``.

    NeMo Run's module paths include a subpackage named ``run`` (``nemorun_core.run.experiment``, see
    nemorun_core/run/__init__.py). Importing any module of it makes the import system bind the subpackage as the
    attribute ``run`` of this package, which would hide the function. That binding is refused: ``run`` stays (or,
    until first used, lazily becomes) the function, and the subpackage's modules are still found through
    ``sys.modules`` by every import statement.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name == "run" and isinstance(value, type(sys)) and value.__name__ == f"{self.__name__}.run":
            return
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple:
        # Pickled by name, as any module is: cloudpickle sends a task function defined in a script (``__main__``)
        # with the globals it uses, ``run`` among them, and its module reducer matches ModuleType exactly.
        import importlib

        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nemorun_core import cli, config, errors, executors, experiment, launchers, packaging, ray
    from nemorun_core.cli.entrypoint import cli_command
    from nemorun_core.cli.partial_fn import partial
    from nemorun_core.config.autoconvert import autoconvert
    from nemorun_core.config.buildable import Config, OptionalDefaultConfig, OptionalDefaultPartial, Partial
    from nemorun_core.config.building import build
    from nemorun_core.config.script import Script
    from nemorun_core.config.tree import broadcast, diff, walk
    from nemorun_core.home import get_nemorun_home, set_nemorun_home
    from nemorun_core.config.validation import validate, validation_rule
    from nemorun_core.executors.base import Executor, JobHandle, JobState, JobStatus
    from nemorun_core.executors.local import LocalExecutor
    from nemorun_core.executors.docker import DockerExecutor, DockerImagePackager
    from nemorun_core.executors.ray import RayExecutor
    from nemorun_core.executors.slurm import SlurmExecutor, SlurmResources
    from nemorun_core.experiment.experiment import Experiment
    from nemorun_core.experiment.launch import run
    from nemorun_core.experiment.plugin import Plugin
    from nemorun_core.launchers.fault_tolerance import FaultTolerance
    from nemorun_core.launchers.torchrun import Torchrun
    from nemorun_core.metrics import log_metrics
    from nemorun_core.secrets import Secret
    from nemorun_core.packaging.base import Package, Packager
    from nemorun_core.packaging.git import GitArchivePackager, GitPackage
    from nemorun_core.packaging.hybrid import HybridPackager
    from nemorun_core.packaging.pattern import PatternPackage, PatternPackager
    from nemorun_core.tunnel.local import LocalTunnel
    from nemorun_core.tunnel.ssh import SSHTunnel
