"""GitArchivePackager: package a commit of a git repository (``git archive``), or its work tree on request.

    packager = run.GitArchivePackager(subpath="src", exclude_patterns=["*.pyc", "__pycache__"])
    packager = run.GitArchivePackager(basepath=repo_dir, subpath="src", include_pattern="build/*.so")  # NeMo Run

The common case (a commit, no submodules) streams ``git archive`` through the canonical writer: git selects and
reads the files (exclude patterns become git pathspecs), Python only rewrites headers and compresses. Submodules
and uncommitted files take a slower path that lists the files and sorts them in Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import subprocess
import tempfile
import types
from typing import IO, Any, ClassVar, Iterator, Mapping

from nemorun_core.packaging import _git
from nemorun_core.packaging._archive import ArchiveWriter, read_tar_stream
from nemorun_core.packaging._globs import GlobSet
from nemorun_core.packaging._args import as_patterns, check_bool, check_text
from nemorun_core.packaging.base import Package, Packager, PackagerSettingError, PackagingError
from nemorun_core.packaging.hybrid import merge_packages
from nemorun_core.packaging.pattern import PatternPackager, _relative_paths, output_excludes

logger = logging.getLogger(__name__)
_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")  # user@host:path, git's scp-like URL


@dataclasses.dataclass(kw_only=True)
class GitArchivePackager(Packager):
    """Package the files of a git commit (by default HEAD of the repository containing ``base_dir``).

    Uncommitted changes are never dropped silently: with the default ``ref=None``, tracked files changed under
    ``subpath`` make :meth:`package` fail, naming them. Commit them, pass ``include_uncommitted=True`` to package
    the work tree as it is, or name a commit with ``ref=`` to package exactly that commit.

    NeMo Run's spelling works too: ``basepath=`` is ``repo``; ``include_pattern``, ``include_pattern_relative_path``,
    ``check_uncommitted_changes`` and ``check_untracked_files`` are fields of their own (below). Unlike NeMo Run,
    the default refuses uncommitted changes (NeMo Run packages HEAD without them); ``check_uncommitted_changes=
    False`` is NeMo Run's default.

    Attributes:
        subpath: directory of the repository to package, relative to its root; its content becomes the archive's
            root. Empty: the whole repository.
        ref: branch, tag or commit to package. None: HEAD, after checking the work tree has no uncommitted changes.
        exclude_patterns: globs of files to leave out, relative to ``subpath`` (``"*.pyc"`` and ``"__pycache__"``
            match at any depth, ``"tests/"`` matches directories; see ``packaging/_globs.py``).
        include_submodules: package submodules' files too (their recorded commits, or their work trees with
            ``include_uncommitted``); they must be checked out.
        include_uncommitted: package the work tree's content of tracked files (deleted files left out) instead of
            a commit; cannot be combined with ``ref``.
        include_untracked: with ``include_uncommitted``, also package untracked files that git does not ignore.
        repo: the repository: a local path (any directory inside it), or a URL to clone (into a temporary
            directory). None: the repository containing ``base_dir``. NeMo Run calls it ``basepath``.
        include_pattern: globs of files outside git (generated files, checkpoints) added to the archive, like
            ``PatternPackager(include=...)``: each file at its path relative to its
            ``include_pattern_relative_path``. A path also in the commit must have the same content there.
        include_pattern_relative_path: the directory the ``include_pattern`` globs are relative to: one for all,
            or one per pattern, in order. Empty: the repository's root (a local ``repo`` or ``base_dir``'s).
        check_uncommitted_changes: True: refuse uncommitted changes under ``subpath`` even with a ``ref``;
            False: never check (package the commit without them, as NeMo Run does by default); None: check only
            when ``ref`` is None.
        check_untracked_files: refuse untracked files under ``subpath`` (that git does not ignore), naming them,
            instead of warning that they are left out.
    """

    subpath: str = ""
    ref: str | None = None
    exclude_patterns: str | list[str] = dataclasses.field(default_factory=list)
    include_submodules: bool = True
    include_uncommitted: bool = False
    include_untracked: bool = False
    repo: str | None = None
    include_pattern: str | list[str] = dataclasses.field(default_factory=list)
    include_pattern_relative_path: str | list[str] = dataclasses.field(default_factory=list)
    check_uncommitted_changes: bool | None = None
    check_untracked_files: bool = False

    nemo_run_names: ClassVar[Mapping[str, str]] = types.MappingProxyType({"basepath": "repo"})

    @classmethod
    def nemo_run_value(cls, name: str, value: Any) -> tuple[str | None, Any]:
        """``basepath`` is ``repo``; NeMo Run's empty ``basepath`` is the default (None)."""
        field, value = super().nemo_run_value(name, value)
        return field, (None if value == "" else value)

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_text(self.subpath, f"{name}.subpath", what="a directory relative to the repository root")
        check_text(self.ref, f"{name}.ref", optional=True, what="a branch, tag or commit")
        if isinstance(self.repo, os.PathLike):
            self.repo = os.fspath(self.repo)
        check_text(self.repo, f"{name}.repo", optional=True, what="a local path or a git URL")
        self.exclude_patterns = as_patterns(self.exclude_patterns, f"{name}.exclude_patterns")
        self.include_pattern = as_patterns(self.include_pattern, f"{name}.include_pattern", empty_string_is_none=True)
        dirs = self.include_pattern_relative_path
        dirs = [] if dirs in ("", None) else [dirs] if isinstance(dirs, (str, os.PathLike)) else dirs
        dirs = _relative_paths(dirs, len(self.include_pattern), f"{name}.include_pattern_relative_path",
                               "include_pattern") if dirs else []
        self.include_pattern_relative_path = [dirs] if isinstance(dirs, str) else dirs
        for flag in ("include_submodules", "include_uncommitted", "include_untracked", "check_untracked_files"):
            check_bool(getattr(self, flag), f"{name}.{flag}")
        if self.check_uncommitted_changes is not None:
            check_bool(self.check_uncommitted_changes, f"{name}.check_uncommitted_changes")
        if self.include_pattern_relative_path and not self.include_pattern:
            raise PackagerSettingError("is set but include_pattern is empty: give the patterns to add, or drop it",
                                       path=f"{name}.include_pattern_relative_path")
        if self.include_uncommitted and self.ref is not None:
            raise PackagerSettingError(
                f"include_uncommitted=True packages the work tree, ref={self.ref!r} a commit: choose one",
                path=f"{name}.include_uncommitted")
        if self.include_untracked and not self.include_uncommitted:
            raise PackagerSettingError("include_untracked=True needs include_uncommitted=True (untracked files live "
                                       "in the work tree, not in a commit)", path=f"{name}.include_untracked")
        if self.include_uncommitted and self.check_uncommitted_changes:
            raise PackagerSettingError("check_uncommitted_changes=True refuses uncommitted changes, "
                                       "include_uncommitted=True packages them: choose one",
                                       path=f"{name}.check_uncommitted_changes")
        if self.include_untracked and self.check_untracked_files:
            raise PackagerSettingError("check_untracked_files=True refuses untracked files, include_untracked=True "
                                       "packages them: choose one", path=f"{name}.check_untracked_files")

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Build the archive into ``output_dir`` (see :meth:`Packager.package`).

        Blocking: runs git (and a clone for a URL ``repo``). Idempotent: unchanged input gives the same file.

        Raises:
            PackagingError: not a git repository, unknown ref, missing subpath, uncommitted changes (or untracked
                files, with ``check_untracked_files``), a malformed pattern, an ``include_pattern`` matching no
                file, a symlink pointing outside the package, or an unwritable ``output_dir``.
        """
        if self.include_pattern:
            return self._package_with_patterns(base_dir, output_dir)
        excludes = GlobSet.compile(self.exclude_patterns, field="exclude_patterns")
        subpath = _clean_subpath(self.subpath)
        with _open_repo(self.repo, base_dir) as (root, has_work_tree, cloned):
            ref = self.ref or "HEAD"
            commit = _git.resolve_commit(root, _git.fetch_if_missing(root, ref) if cloned else ref)
            if self.include_uncommitted:
                if not has_work_tree:
                    raise PackagingError(f"{root} is a bare repository: it has no uncommitted files to include")
                if self.check_untracked_files:
                    self._check_work_tree(root, subpath)
                return self._package_work_tree(root, subpath, excludes, output_dir)
            _git.check_subpath(root, commit, subpath, ref)
            if has_work_tree and not cloned:
                self._check_work_tree(root, subpath)
            links = _git.gitlinks(root, commit, subpath) if self.include_submodules else []
            if links:
                if cloned:
                    _git.checkout_submodules(root, commit)
                return _package_with_submodules(root, commit, subpath, excludes, output_dir)
            return _package_stream(root, commit, subpath, excludes, output_dir)

    def _package_with_patterns(self, base_dir: str, output_dir: str) -> Package:
        """The commit's archive merged with the ``include_pattern`` files (as HybridPackager merges)."""
        dirs = self.include_pattern_relative_path
        root: str | None = None
        commit_only = dataclasses.replace(self, include_pattern=[], include_pattern_relative_path=[])
        items = [("", "the commit", commit_only)]
        for i, pattern in enumerate(self.include_pattern):
            directory = dirs[i] if len(dirs) > 1 else dirs[0] if dirs else ""
            if not directory:  # the repository's root, as in NeMo Run
                if root is None:
                    if self.repo is not None and not os.path.exists(self.repo):
                        raise PackagingError(
                            f"include_pattern {pattern!r} with the repo URL {self.repo!r}: the patterns need a local "
                            "directory; give include_pattern_relative_path")
                    root = _git.repo_root(self.repo if self.repo is not None else base_dir)[0]
                directory = root
            items.append(("", f"include_pattern {pattern!r}",
                          PatternPackager(include=[pattern], relative_path=directory)))
        return merge_packages(items, base_dir, output_dir, owner="GitArchivePackager",
                              fix="commit the file, or exclude it from include_pattern")

    def _check_work_tree(self, root: str, subpath: str) -> None:
        """Refuse (or warn about) what the work tree has beyond the commit, as the check_* settings say."""
        explicit = self.check_uncommitted_changes
        check_changes = (self.ref is None if explicit is None else explicit) and not self.include_uncommitted
        if not (check_changes or self.check_untracked_files):
            return
        changed, untracked = _git.work_tree_changes(root, subpath, self.include_submodules)
        where = f"{subpath}/ of {root}" if subpath else root
        if check_changes and changed:
            alternatives = ("pass include_uncommitted=True to package the work tree as it is, or ref='HEAD' (or "
                            "another commit) to package that commit explicitly" if explicit is None else
                            "pass check_uncommitted_changes=False to package the commit without them")
            raise PackagingError(
                f"uncommitted changes in {where}: {_shown(changed)}. GitArchivePackager packages commits, so the "
                f"job would run without them. Commit them, or {alternatives}"
            )
        if untracked and self.check_untracked_files:
            raise PackagingError(
                f"untracked files in {where} (check_untracked_files=True): {_shown(untracked)}. git add and commit "
                "them, list them in .gitignore, or pass include_uncommitted=True, include_untracked=True to package "
                "them"
            )
        if untracked and explicit is None and not self.include_uncommitted:
            logger.warning(
                "%d untracked path(s) in %s are not packaged (%s); git add and commit them, or pass "
                "include_uncommitted=True, include_untracked=True", len(untracked), where, ", ".join(untracked[:5]),
            )

    def _package_work_tree(self, root: str, subpath: str, excludes: GlobSet, output_dir: str) -> Package:
        if not os.path.isdir(os.path.join(root, subpath)):
            raise PackagingError(f"subpath {subpath!r} is not a directory of the work tree {root}")
        files: list[tuple[str, str]] = []
        # Untracked files may include earlier packages, when output_dir is in the work tree and not ignored.
        excludes = GlobSet(excludes.globs + GlobSet.compile(
            output_excludes(os.path.join(root, subpath), output_dir), field="output_dir").globs)

        def collect(repo_dir: str, inner: str, prefix: str) -> None:
            for path, is_submodule in _git.ls_files(repo_dir, inner or ".", untracked=self.include_untracked):
                rel = prefix + (path[len(inner) + 1:] if inner else path)
                full = os.path.join(repo_dir, path)
                if excludes.covers(rel):
                    continue
                if is_submodule:
                    if self.include_submodules:
                        if not os.path.exists(os.path.join(full, ".git")):
                            raise PackagingError(f"submodule {path!r} of {repo_dir} is not checked out; run "
                                                 "`git submodule update --init`, or pass include_submodules=False")
                        collect(full, "", rel + "/")
                elif os.path.lexists(full):  # a missing tracked file is an uncommitted deletion: leave it out
                    files.append((rel, full))

        collect(root, subpath, "")
        files.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
        with ArchiveWriter(output_dir) as writer:
            for rel, full in files:
                writer.add_path(rel, full)
            return _finish(writer, root, subpath)


