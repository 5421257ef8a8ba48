"""HybridPackager: list and mapping forms, conflicts, and the spec's packaging example."""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from nemorun_core.config.serialize import decode, encode
from nemorun_core.packaging.base import Package, Packager, PackagingError

from .conftest import commit, members, write_files


def test_spec_example_as_written(project, tmp_path, monkeypatch):
    write_files(project, {"src/__pycache__/x.pyc": b"\0", "models/m.json": "{}"})
    commit(project)
    monkeypatch.chdir(project)
    git_packager = run.GitArchivePackager(
        subpath="src",  # Package only src directory
        exclude_patterns=["*.pyc", "__pycache__"]
    )
    pattern_packager = run.PatternPackager(
        include=["*.py", "*.yaml", "*.json", "configs/**/*", "models/**/*"],
        exclude=["__pycache__", "*.pyc", "tests/", "docs/", ".git/", "*.log"],
        relative_path=os.getcwd()
    )
    hybrid_packager = run.HybridPackager([
        git_packager,
        pattern_packager
    ])
    pkg = hybrid_packager.package(os.getcwd(), str(tmp_path / "out"))
    assert set(members(pkg.path)) == {
        # from git, src/ at the root
        "train.py", "model/__init__.py", "model/net.py", "tests/test_net.py", "data.yaml",
        # from the patterns, relative to the project
        "src/train.py", "src/model/__init__.py", "src/model/net.py", "src/data.yaml",
        "configs/base.yaml", "configs/exp/big.yaml", "models/m.json",
    }
    assert hybrid_packager.package(os.getcwd(), str(tmp_path / "out")).digest == pkg.digest


def test_mapping_puts_each_packager_under_its_folder(project, tmp_path):
    hybrid = run.HybridPackager({
        "code": run.GitArchivePackager(subpath="src", exclude_patterns=["tests/"]),
        "configs": run.PatternPackager(include=["*.yaml"], relative_path="configs"),
        "": run.PatternPackager(include=["README.md"]),
    })
    files = members(hybrid.package(project, str(tmp_path / "out")).path)
    assert set(files) == {"README.md", "code/train.py", "code/model/__init__.py", "code/model/net.py",
                          "code/data.yaml", "configs/base.yaml", "configs/exp/big.yaml"}


def test_same_path_same_content_is_stored_once_different_content_fails(project, tmp_path):
    same = run.HybridPackager([run.PatternPackager(include=["*.md"]), run.GitArchivePackager()])
    assert members(same.package(project, str(tmp_path / "a")).path)["README.md"] == b"# project\n"
    write_files(project, {"src/README.md": "# other\n"})
    clash = run.HybridPackager([run.GitArchivePackager(subpath="src", include_uncommitted=True, include_untracked=True),
                                run.PatternPackager(include=["README.md"])])
    with pytest.raises(PackagingError, match=r"'README.md' comes from packager #0 .* and from packager #1 .*"
                                             r"different content"):
        clash.package(project, str(tmp_path / "b"))


def test_sub_packager_errors_say_which(project, tmp_path):
    hybrid = run.HybridPackager({"cfg": run.PatternPackager(include=["*.toml"])})
    with pytest.raises(PackagingError, match=r"HybridPackager, packager 'cfg' \(PatternPackager\): .*'\*\.toml'"):
        hybrid.package(project, str(tmp_path / "out"))


class _Evil(Packager):
    """A third-party packager whose archive tries to escape: the hybrid refuses it."""

    def package(self, base_dir: str, output_dir: str) -> Package:
        import io
        import tarfile

        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, "evil.tar.gz")
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo("../escape.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
        return Package(path=path, digest="0", files=1, size=os.path.getsize(path))


@pytest.mark.parametrize("packagers, match", [
    ([], r"at least one packager"),
    (["not a packager"], r"is not a packager"),
    ({"../up": run.PatternPackager()}, r"folder '../up' must be a relative path"),
    ("oops", r"takes a list of packagers or a mapping"),
    ([_Evil()], r"unsafe member '../escape.txt'"),
])
def test_bad_input(project, tmp_path, packagers, match):
    with pytest.raises(PackagingError, match=match):
        run.HybridPackager(packagers).package(project, str(tmp_path / "out"))


@pytest.mark.parametrize("packager", [
    run.GitArchivePackager(subpath="src", exclude_patterns=["*.pyc"], ref="main"),
    run.GitPackage(repo_url="https://example.com/x.git", commit_hash="abc123", subdirectory="ml"),
    run.PatternPackager(include=["*.py"], exclude=["tests/"], relative_path="/work"),
    run.PatternPackage(patterns=["*.py"], exclude_patterns=["*.log"]),
    run.HybridPackager({"code": run.GitArchivePackager(), "cfg": run.PatternPackager(include=["*.yaml"])}),
    run.HybridPackager([run.GitArchivePackager(), run.PatternPackager(include=["*.yaml"])]),
])
def test_packagers_are_plain_dataclasses_that_round_trip(packager):
    assert decode(encode(packager), build=True) == packager
