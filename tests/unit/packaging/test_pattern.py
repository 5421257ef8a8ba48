"""PatternPackager / PatternPackage, and the glob rules they share with GitArchivePackager."""

from __future__ import annotations

import os
import shutil

import pytest

import nemorun_core as run
from nemorun_core.packaging._globs import GlobSet, compile_glob
from nemorun_core.packaging.base import PackagingError

from .conftest import members, write_files


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "proj"
    write_files(root, {
        "train.py": "t\n", "setup.json": "{}\n", "notes.txt": "n\n", "run.log": "l\n",
        "configs/base.yaml": "b\n", "configs/exp/big.yaml": "x\n", "configs/exp/deep/a.txt": "a\n",
        "models/m.pt": b"\x01\x02", "pkg/mod.py": "m\n", "pkg/__pycache__/mod.cpython-311.pyc": b"\0",
        "pkg/mod.pyc": b"\0", "tests/test_x.py": "x\n", "docs/index.md": "d\n", ".git/config": "[core]\n",
        "temp/cache/x.py": "tmp\n",
    })
    return str(root)


@pytest.mark.parametrize("pattern, path, is_dir, expected", [
    ("*.py", "a.py", False, True),
    ("*.py", "deep/er/a.py", False, True),
    ("*.py", "a.pyc", False, False),
    ("configs/*.yaml", "configs/a.yaml", False, True),
    ("configs/*.yaml", "configs/x/a.yaml", False, False),
    ("configs/*.yaml", "other/configs/a.yaml", False, False),
    ("configs/**/*", "configs/x/y/z", False, True),
    ("**/b", "a/b", False, True),
    ("**/b", "b", False, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("tests/", "tests", True, True),
    ("tests/", "tests", False, False),
    ("tests/", "a/tests", True, True),
    ("/top", "top", False, True),
    ("/top", "a/top", False, False),
    ("f?le", "file", False, True),
    ("f?le", "f/le", False, False),
    ("[!a]x", "bx", False, True),
    ("[!a]x", "ax", False, False),
    ("[a-c]x", "cx", False, True),
    (r"\[x\]", "[x]", False, True),
    ("*", "a/b", False, True),
])
def test_glob_rules(pattern, path, is_dir, expected):
    assert compile_glob(pattern).matches(path, is_dir) is expected


def test_matched_directory_covers_its_content():
    globs = GlobSet.compile(["__pycache__", "tests/"], field="exclude")
    assert globs.covers("a/__pycache__/x.pyc") and globs.covers("tests/t.py") and not globs.covers("a/tests.py")


@pytest.mark.parametrize("pattern, match", [
    ("[abc", r"never closed"), ("", r"empty pattern"), ("a/../b", r"'\.\.' segment"), ("x\\", r"lone"),
])
def test_bad_globs(pattern, match):
    with pytest.raises(PackagingError, match=match):
        compile_glob(pattern)


def test_spec_example_as_written(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tree)
    pattern_packager = run.PatternPackager(
        include=[
            "*.py",
            "*.yaml",
            "*.json",
            "configs/**/*",
            "models/**/*"
        ],
        exclude=[
            "__pycache__",
            "*.pyc",
            "tests/",
            "docs/",
            ".git/",
            "*.log"
        ],
        relative_path=os.getcwd()
    )
    pkg = pattern_packager.package(str(tmp_path), str(tmp_path / "out"))
    assert set(members(pkg.path)) == {
        "train.py", "setup.json", "configs/base.yaml", "configs/exp/big.yaml", "configs/exp/deep/a.txt",
        "models/m.pt", "pkg/mod.py", "temp/cache/x.py",
    }
    assert pkg.files == 8


def test_pattern_package_spec_spelling(tree, tmp_path):
    pattern_package = run.PatternPackage(
        patterns=["*.py", "configs/*.yaml", "models/*.pt"],
        exclude_patterns=["*.log", "temp/*"]
    )
    files = set(members(pattern_package.package(tree, str(tmp_path / "out")).path))
    assert files == {"train.py", "configs/base.yaml", "models/m.pt", "pkg/mod.py", "tests/test_x.py"}


def test_relative_path_is_the_archive_root(tree, tmp_path):
    pkg = run.PatternPackager(include=["*.yaml"], relative_path="configs").package(tree, str(tmp_path / "out"))
    assert set(members(pkg.path)) == {"base.yaml", "exp/big.yaml"}


def test_absolute_patterns_inside_relative_path(tree, tmp_path):
    pkg = run.PatternPackager(include=[os.path.join(tree, "configs", "*.yaml")], relative_path=tree).package(
        str(tmp_path), str(tmp_path / "out"))
    assert set(members(pkg.path)) == {"configs/base.yaml"}
    with pytest.raises(PackagingError, match=r"outside relative_path"):
        run.PatternPackager(include=["/elsewhere/*.py"], relative_path=tree).package(tree, str(tmp_path / "o"))


def test_pattern_matching_nothing_is_an_error_unless_allowed(tree, tmp_path):
    packager = run.PatternPackager(include=["*.py", "configs/*.yml"])
    with pytest.raises(PackagingError, match=r"'configs/\*\.yml' matched no file.*allow_empty=True"):
        packager.package(tree, str(tmp_path / "out"))
    packager.allow_empty = True
    assert set(members(packager.package(tree, str(tmp_path / "out")).path)) >= {"train.py"}
    everything_excluded = run.PatternPackager(include=["*.py"], exclude=["*"])
    with pytest.raises(PackagingError, match=r"'\*\.py' matched no file"):
        everything_excluded.package(tree, str(tmp_path / "out"))


def test_deterministic_across_copies_and_mtimes_not_across_content(tree, tmp_path):
    packager = run.PatternPackager(include=["**"], exclude=[".git/"])
    first = packager.package(tree, str(tmp_path / "out"))
    assert packager.package(tree, str(tmp_path / "out")).digest == first.digest
    copy = str(tmp_path / "copy")
    shutil.copytree(tree, copy)
    os.utime(os.path.join(copy, "train.py"), (1, 1))
    os.chmod(os.path.join(copy, "notes.txt"), 0o600)  # only the owner's execute bit matters
    assert packager.package(copy, str(tmp_path / "out2")).digest == first.digest
    write_files(copy, {"train.py": "T\n"})
    assert packager.package(copy, str(tmp_path / "out2")).digest != first.digest
    write_files(copy, {"train.py": "t\n"})
    os.chmod(os.path.join(copy, "train.py"), 0o755)
    assert packager.package(copy, str(tmp_path / "out2")).digest != first.digest


def test_symlinks_inside_are_kept_outside_are_refused(tree, tmp_path):
    os.symlink("configs/base.yaml", os.path.join(tree, "base.yaml"))
    pkg = run.PatternPackager(include=["*.yaml"]).package(tree, str(tmp_path / "out"))
    assert members(pkg.path)["base.yaml"] == "-> configs/base.yaml"
    os.symlink(str(tmp_path), os.path.join(tree, "configs", "escape.yaml"))
    with pytest.raises(PackagingError, match=r"'configs/escape.yaml' is a symlink to .*an absolute path"):
        run.PatternPackager(include=["*.yaml"]).package(tree, str(tmp_path / "out"))


@pytest.mark.parametrize("kwargs, match", [
    ({"relative_path": "nope"}, r"relative_path .*nope' is not a directory"),
    ({"include": ["[x"]}, r"include: bad glob"),
    ({"include": ["*.py"], "exclude": ["a/../b"]}, r"exclude: pattern 'a/\.\./b'"),
    ({"include": 3}, r"expected a pattern or a list"),
])
def test_bad_input(tree, tmp_path, kwargs, match):
    with pytest.raises(PackagingError, match=match):
        run.PatternPackager(**kwargs).package(tree, str(tmp_path / "out"))


def test_output_dir_not_writable(tree, tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(PackagingError, match=r"cannot write the package into output dir"):
        run.PatternPackager(include=["*.py"]).package(tree, str(tmp_path / "f" / "out"))


def test_output_dir_inside_the_tree_is_never_packaged(tree, tmp_path):
    packager = run.PatternPackager(include=["**"], exclude=[".git/"])
    clean = packager.package(tree, str(tmp_path / "outside")).digest
    assert packager.package(tree, tree).digest == clean  # the archive lands in the tree...
    assert packager.package(tree, tree).digest == clean  # ...and is not packaged next time
    os.remove(os.path.join(tree, f"{clean}.tar.gz"))
    assert packager.package(tree, os.path.join(tree, "out")).digest == clean
    assert packager.package(tree, os.path.join(tree, "out")).digest == clean
