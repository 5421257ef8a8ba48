"""Glob patterns for packagers: gitignore-like rules, compiled once, with their git pathspec spelling.

One set of rules for every packager, so a pattern means the same thing whether git filters the files (the fast
path of GitArchivePackager) or Python does (PatternPackager, uncommitted files, submodules):

- a pattern without an inner ``/`` (``*.pyc``, ``__pycache__``) matches a file or directory name at any depth;
- a pattern with an inner ``/`` (``configs/*.yaml``, ``src/**``) is anchored at the packaged root, as is one that
  starts with ``/``;
- a trailing ``/`` (``tests/``) matches directories only;
- matching a directory matches everything under it;
- ``*`` and ``?`` never cross a ``/``; ``**`` as a whole segment matches any number of directories;
  ``[abc]``, ``[a-z]``, ``[!abc]`` are character classes; ``\\`` escapes the next character.
"""

from __future__ import annotations

import dataclasses
import re

from nemorun_core.packaging.base import PackagingError


@dataclasses.dataclass(frozen=True)
class Glob:
    """A compiled pattern.

    Attributes:
        pattern: the pattern as the user wrote it (for messages).
        body: the normalized pattern: no leading ``/`` or ``./``, no trailing ``/``.
        anchored: matches from the packaged root only (else at any depth).
        dir_only: matches directories only.
        regex: the compiled regular expression, matched against a whole relative path.
    """

    pattern: str
    body: str
    anchored: bool
    dir_only: bool
    regex: re.Pattern[str]

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` (relative, ``/``-separated) itself matches; parents are the caller's business."""
        if self.dir_only and not is_dir:
            return False
        return self.regex.fullmatch(path) is not None

    def exclude_pathspecs(self) -> list[str]:
        """The git pathspecs that exclude exactly what this pattern matches (``git archive ... -- <specs>``)."""
        base = self.body if self.anchored else f"**/{self.body}"
        # The "/**" spec excludes a matched directory's contents: git pathspecs have no "match a directory" rule.
        specs = [f":(exclude,glob){base}/**"]
        if not self.dir_only:
            specs.insert(0, f":(exclude,glob){base}")
        return specs


def compile_glob(pattern: str, *, field: str = "pattern") -> Glob:
    """Compile one pattern; raise PackagingError naming ``field`` and the pattern when it is malformed.

    Args:
        pattern: the pattern (see the module docstring for the rules).
        field: the packager field it came from, for the error message.

    Raises:
        PackagingError: empty pattern, a ``..`` segment, an unclosed ``[`` or a trailing ``\\``.
    """
    if not isinstance(pattern, str):
        raise PackagingError(f"{field}: patterns are strings, got {pattern!r}")
    body = pattern.strip()
    anchored = body.startswith("/")
    dir_only = body.endswith("/")
    segments = [s for s in body.split("/") if s not in ("", ".")]
    if not segments:
        raise PackagingError(f"{field}: empty pattern {pattern!r}; remove it, or write '**' to mean every file")
    if ".." in segments:
        raise PackagingError(
            f"{field}: pattern {pattern!r} has a '..' segment; patterns are relative to the packaged root and "
            "cannot leave it"
        )
    anchored = anchored or len(segments) > 1
    parts = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:.*/)?")
        else:
            parts.append(_translate_segment(segment, pattern, field) + ("" if last else "/"))
    regex = ("" if anchored else "(?:.*/)?") + "".join(parts)
    return Glob(pattern, "/".join(segments), anchored, dir_only, re.compile(regex, re.DOTALL))


def _translate_segment(segment: str, pattern: str, field: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 == len(segment):
                raise PackagingError(f"{field}: bad glob {pattern!r}: it ends with a lone '\\'")
            i += 1
            out.append(re.escape(segment[i]))
        elif c == "[":
            cls, i = _translate_class(segment, i, pattern, field)
            out.append(cls)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _translate_class(segment: str, start: int, pattern: str, field: str) -> tuple[str, int]:
    """Translate the ``[...]`` starting at ``segment[start]``; return the regex class and the index after it."""
    i = start + 1
    negate = i < len(segment) and segment[i] in "!^"
    if negate:
        i += 1
    chars = []
    first = True
    while i < len(segment):
        c = segment[i]
        if c == "]" and not first:
            # A negated class must not match "/" either: a glob segment never spans directories.
            return ("[^/" if negate else "[") + "".join(chars) + "]", i + 1
        if c == "\\" and i + 1 < len(segment):
            i += 1
            chars.append(re.escape(segment[i]))
        elif c == "-":
            chars.append("-")
        else:
            chars.append(re.escape(c))
        first = False
        i += 1
    raise PackagingError(
        f"{field}: bad glob {pattern!r}: the '[' in {segment!r} is never closed; write '\\[' for a literal bracket"
    )


class GlobSet:
    """Several patterns matched together, with the "a matched directory matches its contents" rule."""

    def __init__(self, globs: list[Glob]):
        self.globs = list(globs)

    @classmethod
    def compile(cls, patterns: list[str], *, field: str) -> GlobSet:
        """Compile ``patterns`` (see :func:`compile_glob`)."""
        return cls([compile_glob(p, field=field) for p in patterns])

    def __bool__(self) -> bool:
        return bool(self.globs)

    def matching(self, path: str, is_dir: bool) -> list[Glob]:
        """The patterns that match ``path`` itself (not its parents)."""
        return [g for g in self.globs if g.matches(path, is_dir)]

    def covers(self, path: str) -> bool:
        """Whether the file ``path`` or any of its parent directories matches: the check for a flat file list."""
        if not self.globs:
            return False
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self.matching("/".join(parts[:depth]), True):
                return True
        return bool(self.matching(path, False))

    def exclude_pathspecs(self) -> list[str]:
        """Git pathspecs excluding everything these patterns match."""
        return [spec for g in self.globs for spec in g.exclude_pathspecs()]
