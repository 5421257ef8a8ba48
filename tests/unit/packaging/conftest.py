"""Helpers for packaging tests: real git repositories in tmp_path, and reading archives back."""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest


def git(repo, *args: str) -> str:
    """Run git in ``repo`` (file:// transport allowed, for submodules of local repositories)."""
    out = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def write_files(root, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)


def make_repo(path, files: dict[str, str | bytes]) -> str:
    """A git repository at ``path`` with ``files`` committed on branch ``main``."""
    os.makedirs(path, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    write_files(path, files)
    commit(path, "init")
    return str(path)


def commit(repo, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def members(archive: str) -> dict[str, bytes | str]:
    """name -> content (files) or ``-> target`` (symlinks)."""
    out: dict[str, bytes | str] = {}
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.issym():
                out[m.name] = f"-> {m.linkname}"
            else:
                out[m.name] = tf.extractfile(m).read()
    return out


@pytest.fixture
def project(tmp_path):
    """A small project repository: src/ (code, a package, caches, tests), configs/, README."""
    return make_repo(tmp_path / "project", {
        "README.md": "# project\n",
        "src/train.py": "print('train')\n",
        "src/model/__init__.py": "",
        "src/model/net.py": "class Net: ...\n",
        "src/tests/test_net.py": "def test(): ...\n",
        "src/data.yaml": "a: 1\n",
        "configs/base.yaml": "lr: 0.1\n",
        "configs/exp/big.yaml": "layers: 48\n",
    })