@contextlib.contextmanager
def _open_repo(repo: str | None, base_dir: str) -> Iterator[tuple[str, bool, bool]]:
    """Yield (root, has_work_tree, cloned) for ``repo`` (a path or URL) or the repository of ``base_dir``."""
    if repo is None:
        yield (*_git.repo_root(base_dir), False)
    elif os.path.exists(repo):
        yield (*_git.repo_root(repo), False)
    elif "://" in repo or _SCP_URL.match(repo):
        with tempfile.TemporaryDirectory(prefix="nemorun-clone-") as tmp:
            yield _git.clone(repo, os.path.join(tmp, "repo")), False, True
    else:
        raise PackagingError(f"repo {repo!r} is neither an existing directory nor a git URL")


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:10]) + (f" (and {len(paths) - 10} more)" if len(paths) > 10 else "")


def _clean_subpath(subpath: str) -> str:
    parts = [p for p in (subpath or "").replace(os.sep, "/").split("/") if p not in ("", ".")]
    if os.path.isabs(subpath or "") or ".." in parts:
        raise PackagingError(f"subpath {subpath!r} must be relative to the repository root and stay inside it")
    return "/".join(parts)


def _finish(writer: ArchiveWriter, root: str, subpath: str) -> Package:
    if writer.files == 0 and not writer.symlinks:
        raise PackagingError(f"nothing to package in {subpath or '.'} of {root}: no files are left after "
                             "exclude_patterns")
    return writer.finish()


