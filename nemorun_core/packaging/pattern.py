"""PatternPackager: package the files under a directory that match include globs and no exclude glob.

    packager = run.PatternPackager(include=["*.py", "configs/**/*"], exclude=["__pycache__", "tests/"])

Pattern rules (shared with GitArchivePackager's ``exclude_patterns``) are in ``nemorun_core/packaging/_globs.py``:
``*.py`` matches at any depth, ``configs/*.yaml`` is anchored at ``relative_path``, ``tests/`` matches directories,
and a matched directory brings its whole content.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from typing import Any, ClassVar, Mapping

from nemorun_core.packaging._archive import ArchiveWriter
from nemorun_core.packaging._globs import Glob, GlobSet
from nemorun_core.packaging._args import as_patterns, check_bool
from nemorun_core.packaging.base import Package, Packager, PackagerSettingError, PackagingError


@dataclasses.dataclass(kw_only=True)
class PatternPackager(Packager):
    """Package the files matching ``include`` and not ``exclude``, relative to ``relative_path``.

    Deterministic: the archive depends only on the selected files' paths, bytes and executable bits.
    Symlinks are kept as links when they point inside ``relative_path``; one pointing outside is an error naming
    it (copying whatever it points to, possibly a whole dataset, would be a surprise; a dangling link on the
    cluster too).

    NeMo Run's spelling works too: ``include_pattern=`` is ``include``, and ``relative_path`` may be a list with
    one directory per include pattern (each pattern's files are then relative to its own directory).

    Attributes:
        include: globs of what to package (a string or a list); ``"**"`` is everything. An absolute pattern must
            lie under ``relative_path`` and is made relative to it.
        exclude: globs of what to leave out, even when included (``"__pycache__"``, ``"*.pyc"``, ``"tests/"``).
        relative_path: the directory the patterns are relative to, which becomes the archive's root; default the
            ``base_dir`` given to :meth:`package`; a relative path is taken from ``base_dir``. A list gives one
            directory per ``include`` pattern, in order.
        allow_empty: accept an include pattern that matches no file (by default that is an error, since it is
            most often a typo), and an empty package.
    """

    include: str | list[str] = dataclasses.field(default_factory=lambda: ["**"])
    exclude: str | list[str] = dataclasses.field(default_factory=list)
    relative_path: str | list[str] | None = None
    allow_empty: bool = False

    nemo_run_names: ClassVar[Mapping[str, str]] = types.MappingProxyType({"include_pattern": "include"})

    def __post_init__(self) -> None:
        self.include = as_patterns(self.include, "PatternPackager.include")
        self.exclude = as_patterns(self.exclude, "PatternPackager.exclude")
        self.relative_path = _relative_paths(self.relative_path, len(self.include), "PatternPackager.relative_path",
                                             "include")
        check_bool(self.allow_empty, "PatternPackager.allow_empty")

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Build the archive into ``output_dir`` (see :meth:`Packager.package`).

        Blocking (walks and reads the files). Idempotent: unchanged files give the same archive file.

        Raises:
            PackagingError: missing ``relative_path``, a malformed pattern, an include pattern matching nothing,
                nothing to package, a symlink pointing outside, or an unwritable ``output_dir``.
        """
        if isinstance(self.relative_path, list):  # one directory per pattern: merge one package per directory
            from nemorun_core.packaging.hybrid import merge_packages  # here: hybrid imports this module

            by_dir: dict[str, list[str]] = {}
            for pattern, directory in zip(self.include, self.relative_path):
                by_dir.setdefault(directory, []).append(pattern)
            items = [("", f"include {patterns!r} (relative_path {directory!r})",
                      dataclasses.replace(self, include=patterns, relative_path=directory))
                     for directory, patterns in by_dir.items()]
            return merge_packages(items, base_dir, output_dir, owner="PatternPackager",
                                  fix="exclude it from one of the patterns, or give them one relative_path")
        root = os.path.abspath(os.path.join(base_dir, os.fspath(self.relative_path or ".")))
        if not os.path.isdir(root):
            what = "relative_path" if self.relative_path else "base_dir"
            raise PackagingError(f"PatternPackager: {what} {root!r} is not a directory")
        include = GlobSet.compile([_relative_to(p, root) for p in self.include], field="include")
        exclude = GlobSet.compile([_relative_to(p, root) for p in self.exclude], field="exclude")
        exclude.globs += GlobSet.compile(output_excludes(root, output_dir), field="output_dir").globs
        files, hit = walk_files(root, include, exclude)
        if not self.allow_empty:
            missed = [g.pattern for g in include.globs if g not in hit]
            if missed:
                raise PackagingError(
                    f"PatternPackager: include pattern(s) {', '.join(map(repr, missed))} matched no file under {root} "
                    "(after exclude); check for a typo, or pass allow_empty=True"
                )
        with ArchiveWriter(output_dir) as writer:
            for rel in files:
                writer.add_path(rel, os.path.join(root, rel))
            return writer.finish()


def _relative_paths(value: Any, patterns: int, path: str, of: str) -> str | list[str] | None:
    """A directory (str), one directory per pattern (a list as long as ``of``), or None; a path-like as a str."""
    if value is None or value == "":  # NeMo Run's default relative_path is ""
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, (list, tuple)):
        raise PackagerSettingError(f"must be a directory, or a list of one directory per {of} pattern, got "
                                   f"{value!r}", path=path)
    dirs = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    bad = [v for v in dirs if not isinstance(v, str)]
    if bad:
        raise PackagerSettingError(f"items must be directories (strings), got {bad[0]!r}", path=path)
    if len(dirs) == 1:
        return dirs[0]
    if len(dirs) != patterns:
        raise PackagerSettingError(f"has {len(dirs)} directories for {patterns} {of} pattern(s): give one directory "
                                   f"per pattern, in order, or a single directory for all", path=path)
    return dirs


