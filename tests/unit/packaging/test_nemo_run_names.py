"""NeMo Run's packager API works unchanged: its argument names beside ours, one canonical field set, and the
pass-through ``run.Packager()``."""

from __future__ import annotations

import inspect
import logging
import os

import pytest

import nemorun_core as run
from nemorun_core.config.serialize import decode, encode, from_yaml, to_yaml
from nemorun_core.errors import ConfigError
from nemorun_core.executors.fields import UnknownArgumentError
from nemorun_core.packaging.base import PackagerSettingError, PackagingError, packages_code

from .conftest import commit, members, write_files


# -- GitArchivePackager ------------------------------------------------------------------------------------------
def test_basepath_is_repo_and_serializes_as_repo(project, tmp_path):
    nemo = run.GitArchivePackager(basepath=project, subpath="src")
    assert nemo == run.GitArchivePackager(repo=project, subpath="src")
    assert "\nbasepath:" not in to_yaml(nemo) and f"\nrepo: {project}" in to_yaml(nemo)
    assert decode(encode(nemo), build=True) == nemo
    assert run.GitArchivePackager(basepath="").repo is None, "NeMo Run's empty basepath is the default"
    # basepath may be any directory inside the repository, as NeMo Run runs `git rev-parse --show-toplevel` there
    files = members(run.GitArchivePackager(basepath=os.path.join(project, "configs"), subpath="src")
                    .package(str(tmp_path), str(tmp_path / "out")).path)
    assert "train.py" in files and "model/net.py" in files


def test_both_spellings_of_one_setting_is_an_error_naming_both(project):
    with pytest.raises(PackagerSettingError, match=r"GitArchivePackager.repo: repo= and basepath= are one setting"):
        run.GitArchivePackager(basepath=project, repo=project)
    with pytest.raises(PackagerSettingError, match=r"include= and include_pattern= are one setting"):
        run.PatternPackager(include=["*.py"], include_pattern="*.py")
    with pytest.raises(PackagerSettingError, match=r"packagers= and sub_packagers= are one setting"):
        run.HybridPackager([run.PatternPackager()], sub_packagers={"a": run.PatternPackager()})


def test_include_pattern_adds_files_outside_git_relative_to_the_repository_root(project, tmp_path):
    write_files(project, {"build/lib.so": b"\x7fELF", "build/notes.txt": "x"})  # untracked, generated
    packager = run.GitArchivePackager(subpath="src", include_pattern="build/*.so")
    files = members(packager.package(project, str(tmp_path / "out")).path)
    assert files["build/lib.so"] == b"\x7fELF" and "build/notes.txt" not in files
    assert "train.py" in files and "model/net.py" in files, "the commit's subpath is still the archive's root"
    assert packager.include_pattern == ["build/*.so"] and decode(encode(packager), build=True) == packager
    # NeMo Run's defaults spelled out: "" is no pattern, and the repository root
    assert run.GitArchivePackager(include_pattern="", include_pattern_relative_path="") == run.GitArchivePackager()
    assert run.GitArchivePackager(subpath="src", include_pattern=["build/*.so"], include_pattern_relative_path=[""]
                                  ).package(project, str(tmp_path / "o3")).digest == packager.package(
                                      project, str(tmp_path / "o4")).digest
    again = packager.package(project, str(tmp_path / "out"))
    assert again.digest == packager.package(project, str(tmp_path / "out2")).digest


def test_include_pattern_relative_path_one_per_pattern(project, tmp_path):
    extra = tmp_path / "extra"
    write_files(str(extra), {"weights/w.bin": b"w", "vocab.txt": "v"})
    packager = run.GitArchivePackager(subpath="src", include_pattern=["weights/*", "vocab.txt"],
                                      include_pattern_relative_path=[str(extra), str(extra)])
    files = members(packager.package(project, str(tmp_path / "out")).path)
    assert files["weights/w.bin"] == b"w" and files["vocab.txt"] == b"v"
    with pytest.raises(PackagerSettingError, match=r"include_pattern_relative_path: has 3 directories for 2"):
        run.GitArchivePackager(include_pattern=["a", "b"], include_pattern_relative_path=["x", "y", "z"])
    with pytest.raises(PackagerSettingError, match=r"include_pattern is empty"):
        run.GitArchivePackager(include_pattern_relative_path="x")


def test_include_pattern_never_replaces_a_committed_file_silently(project, tmp_path):
    write_files(project, {"generated/train.py": "print('other')\n"})
    packager = run.GitArchivePackager(subpath="src", include_pattern="*.py",
                                      include_pattern_relative_path=os.path.join(project, "generated"))
    with pytest.raises(PackagingError, match=r"'train.py' comes from the commit and from include_pattern '\*\.py'"):
        packager.package(project, str(tmp_path / "out"))
    with pytest.raises(PackagingError, match=r"include_pattern '\*\.nothing'.*matched no file"):
        run.GitArchivePackager(include_pattern="*.nothing").package(project, str(tmp_path / "out"))