def _package_stream(root: str, commit: str, subpath: str, excludes: GlobSet, output_dir: str) -> Package:
    """The fast path: ``git archive`` of one tree, headers rewritten on the fly."""
    cmd = ["git", "archive", "--format=tar", f"{commit}:{subpath}", "--", ".", *excludes.exclude_pathspecs()]
    with ArchiveWriter(output_dir) as writer:
        with subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, bufsize=1 << 20) as proc:
            try:
                _copy_members(proc.stdout, writer)
            finally:
                proc.stdout.close()
                err = proc.stderr.read().decode(errors="replace").strip()
                rc = proc.wait()
        if rc != 0 and "did not match any files" not in err:  # that one means "everything was excluded"
            raise PackagingError(f"`git archive {commit[:12]}:{subpath}` failed in {root}: {err}")
        return _finish(writer, root, subpath)


def _copy_members(stream: IO[bytes], writer: ArchiveWriter) -> None:
    """Copy git's members to ``writer``: git's order (by path, a directory as ``name/``) is the canonical one."""
    for member, chunks in read_tar_stream(stream):
        if member.kind == "file":
            writer.add_chunks(member.name, member.size, bool(member.mode & 0o100), chunks)
        elif member.kind == "symlink":
            writer.add_symlink(member.name, member.link)
        elif member.kind != "dir":
            raise PackagingError(f"unexpected {member.kind} {member.name!r} in git's archive")


