"""The backend registry (nemorun_core/executors/registry.py), and what must agree with it.

The built-in table is the one list of backends: the public exports (and their TYPE_CHECKING imports), the pip
extras, the pytest markers and the services that scripts/test.sh starts are checked against it here, so adding a
backend without its export, extra, marker or service fails this file. Entry points of other distributions are
tested with real ``.dist-info`` directories (read by importlib.metadata, as installed packages are) and real
modules; the installed example package is tests/fixtures/nemorun_echo_backend.
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

import nemorun_core
from nemorun_core.credentials import CredentialKind
from nemorun_core.executors import registry
from nemorun_core.executors.base import Executor
from nemorun_core.executors.registry import BUILTINS, BackendEntry, Registry, RegistryError

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the built-in table agrees with the classes and with the rest of the repository --------------------------------
@pytest.mark.parametrize("entry", BUILTINS, ids=lambda e: e.name)
def test_each_builtin_loads_its_class_and_declares_its_credential_kinds(entry: BackendEntry) -> None:
    cls = entry.load()
    assert issubclass(cls, Executor) and cls.backend == entry.name
    assert sorted(k.value for k in entry.credential_kinds) == sorted({s.kind.value for s in cls.credential_slots})
    assert entry.builtin and entry.distribution == "nemorun"
    assert registry.for_class(cls) is entry


def test_builtin_names_and_the_known_backends() -> None:
    assert [e.name for e in BUILTINS] == ["local", "docker", "slurm", "ray"]
    assert registry.get("slurm").credential_kinds == (CredentialKind.SSH,)
    assert (registry.get("docker").extra, registry.get("slurm").extra, registry.get("local").extra) == \
        ("docker", "ssh", None)
    assert registry.get("docker").install_hint() == "pip install 'nemorun[docker]'"


def _type_checking_imports() -> dict[str, str]:
    """name -> module of the ``from M import N`` lines in nemorun_core/__init__.py's ``if TYPE_CHECKING:`` block."""
    tree = ast.parse((ROOT / "nemorun_core" / "__init__.py").read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom):
                    out.update({alias.name: stmt.module for alias in stmt.names})
    return out


@pytest.mark.parametrize("entry", BUILTINS, ids=lambda e: e.name)
def test_every_builtin_executor_is_a_public_export_visible_to_type_checkers(entry: BackendEntry) -> None:
    """The lazy table stays a literal (so `from nemorun_core import SlurmExecutor` is what checkers read); this
    keeps it, ``__all__`` and the TYPE_CHECKING block in agreement with the registry."""
    name = entry.attribute
    assert nemorun_core._EXPORTS.get(name) == entry.module, f"add {name!r}: {entry.module!r} to _EXPORTS"
    assert name in nemorun_core.__all__ and name in dir(nemorun_core)
    assert _type_checking_imports().get(name) == entry.module, \
        f"add `from {entry.module} import {name}` to the TYPE_CHECKING block of nemorun_core/__init__.py"
    assert getattr(nemorun_core, name) is entry.load()


def test_no_executor_is_exported_that_the_registry_does_not_know() -> None:
    exported = {n for n, m in nemorun_core._EXPORTS.items() if isinstance(getattr(nemorun_core, n), type)
                and issubclass(getattr(nemorun_core, n), Executor) and getattr(nemorun_core, n) is not Executor}
    assert exported == {e.attribute for e in BUILTINS}


@pytest.mark.parametrize("entry", [e for e in BUILTINS if e.extra], ids=lambda e: e.name)
def test_every_extra_exists_with_lower_bounds_and_provides_what_the_entry_requires(entry: BackendEntry) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert entry.extra in extras, f"add [project.optional-dependencies] {entry.extra} = [...] to pyproject.toml"
    names = set()
    for requirement in extras[entry.extra]:
        assert re.search(r">=\s*\d", requirement), f"{requirement!r} of extra {entry.extra!r} needs a lower bound"
        names.add(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower())
    assert set(entry.requires) <= names, f"{entry.name} requires {entry.requires} but extra {entry.extra} has {names}"


def _test_sh_services() -> list[str]:
    text = (ROOT / "scripts" / "test.sh").read_text()
    found = re.search(r"for svc in ([\w ]+); do", text)
    assert found, "scripts/test.sh no longer starts its services with `for svc in ...; do`: update this test"
    return found.group(1).split()


def test_markers_and_services_agree_with_the_registry() -> None:
    markers = {m.split(":", 1)[0].strip() for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]}
    started = _test_sh_services()
    for entry in BUILTINS:
        assert entry.marker in markers, f"backend {entry.name}: add the marker {entry.marker!r} to pyproject.toml"
        for service in entry.services:
            assert (ROOT / "scripts" / "services" / f"{service}.sh").is_file(), service
            assert service in started, f"backend {entry.name} needs {service}: start it in scripts/test.sh"
        # services are listed in start order, and test.sh starts them in that order too
        assert [s for s in started if s in entry.services] == list(entry.services)
    needed = {s for e in BUILTINS for s in e.services}
    # Besides the backends' services, only these, which no backend needs: the browser of the UI form checks.
    not_backends = {"browser"}
    assert set(started) == needed | not_backends, \
        f"scripts/test.sh starts {started}, the registry's backends need {needed} (and the UI checks {not_backends})"