def test_check_uncommitted_changes(project, tmp_path):
    write_files(project, {"src/train.py": "print('changed')\n"})
    with pytest.raises(PackagingError, match=r"uncommitted changes .*M src/train.py.*include_uncommitted=True"):
        run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "a"))  # ours: refused by default
    with pytest.raises(PackagingError, match=r"M src/train.py.*check_uncommitted_changes=False"):
        run.GitArchivePackager(ref="main", check_uncommitted_changes=True).package(project, str(tmp_path / "b"))
    # NeMo Run's default: the commit, without the changes
    files = members(run.GitArchivePackager(subpath="src", check_uncommitted_changes=False)
                    .package(project, str(tmp_path / "c")).path)
    assert files["train.py"] == b"print('train')\n"
    with pytest.raises(PackagerSettingError, match=r"check_uncommitted_changes: .*include_uncommitted=True"):
        run.GitArchivePackager(check_uncommitted_changes=True, include_uncommitted=True)


def test_check_untracked_files_refuses_them_instead_of_warning(project, tmp_path, caplog):
    write_files(project, {"src/new_module.py": "x = 1\n"})
    with caplog.at_level(logging.WARNING):
        files = members(run.GitArchivePackager(subpath="src").package(project, str(tmp_path / "a")).path)
    assert "new_module.py" not in files and "untracked path(s)" in caplog.text
    for kwargs in ({}, {"ref": "main"}, {"include_uncommitted": True}):
        with pytest.raises(PackagingError, match=r"untracked files in src/ .*check_untracked_files=True.*"
                                                 r"src/new_module.py.*\.gitignore"):
            run.GitArchivePackager(subpath="src", check_untracked_files=True, **kwargs).package(
                project, str(tmp_path / "b"))
    with pytest.raises(PackagerSettingError, match=r"check_untracked_files: .*include_untracked=True .*choose one"):
        run.GitArchivePackager(include_uncommitted=True, include_untracked=True, check_untracked_files=True)
    commit(project)
    assert "new_module.py" in members(run.GitArchivePackager(subpath="src", check_untracked_files=True)
                                      .package(project, str(tmp_path / "c")).path)


