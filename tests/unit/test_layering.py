"""Layering: data flows down, never up (docs: DESIGN.md "Layers"), and no package reads another's private modules.

Every module of the three packages is parsed (no import is executed) and every import in it is checked, including
imports inside functions and ``TYPE_CHECKING`` blocks: a lazy upward import is still an upward dependency.

Layers, bottom to top (a module may import its own layer and the layers below)::

    bottom         errors, secrets, home, jobfiles, lazy, metrics, _version: stdlib-only pieces everything uses
    config         Config / Partial, serialization, the override grammar and factories
    tunnel, packaging, launchers, executors (with the runner, which every executor starts), experiment,
    orchestration  what both orchestrators share (attach-or-submit, cancel-and-wait, ...)
    cli            the ``nemorun`` command line and ``@run.partial``
    api            ``nemorun_core/__init__.py``, the curated public names
    orchestrators  nemorun_prefect, nemorun_airflow (neither imports the other)

A bare ``import nemorun_core`` is allowed anywhere: every submodule's import already runs the package ``__init__``,
and it is how a module finds the installed package's directory.
"""

from __future__ import annotations

import ast
import pathlib
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("nemorun_core", "nemorun_prefect", "nemorun_airflow")

LAYERS = ("bottom", "config", "tunnel", "packaging", "launchers", "executors", "experiment", "orchestration", "cli",
          "api", "orchestrators")
# Top-level modules of nemorun_core and the layer each belongs to; a new one must be placed here.
TOP_LEVEL = {
    "nemorun_core.errors": "bottom",
    "nemorun_core.initargs": "bottom",  # constructor-argument checks (executors, packagers)
    "nemorun_core.secrets": "bottom",
    "nemorun_core.home": "bottom",
    "nemorun_core.jobfiles": "bottom",
    "nemorun_core.credentials": "tunnel",  # SSHCredential builds an SSHTunnel
    "nemorun_core.lazy": "bottom",
    "nemorun_core._lazy": "bottom",
    "nemorun_core._version": "bottom",
    "nemorun_core.metrics": "bottom",
    "nemorun_core.runner": "executors",
    "nemorun_core.orchestration": "orchestration",
    "nemorun_core.exceptions": "bottom",  # NeMo Run's path of nemorun_core.errors
    "nemorun_core": "api",
}
SUBPACKAGE_LAYERS = {name: name for name in LAYERS if name not in ("bottom", "api", "orchestrators")}
SUBPACKAGE_LAYERS["core"] = "api"  # NeMo Run's module paths (nemo_run.core.execution.slurm...): public re-exports
SUBPACKAGE_LAYERS["run"] = "api"  # NeMo Run's nemo_run.run.experiment, nemo_run.run.plugin...: public re-exports
# Ray clusters and jobs (RayCluster, RayJob): beside the executors, which they start through (the Ray executor checks
# its cluster= against RayCluster, and RayJob submits through the Ray executor).
SUBPACKAGE_LAYERS["ray"] = "executors"

# Documented re-export shims that keep an old import path working after its implementation moved up a layer
# (importer -> imported). Each one imports lazily and holds no code of its own.
SHIMS = {
    ("nemorun_core.config.partial_fn", "nemorun_core.cli.partial_fn"),
}


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    target: str  # the imported module
    name: str | None  # the name imported from it (``from target import name``), None for ``import target``
    where: str  # path:line, for the failure message


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of this repository (not an attribute of one)."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_in(text: str, importer: str, *, is_package: bool, filename: str) -> list[Import]:
    """Every import of a project package in ``text`` (module ``importer``), at any depth, relative ones resolved."""
    package = importer if is_package else importer.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(text, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(importer, a.name, None, where) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                module = ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                # `from pkg import submodule` depends on the submodule, not on the package's __init__.
                sub = f"{module}.{alias.name}"
                found.append(Import(importer, sub, None, where) if is_module(sub)
                             else Import(importer, module, alias.name, where))
    return found


def imports_of(path: pathlib.Path) -> list[Import]:
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py",
                      filename=str(path.relative_to(ROOT)))


def layer_of(module: str) -> str:
    top = module.split(".")[0]
    if top in ("nemorun_prefect", "nemorun_airflow"):
        return "orchestrators"
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    parts = module.split(".")
    if len(parts) > 1 and f"{parts[0]}.{parts[1]}" in TOP_LEVEL:
        return TOP_LEVEL[f"{parts[0]}.{parts[1]}"]
    if len(parts) > 1 and parts[1] in SUBPACKAGE_LAYERS:
        return SUBPACKAGE_LAYERS[parts[1]]
    raise AssertionError(f"module {module} has no layer: add it to TOP_LEVEL in {__file__} (see the docstring)")