# -- listing is light ---------------------------------------------------------------------------------------------
def test_listing_backends_imports_no_backend_module() -> None:
    code = textwrap.dedent("""
        import sys
        import nemorun_core
        assert "nemorun_core.executors.registry" not in sys.modules, "import nemorun_core loaded the registry"
        from nemorun_core.executors import registry
        registry.entries(); registry.get("docker"); registry.get("slurm"); registry.get("echo")
        heavy = ("fiddle", "docker", "paramiko", "nemorun_core.executors.local", "nemorun_core.executors.docker",
                 "nemorun_core.executors.slurm", "nemorun_echo_backend.executor")
        print(sorted(m for m in heavy if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


# -- lookups ------------------------------------------------------------------------------------------------------
def test_get_is_case_insensitive_and_knows_aliases() -> None:
    reg = Registry([*BUILTINS, BackendEntry("local2", "nemorun_core.executors.local:LocalExecutor",
                                            aliases=("proc", "process"))], path=[])
    assert reg.get(" Local ") is BUILTINS[0]
    assert reg.get("PROCESS").name == "local2"
    assert reg.names() == ["local", "docker", "slurm", "ray", "local2"]


def test_unknown_name_lists_the_known_backends_and_how_to_install_a_missing_one() -> None:
    ghost = BackendEntry("ghost", "nemorun_ghost_backend_not_installed.executor:GhostExecutor", extra="ghost",
                         requires=("nemorun_ghost_sdk_not_installed",))
    reg = Registry([*BUILTINS, ghost], path=[])
    with pytest.raises(RegistryError) as info:
        reg.get("slrum")
    message = str(info.value)
    assert "unknown executor 'slrum'" in message and "did you mean 'slurm'?" in message
    assert "known executors: local, docker, slurm, ray, ghost [not installed: pip install 'nemorun[ghost]']" in message
    assert "'nemorun.executors'" in message
    with pytest.raises(RegistryError, match=r"needs the module 'nemorun_ghost_sdk_not_installed', which is not "
                                            r"installed; install it: pip install 'nemorun\[ghost\]'"):
        reg.get("ghost").load()


def test_the_table_refuses_a_name_given_twice_and_bad_entries() -> None:
    with pytest.raises(RegistryError, match="'local' is claimed twice"):
        Registry([*BUILTINS, BackendEntry("other", "a.b:C", aliases=("local",))], path=[]).get("local")
    with pytest.raises(ValueError, match="not a backend name"):
        BackendEntry("Bad Name", "a:B")
    with pytest.raises(ValueError, match="not 'module:Class'"):
        BackendEntry("ok", "a.B")
    with pytest.raises(ValueError, match="unknown credential kind"):
        BackendEntry("ok", "a:B", credential_kinds=("password",))


def test_load_checks_the_class_against_the_entry() -> None:
    wrong_kinds = BackendEntry("slurm", "nemorun_core.executors.slurm:SlurmExecutor")
    with pytest.raises(RegistryError, match=r"declares the credential kinds \[\] but SlurmExecutor.credential_slots "
                                            r"has \['ssh'\]"):
        wrong_kinds.load()
    with pytest.raises(RegistryError, match="LocalExecutor.backend is 'local', not 'docker'"):
        BackendEntry("docker", "nemorun_core.executors.local:LocalExecutor").load()
    with pytest.raises(RegistryError, match="not an Executor subclass"):
        BackendEntry("nope", "nemorun_core.jobfiles:JobFiles").load()


def test_for_class_finds_the_nearest_registered_class() -> None:
    import dataclasses

    from nemorun_core.executors.docker import DockerExecutor
    from nemorun_core.executors.local import LocalExecutor

    @dataclasses.dataclass(kw_only=True)
    class MyLocal(LocalExecutor):
        pass

    class Unregistered(Executor):
        backend = "unregistered"

    assert registry.for_class(DockerExecutor).name == "docker"  # registered under its package's re-export
    assert registry.for_class(MyLocal).name == "local"
    assert registry.for_class(Unregistered) is None


# -- entry points of other distributions (real .dist-info directories, real modules) ------------------------------
def _distribution(root: pathlib.Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    """Install-like files for distribution ``name`` under ``root``: its .dist-info and its modules."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nemorun.executors]\n{textwrap.dedent(entry_points)}")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


_CLASS_MODULE = """
    import dataclasses
    from typing import ClassVar
    from nemorun_core.credentials import CredentialKind, CredentialSlot
    from nemorun_core.executors.base import Executor

    @dataclasses.dataclass
    class TokenExecutor(Executor):
        '''Jobs on a token-guarded service.'''
        token: str = ""
        backend: ClassVar[str] = "tokened"
        credential_slots: ClassVar[tuple] = (CredentialSlot("api", CredentialKind.BEARER_TOKEN, "token"),)
        def dryrun(self, job): ...
        def submit(self, job): ...
        def status_many(self, handles): ...
        def logs(self, handle, *, follow=False, offset=0): ...
        def cancel(self, handle): ...

    def describe():
        from nemorun_core.executors.registry import BackendEntry
        return BackendEntry("described", "nr_test_tokened:TokenExecutor", aliases=("desc",),
                            credential_kinds=("bearer_token",))

    def describe_badly():
        return {"name": "badly"}
"""


