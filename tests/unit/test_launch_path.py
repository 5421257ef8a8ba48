"""The directories a task's process gets on sys.path include the root its own code is imported from."""

from __future__ import annotations

import importlib
import os
import sys

import nemorun_core as run
from nemorun_core.experiment.tasks import launch_path


def test_the_tasks_import_root_and_source_pythonpath_entries_are_included(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "src" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text("def train(lr: float = 0.1) -> float:\n    return lr\n")
    extra = tmp_path / "more"
    extra.mkdir()
    site = tmp_path / "venv" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(extra), str(site), str(tmp_path / "missing")]))
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module("mypkg.train")
    try:
        paths = launch_path(run.Partial(module.train, lr=0.5))
    finally:
        sys.modules.pop("mypkg.train", None)
        sys.modules.pop("mypkg", None)
    assert str(tmp_path / "src") in paths, "the root mypkg is imported from"
    assert str(extra) in paths, "a source tree on PYTHONPATH"
    assert str(site) not in paths and str(tmp_path / "missing") not in paths
    assert paths.index(str(tmp_path)) == 1, "the working directory comes right after the script's directory"
    assert len(paths) == len(set(paths))