def all_imports() -> list[Import]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out += imports_of(path)
    return out


def upward(imp: Import) -> str | None:
    """Why ``imp`` goes against the layers, or None when it does not."""
    if imp.target == "nemorun_core" and imp.name is None:
        return None  # a bare `import nemorun_core` (see the module docstring)
    if (imp.importer, imp.target) in SHIMS:
        return None
    src, dst = layer_of(imp.importer), layer_of(imp.target)
    if LAYERS.index(dst) > LAYERS.index(src):
        return f"{imp.where}: {imp.importer} ({src}) imports {imp.target} ({dst}), a layer above it"
    if src == dst == "orchestrators" and imp.importer.split(".")[0] != imp.target.split(".")[0]:
        return f"{imp.where}: {imp.importer} imports {imp.target}: the orchestrator packages are independent"
    return None


def private_owner(module: str, name: str | None) -> str | None:
    """The package a private module (or a private name) belongs to, or None when it is public.

    ``a.b._c`` is private to package ``a.b``; a private name ``_x`` of module ``a.b.m`` is private to ``a.b``.
    """
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    if name and name.startswith("_") and not name.startswith("__"):
        return module if is_module(module) and (ROOT.joinpath(*parts) / "__init__.py").is_file() else \
            ".".join(parts[:-1])
    return None


def cross_private(imp: Import) -> str | None:
    owner = private_owner(imp.target, imp.name)
    if owner is None or imp.importer == owner or imp.importer.startswith(owner + "."):
        return None
    what = f"{imp.target}.{imp.name}" if imp.name else imp.target
    return (f"{imp.where}: {imp.importer} imports {what}, private to {owner}: give it a public name in {owner} "
            "and import that")


def test_every_module_has_a_layer():
    for imp in all_imports():
        layer_of(imp.importer)
        layer_of(imp.target)


def test_nothing_imports_upward():
    problems = sorted(filter(None, map(upward, all_imports())))
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_private_module_is_imported_across_packages():
    problems = sorted(filter(None, map(cross_private, all_imports())))
    assert not problems, "cross-package private imports:\n" + "\n".join(problems)


def test_each_shim_still_exists_and_imports_only_lazily():
    """An allow-listed shim must be what the allow-list says: it names its target, and imports it only lazily."""
    for importer, target in SHIMS:
        path = ROOT.joinpath(*importer.split(".")).with_suffix(".py")
        text = path.read_text()
        top = [n for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        at_module_level = {getattr(n, "module", None) for n in top} | {a.name for n in top for a in n.names}
        assert target in text, f"{importer} is allow-listed as a shim of {target} but does not name it"
        assert target not in at_module_level, f"{importer} imports {target} at module level; keep the shim lazy"


@pytest.mark.parametrize("code, expected", [
    ("from nemorun_core.experiment.store import Store", "a layer above"),
    ("from nemorun_core.cli import main", "a layer above"),
    ("from ...experiment import store", "a layer above"),  # nemorun_core.experiment, from executors.slurm
    ("def f():\n    from nemorun_core.experiment.launch import run", "a layer above"),
    ("from nemorun_core.executors import base", None),
    ("import nemorun_core", None),
])
def test_the_check_sees_upward_imports_in_any_form(code, expected):
    """The checker itself: module-level, relative and function-level imports are all seen."""
    found = imports_in(code, "nemorun_core.executors.slurm.states", is_package=False, filename="example.py")
    problems = [p for p in map(upward, found) if p]
    if expected is None:
        assert not problems
    else:
        assert problems and expected in problems[0]


def test_the_check_sees_private_imports_across_packages():
    outside = Import("nemorun_airflow.hooks", "nemorun_core.tunnel._ssh_connect", None, "x:1")
    inside = Import("nemorun_core.tunnel.ssh", "nemorun_core.tunnel._ssh_connect", None, "x:1")
    private_name = Import("nemorun_core.experiment.store", "nemorun_core.config.buildable", "_valid_names", "x:1")
    assert "private to nemorun_core.tunnel" in cross_private(outside)
    assert cross_private(inside) is None
    assert "private to nemorun_core.config" in cross_private(private_name)