@pytest.fixture
def site(tmp_path, monkeypatch) -> pathlib.Path:
    """A directory on sys.path for this test's distributions; their modules are forgotten before and after."""
    def forget() -> None:
        for name in [m for m in sys.modules if m.startswith("nr_test_")]:
            del sys.modules[name]

    forget()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget()


def test_a_class_entry_point_is_listed_with_its_credential_kinds_and_loads(site) -> None:
    _distribution(site, "nr-test-tokened", "tokened = nr_test_tokened:TokenExecutor\n",
                  {"nr_test_tokened": _CLASS_MODULE})
    reg = Registry(path=[str(site)])
    entry = reg.get("tokened")
    assert (entry.distribution, entry.target, entry.credential_kinds, entry.description) == \
        ("nr-test-tokened", "nr_test_tokened:TokenExecutor", (CredentialKind.BEARER_TOKEN,),
         "Jobs on a token-guarded service.")
    cls = entry.load()
    assert reg.for_class(cls) is entry and [e.name for e in reg.entries()] == ["local", "docker", "slurm", "ray", "tokened"]


def test_a_function_entry_point_describes_its_backend(site) -> None:
    _distribution(site, "nr-test-described", "described = nr_test_tokened:describe\n",
                  {"nr_test_tokened": _CLASS_MODULE.replace('backend: ClassVar[str] = "tokened"',
                                                            'backend: ClassVar[str] = "described"')})
    reg = Registry(path=[str(site)])
    entry = reg.get("desc")  # by its alias
    assert entry.name == "described" and entry.distribution == "nr-test-described" and not entry.builtin
    assert entry.load().__name__ == "TokenExecutor"


def test_a_clash_with_a_builtin_names_both_distributions(site) -> None:
    _distribution(site, "evil-dist", "local = nr_test_tokened:TokenExecutor\n", {"nr_test_tokened": _CLASS_MODULE})
    reg = Registry(path=[str(site)])
    for ask in (lambda: reg.get("local"), reg.entries):
        with pytest.raises(RegistryError) as info:
            ask()
        message = str(info.value)
        assert "'local' is claimed twice" in message and "distribution 'nemorun'" in message
        assert "distribution 'evil-dist'" in message and "uninstall one of them" in message


def test_two_distributions_with_one_name_are_a_clash(site) -> None:
    _distribution(site / "a", "first-dist", "same = nr_test_tokened:describe\n")
    _distribution(site / "b", "second-dist", "same = nr_test_tokened:describe\n")
    (site / "nr_test_tokened.py").write_text(textwrap.dedent(_CLASS_MODULE).replace('"described"', '"same"'))
    reg = Registry(path=[str(site / "a"), str(site / "b")])
    with pytest.raises(RegistryError, match="'same' is claimed twice: by distribution 'first-dist' .* by "
                                            "distribution 'second-dist'"):
        reg.get("same")


def test_a_broken_entry_point_names_the_distribution_and_the_fix_and_spares_the_builtins(site) -> None:
    _distribution(site, "broken-dist", "gone = nr_test_module_that_is_not_there:Executor\n"
                                       "badly = nr_test_tokened:describe_badly\n",
                  {"nr_test_tokened": _CLASS_MODULE})
    reg = Registry(path=[str(site)])
    with pytest.raises(RegistryError) as info:
        reg.get("gone")
    message = str(info.value)
    assert "entry point gone = 'nr_test_module_that_is_not_there:Executor' of distribution 'broken-dist'" in message
    assert "ModuleNotFoundError" in message and "pip uninstall broken-dist" in message
    with pytest.raises(RegistryError, match="badly.* returned dict, not a BackendEntry"):
        reg.get("badly")
    with pytest.raises(RegistryError, match="broken-dist"):
        reg.entries()
    assert reg.get("local") is BUILTINS[0]  # a built-in is still found: nothing of broken-dist is imported
    from nemorun_core.executors.local import LocalExecutor

    assert reg.for_class(LocalExecutor) is BUILTINS[0]


def test_a_class_whose_backend_is_another_name_is_refused(site) -> None:
    _distribution(site, "misnamed-dist", "other = nr_test_tokened:TokenExecutor\n", {"nr_test_tokened": _CLASS_MODULE})
    with pytest.raises(RegistryError, match="TokenExecutor.backend is 'tokened', not 'other'"):
        Registry(path=[str(site)]).get("other")


def test_the_installed_example_package_is_registered() -> None:
    try:
        entry = registry.get("echo")
    except RegistryError as exc:
        pytest.fail(f"tests/fixtures/nemorun_echo_backend is not installed here ({exc}): run scripts/setup_envs.sh")
    assert entry.distribution == "nemorun-echo-backend" and registry.get("echo-subprocess") is entry
    assert entry.load().backend == "echo" and entry.credential_kinds == ()
