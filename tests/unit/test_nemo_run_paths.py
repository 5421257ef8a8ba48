"""NeMo Run's module paths under nemorun's name (issue 13): each re-exports the real class, one identity."""

from __future__ import annotations

import importlib
import pathlib
import subprocess
import sys
import textwrap

import pytest

import nemorun_core
import nemorun_core as run

ROOT = pathlib.Path(__file__).resolve().parents[2]

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
    ("nemorun_core.run.experiment", "Experiment", run.Experiment),
    ("nemorun_core.run.plugin", "Plugin", run.Plugin),
    ("nemorun_core.run.plugin", "ExperimentPlugin", run.Plugin),
    ("nemorun_core.config", "Config", run.Config),
    ("nemorun_core.config", "Partial", run.Partial),
    ("nemorun_core.config", "Script", run.Script),
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


# -- nemorun_core.run.*: the subpackage does not hide the function run.run -----------------------------------------
def test_the_run_paths_name_the_same_classes() -> None:
    from nemorun_core.run.experiment import Experiment
    from nemorun_core.run.plugin import ExperimentPlugin, Plugin

    assert Experiment is run.Experiment and Plugin is run.Plugin and ExperimentPlugin is run.Plugin

    class Tagging(ExperimentPlugin):  # NeMo Run's spelling of a plugin: still a run.Plugin
        pass

    assert isinstance(Tagging(), run.Plugin)


def test_importing_a_run_submodule_keeps_run_run_the_function(tmp_path) -> None:
    import nemorun_core.run.experiment as experiment_path  # the form that walks attributes from nemorun_core.run
    import nemorun_core.run.plugin
    from nemorun_core.experiment.launch import run as the_function

    assert run.run is the_function and callable(run.run)
    assert experiment_path is sys.modules["nemorun_core.run.experiment"]
    assert nemorun_core.run.plugin.ExperimentPlugin is run.Plugin  # attribute access through the function
    request = run.run(run.Partial(_add, a=1, b=2), executor=run.LocalExecutor(), dryrun=True, home=str(tmp_path))
    assert request.backend == "local"


def test_a_fresh_process_importing_the_run_paths_first_still_gets_the_function() -> None:
    """Before run.run is first used (it is bound lazily), in every import form."""
    code = textwrap.dedent("""
        import sys
        import nemorun_core.run.experiment as m
        import nemorun_core.run
        from nemorun_core.run import plugin
        import nemorun_core as run
        from nemorun_core import run as run_fn
        from nemorun_core.experiment.launch import run as the_function
        assert run.run is the_function and run_fn is the_function, run.run
        assert m is sys.modules["nemorun_core.run.experiment"] and m.Experiment is run.Experiment
        assert plugin.ExperimentPlugin is run.Plugin and run.run.plugin is plugin
        assert "run" in dir(run) and isinstance(sys.modules["nemorun_core.run"], type(sys))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_importing_the_run_package_imports_nothing_heavy() -> None:
    code = ("import sys, nemorun_core.run\n"
            "print(sorted(m for m in sys.modules if m.startswith('nemorun_core.') and m != 'nemorun_core.run' and "
            "m not in ('nemorun_core._version', 'nemorun_core.lazy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# -- nemorun_core.config: NeMo Run's nemo_run.config, still light for the runner ------------------------------------
CONFIG_NAMES = ["Config", "Partial", "Script", "build", "OptionalDefaultConfig", "OptionalDefaultPartial",
                "get_nemorun_home", "set_nemorun_home"]


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_names_are_the_public_ones(name: str) -> None:
    import nemorun_core.config as config

    assert getattr(config, name) is getattr(run, name)
    assert name in config.__all__ and name in dir(config)


def test_importing_serialize_still_does_not_import_fiddle() -> None:
    code = textwrap.dedent("""
        import sys
        from nemorun_core.config import serialize
        assert "fiddle" not in sys.modules and "nemorun_core.config.buildable" not in sys.modules
        from nemorun_core.config import Config, Partial, Script
        import nemorun_core as run
        assert Config is run.Config and Partial is run.Partial and Script is run.Script
        assert "fiddle" in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    with pytest.raises(ImportError, match="cannot import name 'Confg'"):
        from nemorun_core.config import Confg  # noqa: F401


# -- nemorun_core.core.execution.NAME for every registered backend ---------------------------------------------------
_FAKE_BACKEND = """
    import dataclasses
    from typing import ClassVar
    from nemorun_core.executors.base import Executor

    @dataclasses.dataclass
    class PathsExecutor(Executor):
        '''Jobs nowhere: a registered backend with no module under nemorun_core/core/execution.'''
        backend: ClassVar[str] = "pathsfake"
        def dryrun(self, job): ...
        def submit(self, job): ...
        def status_many(self, handles): ...
        def logs(self, handle, *, follow=False, offset=0): ...
        def cancel(self, handle): ...

    class PathsWorkerGroup:
        '''Something else the backend's module exposes (as kuberay exposes KubeRayWorkerGroup).'''

    def describe():
        from nemorun_core.executors.registry import BackendEntry
        return BackendEntry("pathsfake", "nr_test_paths_backend:PathsExecutor", aliases=("paths-alt",))

    def describe_ghost():
        from nemorun_core.executors.registry import BackendEntry
        return BackendEntry("pathsghost", "nr_test_paths_ghost:GhostExecutor", extra="ghost",
                            requires=("nr_test_paths_sdk_not_installed",), distribution="nr-test-paths")
"""


@pytest.fixture
def fake_backend(tmp_path, monkeypatch):
    """A distribution installed on sys.path (a real .dist-info) that registers the backends ``pathsfake`` and
    ``pathsghost`` (whose SDK is missing); the process's registry is rebuilt to see it, and again after."""
    from nemorun_core.executors import registry

    info = tmp_path / "nr_test_paths-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nr-test-paths\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nemorun.executors]\npathsfake = nr_test_paths_backend:describe\n"
                                           "pathsghost = nr_test_paths_backend:describe_ghost\n")
    (tmp_path / "nr_test_paths_backend.py").write_text(textwrap.dedent(_FAKE_BACKEND))
    (tmp_path / "nr_test_paths_ghost.py").write_text("import nr_test_paths_sdk_not_installed\n")

    def forget() -> None:
        for name in [m for m in sys.modules if m.startswith("nr_test_paths") or m in ALIASED]:
            del sys.modules[name]
        execution = sys.modules.get("nemorun_core.core.execution")
        for name in ("pathsfake", "paths_alt", "pathsghost"):
            if execution is not None and name in vars(execution):
                delattr(execution, name)
        registry.default.cache_clear()

    forget()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    monkeypatch.undo()
    forget()