# -- PatternPackager, HybridPackager: NeMo Run's documented examples -----------------------------------------------
def test_pattern_packager_as_nemo_run_documents_it(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    packager = run.PatternPackager(include_pattern="src/**", relative_path=os.getcwd())
    assert packager == run.PatternPackager(include=["src/**"], relative_path=project)
    assert run.PatternPackager(relative_path="") == run.PatternPackager(), "NeMo Run's default relative_path"
    files = members(packager.package(project, str(tmp_path / "out")).path)
    assert {"src/train.py", "src/model/net.py", "src/data.yaml"} <= set(files) and "README.md" not in files
    absolute = run.PatternPackager(include_pattern=os.path.join(project, "configs/*.yaml"), relative_path=project)
    assert set(members(absolute.package(project, str(tmp_path / "abs")).path)) == {"configs/base.yaml"}


def test_pattern_relative_path_list_one_per_pattern(project, tmp_path):
    packager = run.PatternPackager(include_pattern=["*.yaml", "model/*.py"],
                                   relative_path=[os.path.join(project, "configs"), os.path.join(project, "src")])
    assert set(members(packager.package(project, str(tmp_path / "out")).path)) == {
        "base.yaml", "exp/big.yaml", "model/__init__.py", "model/net.py"}
    assert decode(encode(packager), build=True) == packager
    with pytest.raises(PackagerSettingError, match=r"PatternPackager.relative_path: has 2 directories for 1"):
        run.PatternPackager(include_pattern="*.py", relative_path=["a", "b"])


def test_hybrid_packager_as_nemo_run_documents_it(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    hybrid_packager = run.HybridPackager(
        sub_packagers={
            "code": run.GitArchivePackager(subpath="src"),
            "configs": run.PatternPackager(include_pattern="configs/*.yaml", relative_path=os.getcwd())
        }
    )
    files = members(hybrid_packager.package(project, str(tmp_path / "out")).path)
    assert {"code/train.py", "code/model/net.py", "configs/configs/base.yaml"} <= set(files)
    assert not [f for f in files if not f.startswith(("code/", "configs/"))]
    assert "\nsub_packagers:" not in to_yaml(hybrid_packager) and "\npackagers:" in to_yaml(hybrid_packager)
    assert decode(encode(hybrid_packager), build=True) == hybrid_packager


def test_extract_at_root_puts_every_packager_at_the_root(project, tmp_path):
    packagers = {"code": run.GitArchivePackager(subpath="src"), "cfg": run.PatternPackager(include="configs/*.yaml")}
    at_root = run.HybridPackager(sub_packagers=packagers, extract_at_root=True)
    assert at_root == run.HybridPackager(list(packagers.values()))
    assert {"train.py", "configs/base.yaml"} <= set(members(at_root.package(project, str(tmp_path / "o")).path))
    assert run.HybridPackager(sub_packagers=packagers, extract_at_root=False) == run.HybridPackager(packagers)
    with pytest.raises(PackagerSettingError, match=r"HybridPackager.extract_at_root: must be True or False"):
        run.HybridPackager(sub_packagers=packagers, extract_at_root="yes")


def test_nemo_run_names_through_config_and_yaml(project):
    config = run.Config(run.HybridPackager, sub_packagers={"code": run.Config(run.GitArchivePackager, basepath=project,
                                                                              include_pattern="configs/*.yaml")})
    built = run.build(from_yaml(to_yaml(config)))
    assert built == run.HybridPackager({"code": run.GitArchivePackager(repo=project,
                                                                       include_pattern=["configs/*.yaml"])})
    params = inspect.signature(run.GitArchivePackager).parameters
    assert {"basepath", "repo", "include_pattern", "check_untracked_files"} <= set(params)
    with pytest.raises(ConfigError, match=r"did you mean 'basepath'"):
        run.Config(run.GitArchivePackager, basepth=project)


# -- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs, match", [
    (run.GitArchivePackager, {"subpth": "src"}, r"unexpected argument 'subpth'; did you mean 'subpath'\?"),
    (run.GitArchivePackager, {"include_patern": "x"}, r"did you mean 'include_pattern'\?"),
    (run.PatternPackager, {"relative_pth": "x"}, r"did you mean 'relative_path'\?"),
    (run.HybridPackager, {"sub_packager": {}}, r"did you mean 'sub_packagers'\?"),
    (run.Packager, {"subpath": "src"}, r"Packager got an unexpected argument 'subpath'; it takes none"),
])
def test_unknown_argument_is_a_did_you_mean(cls, kwargs, match):
    with pytest.raises(UnknownArgumentError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: run.GitArchivePackager(subpath=3), r"GitArchivePackager.subpath: must be a directory"),
    (lambda: run.GitArchivePackager(ref=["main"]), r"GitArchivePackager.ref: must be a branch, tag or commit"),
    (lambda: run.GitArchivePackager(check_untracked_files="no"), r"check_untracked_files: must be True or False"),
    (lambda: run.GitArchivePackager(include_pattern=[1]), r"include_pattern: item 0 must be a string"),
    (lambda: run.PatternPackager(include_pattern=3), r"PatternPackager.include: expected a pattern"),
    (lambda: run.PatternPackager(relative_path=3), r"PatternPackager.relative_path: must be a directory"),
    (lambda: run.PatternPackager(allow_empty="yes"), r"PatternPackager.allow_empty: must be True or False"),
    (lambda: run.HybridPackager(sub_packagers={"a": "git"}), r"HybridPackager.packagers: 'git' for folder 'a' is not"),
    (lambda: run.HybridPackager(), r"HybridPackager.packagers: is required"),
])
def test_wrong_type_names_the_field_when_the_packager_is_made(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


# -- the pass-through run.Packager() -----------------------------------------------------------------------------
def test_base_packager_is_the_pass_through_packager(tmp_path):
    packager = run.Packager()
    assert packager.package(str(tmp_path), str(tmp_path / "out")) is None
    assert not packages_code(packager) and not packages_code(None)
    assert packages_code(run.GitArchivePackager()) and packages_code(run.PatternPackager())
    assert not os.path.exists(tmp_path / "out"), "nothing is written"
    assert decode(encode(packager), build=True) == packager
    assert from_yaml(to_yaml(packager), trusted=False) is not None


def test_pass_through_in_a_hybrid_adds_nothing(project, tmp_path):
    hybrid = run.HybridPackager({"code": run.GitArchivePackager(subpath="src"), "none": run.Packager()})
    files = members(hybrid.package(project, str(tmp_path / "out")).path)
    assert files and all(f.startswith("code/") for f in files)
    with pytest.raises(PackagingError, match=r"its packagers produced no files"):
        run.HybridPackager([run.Packager()]).package(project, str(tmp_path / "none"))


def test_subclasses_keep_working(tmp_path):
    class Custom(run.Packager):
        def package(self, base_dir, output_dir):
            return run.PatternPackager(include=["*.txt"]).package(base_dir, output_dir)

    write_files(str(tmp_path / "p"), {"a.txt": "a"})
    assert packages_code(Custom())
    assert set(members(Custom().package(str(tmp_path / "p"), str(tmp_path / "out")).path)) == {"a.txt"}


def test_importable_from_the_packaging_package():
    from nemorun_core.packaging import GitArchivePackager, HybridPackager, Packager, PatternPackager

    assert (GitArchivePackager, HybridPackager, Packager, PatternPackager) == (
        run.GitArchivePackager, run.HybridPackager, run.Packager, run.PatternPackager)