def _relative_to(pattern: str, root: str) -> str:
    """Make an absolute pattern relative to ``root`` (anchored); leave others as they are."""
    if not isinstance(pattern, str) or not os.path.isabs(pattern):
        return pattern
    rel = os.path.relpath(pattern, root)
    if rel == ".." or rel.startswith("../"):
        raise PackagingError(f"pattern {pattern!r} is outside relative_path {root!r}; patterns are relative to it")
    return "/" + rel + ("/" if pattern.endswith("/") else "")


def output_excludes(root: str, output_dir: str) -> list[str]:
    """Patterns excluding ``output_dir`` when it lies under ``root``.

    Otherwise the archives of earlier runs would be packaged into the next one, and no two digests would match.
    """
    rel = os.path.relpath(os.path.abspath(output_dir), root)
    if rel == ".." or rel.startswith("../"):
        return []
    if rel == ".":
        return ["/.package-*.tmp", "/" + "[0-9a-f]" * 64 + ".tar.gz"]
    return ["/" + re.sub(r"([*?\[\\])", r"\\\1", rel.replace(os.sep, "/")) + "/"]


def walk_files(root: str, include: GlobSet | None, exclude: GlobSet) -> tuple[list[str], set[Glob]]:
    """List the files and symlinks under ``root`` selected by ``include`` (None: all) and not ``exclude``.

    Directories matched by ``exclude`` are not entered (so excluding ``.git/`` also saves walking it).
    Symlinks are listed, never followed.

    Returns:
        The selected paths, relative and ``/``-separated, in canonical archive order; and the include globs that
        selected at least one of them.
    """
    selected: list[str] = []
    hit: set[Glob] = set()
    # Each stack item: a directory, relative path, and the include globs that matched it or one of its parents.
    stack: list[tuple[str, str, tuple[Glob, ...]]] = [(root, "", ())]
    while stack:
        path, rel_dir, inherited = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as e:
            raise PackagingError(f"cannot list {path!r}: {e.strerror or e}") from None
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # for a link: whether it points to a directory, so "tests/" excludes it
            if exclude and exclude.matching(rel, is_dir):
                continue
            matched = inherited if include is None else inherited + tuple(include.matching(rel, is_dir))
            if is_dir and not is_link:
                stack.append((entry.path, rel + "/", matched))
            elif include is None or matched:
                selected.append(rel)
                hit.update(matched)
    selected.sort(key=lambda p: p.encode("utf-8", "surrogateescape"))
    return selected, hit


@dataclasses.dataclass(kw_only=True)
class PatternPackage(Packager):
    """The spec's spelling of :class:`PatternPackager`: ``run.PatternPackage(patterns=[...], exclude_patterns=[...])``.

    Attributes:
        patterns: the include globs (PatternPackager's ``include``).
        exclude_patterns: the exclude globs (PatternPackager's ``exclude``).
        relative_path: as PatternPackager's.
        allow_empty: as PatternPackager's.
    """

    patterns: list[str] = dataclasses.field(default_factory=lambda: ["**"])
    exclude_patterns: list[str] = dataclasses.field(default_factory=list)
    relative_path: str | None = None
    allow_empty: bool = False

    def to_packager(self) -> PatternPackager:
        """The equivalent PatternPackager."""
        return PatternPackager(
            include=self.patterns, exclude=self.exclude_patterns, relative_path=self.relative_path,
            allow_empty=self.allow_empty,
        )

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Same as :meth:`PatternPackager.package`."""
        return self.to_packager().package(base_dir, output_dir)
