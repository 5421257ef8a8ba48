import os

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh experiment store for the test."""
    path = tmp_path / "nemorun-home"
    monkeypatch.setenv("NEMORUN_HOME", str(path))
    return str(path)


def store_files(home: str) -> list[str]:
    out = []
    for root, _dirs, files in os.walk(home):
        out += [os.path.join(root, f) for f in files]
    return out
