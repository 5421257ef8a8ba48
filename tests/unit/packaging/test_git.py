"""GitArchivePackager / GitPackage against real repositories."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tarfile

import pytest

import nemorun_core as run
from nemorun_core.packaging._archive import MTIME
from nemorun_core.packaging.base import PackagingError

from .conftest import commit, git, make_repo, members, write_files


def test_packages_subpath_at_archive_root(project, tmp_path):
    pkg = run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    assert members(pkg.path) == {
        "train.py": b"print('train')\n", "model/__init__.py": b"", "model/net.py": b"class Net: ...\n",
        "tests/test_net.py": b"def test(): ...\n", "data.yaml": b"a: 1\n",
    }
    assert pkg.files == 5
    assert os.path.basename(pkg.path) == f"{pkg.digest}.tar.gz"
    data = open(pkg.path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == pkg.digest and len(data) == pkg.size


def test_whole_repository_by_default_from_a_subdirectory(project, tmp_path):
    pkg = run.GitArchivePackager().package(os.path.join(project, "src", "model"), str(tmp_path / "out"))
    assert "README.md" in members(pkg.path) and "src/model/net.py" in members(pkg.path)


def test_archive_is_canonical(project, tmp_path):
    os.chmod(os.path.join(project, "src", "train.py"), 0o755)
    commit(project)
    pkg = run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    raw = open(pkg.path, "rb").read()
    assert raw[3] == 0  # gzip flags: no file name
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime
    with tarfile.open(pkg.path) as tf:
        infos = tf.getmembers()
    names = [m.name for m in infos]
    assert names == sorted(names, key=str.encode)
    for m in infos:
        assert m.isreg() and (m.mtime, m.uid, m.gid, m.uname, m.gname) == (MTIME, 0, 0, "", "")
        assert m.mode == (0o755 if m.name == "train.py" else 0o644)
    assert tf.pax_headers == {}  # no global header carrying the commit id


def test_same_commit_same_digest_anywhere_and_one_byte_changes_it(project, tmp_path):
    packager = run.GitArchivePackager(subpath="src", exclude_patterns=["tests/"])
    first = packager.package(project, str(tmp_path / "out1"))
    assert packager.package(project, str(tmp_path / "out1")).digest == first.digest
    clone = tmp_path / "elsewhere" / "clone"
    git(tmp_path, "clone", "-q", project, str(clone))
    assert packager.package(str(clone), str(tmp_path / "out2")).digest == first.digest
    write_files(clone, {"src/train.py": "print('trainX')\n"})
    commit(clone)
    assert packager.package(str(clone), str(tmp_path / "out2")).digest != first.digest


def test_same_tree_in_another_commit_gives_the_same_digest(project, tmp_path):
    packager = run.GitArchivePackager(subpath="src")
    before = packager.package(project, str(tmp_path / "out")).digest
    write_files(project, {"README.md": "changed outside src\n"})
    commit(project)
    assert packager.package(project, str(tmp_path / "out")).digest == before


def test_exclude_patterns_match_like_gitignore(project, tmp_path):
    write_files(project, {"src/model/__pycache__/net.cpython-311.pyc": b"\0", "src/stale.pyc": b"\0",
                          "src/model/tests/t.py": "", "src/logs/x.log": ""})
    commit(project)
    packager = run.GitArchivePackager(subpath="src", exclude_patterns=["*.pyc", "__pycache__", "tests/", "/logs"])
    names = set(members(packager.package(project, str(tmp_path / "out")).path))
    assert names == {"train.py", "model/__init__.py", "model/net.py", "data.yaml"}


def test_fast_path_work_tree_path_and_pattern_packager_agree(project, tmp_path):
    """The canonical archive depends on the files only: git archive, the work tree and a pattern walk agree."""
    write_files(project, {"src/model/__pycache__/a.pyc": b"\0", "src/long/" + "d" * 60 + "/" + "f" * 80 + ".py": "x",
                          "src/ünï.py": "u"})
    os.symlink("model/net.py", os.path.join(project, "src", "alias.py"))
    commit(project)
    excludes = ["__pycache__", "tests/"]
    fast = run.GitArchivePackager(subpath="src", exclude_patterns=excludes).package(project, str(tmp_path / "a"))
    work = run.GitArchivePackager(subpath="src", exclude_patterns=excludes, include_uncommitted=True)
    pattern = run.PatternPackager(include=["**"], exclude=excludes, relative_path="src")
    assert work.package(project, str(tmp_path / "b")).digest == fast.digest
    assert pattern.package(project, str(tmp_path / "c")).digest == fast.digest
    assert members(fast.path)["alias.py"] == "-> model/net.py"


def test_dirty_work_tree_fails_naming_files_and_fixes(project, tmp_path):
    write_files(project, {"src/train.py": "print('edited')\n"})
    os.remove(os.path.join(project, "src", "data.yaml"))
    with pytest.raises(PackagingError) as info:
        run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    message = str(info.value)
    assert "src/train.py" in message and "src/data.yaml" in message
    assert "include_uncommitted=True" in message and "ref=" in message and "Commit" in message
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_changes_outside_subpath_do_not_matter(project, tmp_path):
    write_files(project, {"README.md": "edited\n"})
    assert run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out")).files == 5


def test_untracked_files_are_reported_not_fatal(project, tmp_path, caplog):
    write_files(project, {"src/new_module.py": "x = 1\n"})
    with caplog.at_level(logging.WARNING):
        pkg = run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    assert "new_module.py" not in members(pkg.path)
    assert "src/new_module.py" in caplog.text and "include_untracked=True" in caplog.text


def test_include_uncommitted_and_untracked(project, tmp_path):
    write_files(project, {"src/train.py": "print('edited')\n", "src/new.py": "new\n", "src/.gitignore": "*.log\n",
                          "src/run.log": "ignored\n"})
    os.remove(os.path.join(project, "src", "data.yaml"))
    tracked = run.GitArchivePackager(subpath="src", include_uncommitted=True).package(project, str(tmp_path / "a"))
    files = members(tracked.path)
    assert files["train.py"] == b"print('edited')\n"
    assert "data.yaml" not in files and "new.py" not in files
    both = run.GitArchivePackager(subpath="src", include_uncommitted=True, include_untracked=True)
    files = members(both.package(project, str(tmp_path / "b")).path)
    assert files["new.py"] == b"new\n" and ".gitignore" in files and "run.log" not in files


def test_explicit_ref_packages_that_commit_even_when_dirty(project, tmp_path):
    old = git(project, "rev-parse", "HEAD")
    write_files(project, {"src/train.py": "print('v2')\n"})
    commit(project)
    write_files(project, {"src/train.py": "print('dirty')\n"})
    assert members(run.GitArchivePackager(subpath="src", ref=old).package(project, str(tmp_path / "a")).path)[
        "train.py"] == b"print('train')\n"
    assert members(run.GitArchivePackager(subpath="src", ref="HEAD").package(project, str(tmp_path / "b")).path)[
        "train.py"] == b"print('v2')\n"


@pytest.mark.parametrize("kwargs, match", [
    ({"ref": "mian"}, r"unknown ref 'mian'.*did you mean 'main'"),
    ({"subpath": "scr"}, r"subpath 'scr' does not exist .*did you mean 'src'"),
    ({"subpath": "README.md"}, r"subpath 'README.md' is a file"),
    ({"subpath": "../elsewhere"}, r"must be relative to the repository root"),
    ({"exclude_patterns": ["[abc"]}, r"exclude_patterns: bad glob '\[abc'.*never closed"),
    ({"exclude_patterns": [""]}, r"empty pattern"),
    ({"include_untracked": True}, r"include_untracked=True needs include_uncommitted=True"),
    ({"include_uncommitted": True, "ref": "HEAD"}, r"choose one"),
    ({"exclude_patterns": ["*"]}, r"nothing to package"),
    ({"repo": "no/such/dir"}, r"neither an existing directory nor a git URL"),
])
def test_bad_input_is_a_clear_error(project, tmp_path, kwargs, match):
    with pytest.raises(PackagingError, match=match):
        run.GitArchivePackager(**kwargs).package(project, str(tmp_path / "out"))


def test_not_a_git_repository(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(PackagingError, match=r"not inside a git repository.*PatternPackager"):
        run.GitArchivePackager().package(str(tmp_path / "plain"), str(tmp_path / "out"))


def test_output_dir_not_writable(project, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(PackagingError, match=r"cannot write the package into output dir"):
        run.GitArchivePackager().package(project, str(tmp_path / "a_file" / "out"))


def test_symlink_pointing_outside_fails_with_its_path(project, tmp_path):
    os.symlink("../../README.md", os.path.join(project, "src", "model", "readme"))
    commit(project)
    with pytest.raises(PackagingError, match=r"'model/readme' is a symlink to '../../README.md', outside"):
        run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".tar.gz") or f.endswith(".tmp")]
    # the whole repository contains the target: fine there
    assert run.GitArchivePackager().package(project, str(tmp_path / "out")).files == 8


@pytest.fixture
def with_submodule(project, tmp_path):
    lib = make_repo(tmp_path / "lib", {"lib.py": "LIB = 1\n", "pkg/util.py": "u\n", "pkg/x.pyc": b"\0"})
    git(project, "submodule", "add", "-q", lib, "src/vendor")
    commit(project, "add submodule")
    return project


def test_submodules_are_included_at_their_recorded_commit(with_submodule, tmp_path):
    write_files(os.path.join(with_submodule, "src", "vendor"), {"lib.py": "LIB = 2\n"})  # not recorded: ignored
    git(os.path.join(with_submodule, "src", "vendor"), "commit", "-qam", "moved on")
    packager = run.GitArchivePackager(subpath="src", ref="HEAD", exclude_patterns=["*.pyc"])
    files = members(packager.package(with_submodule, str(tmp_path / "out")).path)
    assert files["vendor/lib.py"] == b"LIB = 1\n" and "vendor/pkg/util.py" in files and "vendor/pkg/x.pyc" not in files
    without = run.GitArchivePackager(subpath="src", ref="HEAD", include_submodules=False)
    assert not any(n.startswith("vendor") for n in members(without.package(with_submodule, str(tmp_path / "o")).path))


def test_submodule_changes_count_as_uncommitted(with_submodule, tmp_path):
    write_files(os.path.join(with_submodule, "src", "vendor"), {"lib.py": "LIB = 3\n"})
    with pytest.raises(PackagingError, match=r"src/vendor"):
        run.GitArchivePackager(subpath="src").package(with_submodule, str(tmp_path / "out"))
    files = members(run.GitArchivePackager(subpath="src", include_uncommitted=True).package(
        with_submodule, str(tmp_path / "out")).path)
    assert files["vendor/lib.py"] == b"LIB = 3\n"


def test_submodule_not_checked_out_is_an_error_with_the_fix(with_submodule, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", with_submodule, str(clone))
    with pytest.raises(PackagingError, match=r"'src/vendor'.*not checked out.*git submodule update --init"):
        run.GitArchivePackager(subpath="src").package(str(clone), str(tmp_path / "out"))


def test_git_package_spec_spelling(project, tmp_path):
    sha = git(project, "rev-parse", "HEAD")
    write_files(project, {"src/train.py": "later\n"})
    commit(project)
    # the spec's example, with a local repository instead of GitHub
    git_package = run.GitPackage(repo_url=project, commit_hash=sha[:7], subdirectory="src")
    pkg = git_package.package(str(tmp_path), str(tmp_path / "out"))
    assert members(pkg.path)["train.py"] == b"print('train')\n"
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", project, str(bare))
    by_url = run.GitPackage(repo_url=f"file://{bare}", commit_hash=sha, subdirectory="src")
    assert by_url.package(str(tmp_path), str(tmp_path / "out2")).digest == pkg.digest
    from_bare = run.GitPackage(repo_url=str(bare), commit_hash=sha, subdirectory="src")
    assert from_bare.package(str(tmp_path), str(tmp_path / "out3")).digest == pkg.digest


def test_spec_example_constructs_and_packages(project, tmp_path, monkeypatch):
    write_files(project, {"src/__pycache__/x.pyc": b"\0"})
    commit(project)
    monkeypatch.chdir(project)
    git_packager = run.GitArchivePackager(
        subpath="src",  # Package only src directory
        exclude_patterns=["*.pyc", "__pycache__"]
    )
    pkg = git_packager.package(os.getcwd(), str(tmp_path / "out"))
    assert "train.py" in members(pkg.path) and not any("pycache" in n for n in members(pkg.path))


def test_archive_extracts_back_to_the_same_tree(project, tmp_path):
    from nemorun_core.packaging.extract import safe_extract

    pkg = run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "out"))
    safe_extract(pkg.path, str(tmp_path / "x"))
    shutil.rmtree(os.path.join(project, ".git"))
    for rel in ("train.py", "model/net.py"):
        assert open(tmp_path / "x" / rel, "rb").read() == open(os.path.join(project, "src", rel), "rb").read()


def test_untracked_output_dir_in_the_work_tree_is_never_packaged(project):
    packager = run.GitArchivePackager(subpath="src", include_uncommitted=True, include_untracked=True)
    out = os.path.join(project, "src", "build")
    first = packager.package(project, out)
    assert packager.package(project, out).digest == first.digest