def _collect_members(stream: IO[bytes], prefix: str, excludes: GlobSet, into: dict) -> None:
    """Read git's members into ``into`` (name -> (kind, executable, bytes or link target)), under ``prefix``."""
    for member, chunks in read_tar_stream(stream):
        name = prefix + member.name
        if member.kind == "dir" or excludes.covers(name):
            continue
        if member.kind not in ("file", "symlink"):
            raise PackagingError(f"unexpected {member.kind} {name!r} in git's archive")
        data = b"".join(chunks) if member.kind == "file" else member.link
        into[name] = (member.kind, bool(member.mode & 0o100), data)


def _package_with_submodules(root: str, commit: str, subpath: str, excludes: GlobSet, output_dir: str) -> Package:
    """Submodules' files interleave with the superproject's in sorted order, so collect them all, then sort.

    Kept in memory: this is source code; a repository whose submodules hold gigabytes should exclude them.
    """
    members: dict[str, tuple[str, bool, bytes | str]] = {}

    def collect(repo_dir: str, sha: str, inner: str, prefix: str) -> None:
        cmd = ["git", "archive", "--format=tar", f"{sha}:{inner}"]
        proc = subprocess.run(cmd, cwd=repo_dir, capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise PackagingError(f"`git archive` failed in {repo_dir}: {proc.stderr.decode(errors='replace')}")
        _collect_members(io.BytesIO(proc.stdout), prefix, excludes, members)
        for path, sub_sha in _git.gitlinks(repo_dir, sha, inner):
            if excludes.covers(prefix + path):
                continue
            sub_dir = _git.submodule_repo(repo_dir, f"{inner}/{path}" if inner else path, sub_sha)
            collect(sub_dir, sub_sha, "", f"{prefix}{path}/")

    collect(root, commit, subpath, "")
    with ArchiveWriter(output_dir) as writer:
        for name in sorted(members, key=lambda n: n.encode("utf-8", "surrogateescape")):
            kind, executable, data = members[name]
            if kind == "file":
                writer.add_chunks(name, len(data), executable, [data])
            else:
                writer.add_symlink(name, data)
        return _finish(writer, root, subpath)


@dataclasses.dataclass(kw_only=True)
class GitPackage(Packager):
    """The spec's spelling of :class:`GitArchivePackager`: ``run.GitPackage(repo_url=..., commit_hash=...)``.

    Attributes:
        repo_url: the repository: a local path, or a URL to clone. None: the repository containing ``base_dir``.
        commit_hash: the commit (or branch, tag) to package; None: HEAD, checked for uncommitted changes.
        subdirectory: GitArchivePackager's ``subpath``.
        exclude_patterns: as GitArchivePackager's.
        include_submodules: as GitArchivePackager's.
    """

    repo_url: str | None = None
    commit_hash: str | None = None
    subdirectory: str = ""
    exclude_patterns: list[str] = dataclasses.field(default_factory=list)
    include_submodules: bool = True

    def to_packager(self) -> GitArchivePackager:
        """The equivalent GitArchivePackager."""
        return GitArchivePackager(
            repo=self.repo_url, ref=self.commit_hash, subpath=self.subdirectory,
            exclude_patterns=self.exclude_patterns, include_submodules=self.include_submodules,
        )

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Same as :meth:`GitArchivePackager.package`."""
        return self.to_packager().package(base_dir, output_dir)
