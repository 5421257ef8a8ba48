"""NeMo Run's module paths under nemorun's name (issue 13): each re-exports the real class, one identity."""

from __future__ import annotations

import importlib

import pytest

import nemorun_core as run

PATHS = [
    ("nemorun_core.core.execution.base", "Executor", run.Executor),
    ("nemorun_core.core.execution.local", "LocalExecutor", run.LocalExecutor),
    ("nemorun_core.core.execution.docker", "DockerExecutor", run.DockerExecutor),
    ("nemorun_core.core.execution.slurm", "SlurmExecutor", run.SlurmExecutor),
    ("nemorun_core.core.execution.slurm", "SSHTunnel", run.SSHTunnel),
    ("nemorun_core.core.execution.launcher", "Torchrun", run.Torchrun),
    ("nemorun_core.core.execution.launcher", "FaultTolerance", run.FaultTolerance),
    ("nemorun_core.core.packaging", "GitArchivePackager", run.GitArchivePackager),
    ("nemorun_core.core.packaging.base", "Packager", run.Packager),
    ("nemorun_core.core.packaging.git", "GitArchivePackager", run.GitArchivePackager),
    ("nemorun_core.core.packaging.pattern", "PatternPackager", run.PatternPackager),
    ("nemorun_core.core.packaging.hybrid", "HybridPackager", run.HybridPackager),
    ("nemorun_core.core.tunnel.client", "SSHTunnel", run.SSHTunnel),
    ("nemorun_core.core.tunnel.client", "LocalTunnel", run.LocalTunnel),
]


@pytest.mark.parametrize(("module", "name", "expected"), PATHS, ids=[f"{m}.{n}" for m, n, _ in PATHS])
def test_a_nemo_run_path_names_the_same_class(module: str, name: str, expected: type) -> None:
    assert getattr(importlib.import_module(module), name) is expected


def test_exceptions_are_nemorun_s_errors() -> None:
    from nemorun_core import errors, exceptions

    assert exceptions.ConfigError is errors.ConfigError and exceptions.BuildError is errors.BuildError
    assert set(exceptions.__all__) == {n for n, v in vars(errors).items()
                                       if isinstance(v, type) and issubclass(v, Exception) and
                                       v.__module__ == errors.__name__}
    assert run.run.__module__ == "nemorun_core.experiment.launch"  # the function, not a subpackage named run