ALIASED = {f"nemorun_core.core.execution.{n}" for n in ("pathsfake", "paths_alt", "pathsghost", "nope")}


def test_a_registered_backend_has_its_nemo_run_path_automatically(fake_backend) -> None:
    from nemorun_core.core.execution.pathsfake import PathsExecutor, PathsWorkerGroup
    from nemorun_core.executors import registry

    real = sys.modules["nr_test_paths_backend"]
    assert PathsExecutor is registry.get("pathsfake").load() is real.PathsExecutor
    assert PathsWorkerGroup is real.PathsWorkerGroup
    # one module under two names: the alias (- written _) too, and the module keeps its own name and spec
    assert importlib.import_module("nemorun_core.core.execution.pathsfake") is real
    assert importlib.import_module("nemorun_core.core.execution.paths_alt") is real
    assert real.__name__ == real.__spec__.name == "nr_test_paths_backend"
    import nemorun_core.core.execution as execution

    assert execution.pathsfake is real
    assert isinstance(PathsExecutor(), registry.get("pathsfake").load())


def test_a_backend_that_cannot_be_imported_is_an_import_error_with_the_fix(fake_backend) -> None:
    with pytest.raises(ImportError, match=r"cannot import 'nemorun_core.core.execution.pathsghost'.*needs the module "
                                          r"'nr_test_paths_sdk_not_installed'.*pip install 'nr-test-paths\[ghost\]'"):
        importlib.import_module("nemorun_core.core.execution.pathsghost")
    assert "nemorun_core.core.execution.pathsghost" not in sys.modules


def test_an_unknown_backend_path_names_the_known_backends(fake_backend) -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module("nemorun_core.core.execution.pathsfak")
    message = str(info.value)
    assert info.value.name == "nemorun_core.core.execution.pathsfak"
    assert "did you mean 'pathsfake'?" in message
    assert "the backends: local, docker, slurm, " in message and "pathsfake, paths_alt" in message
    assert "the other modules: base, launcher" in message and "'nemorun.executors'" in message
    with pytest.raises(ImportError, match="cannot import name 'Nope' from 'nemorun_core.core.execution'"):
        from nemorun_core.core.execution import Nope  # noqa: F401


def test_the_installed_example_backend_has_its_path() -> None:
    from nemorun_core.core.execution.echo import EchoExecutor
    from nemorun_core.executors import registry

    assert EchoExecutor is registry.get("echo").load()
    assert importlib.import_module("nemorun_core.core.execution.echo_subprocess").EchoExecutor is EchoExecutor


def test_the_written_out_paths_win_over_the_registry() -> None:
    import nemorun_core.core.execution.docker as docker_path

    assert docker_path.__name__ == "nemorun_core.core.execution.docker"  # the file, not an alias
    assert docker_path.DockerExecutor is run.DockerExecutor


def _add(a: int, b: int) -> int:
    return a + b


def test_the_packages_pickle_by_name_so_a_script_s_task_that_uses_run_can_be_sent() -> None:
    # cloudpickle sends a function defined in a script (__main__) with the globals it uses: `run` (this package,
    # whose module type is its own) must pickle by reference, as a plain module does.
    import pickle
    import subprocess
    import sys

    script = ("import pickle, cloudpickle, sys\n"
              "import nemorun_core as run\n"
              "import nemorun_core.run.experiment\n"
              "def task(x):\n    return run.__name__, x\n"
              "assert cloudpickle.loads(cloudpickle.dumps(task))(1) == ('nemorun_core', 1)\n"
              "paths = sys.modules['nemorun_core.run']\n"
              "assert pickle.loads(pickle.dumps(run)) is run and pickle.loads(pickle.dumps(paths)) is paths\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert pickle.loads(pickle.dumps(run)) is run
