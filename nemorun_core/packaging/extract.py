"""Safe extraction of packages, and the link rules that packaging checks too.

An archive is only extracted when every member is safe; otherwise nothing is written. Unsafe: absolute paths,
``..`` segments, symlinks or hard links that resolve outside the destination (following the archive's own symlinks,
so a chain of individually harmless links cannot climb out), device files and fifos. Python's ``data`` extraction
filter then runs as a second line of defence against what is already on disk under ``dest``.
"""

from __future__ import annotations

import os
import posixpath
import tarfile

from nemorun_core.packaging.base import PackagingError

_MAX_LINK_DEPTH = 40  # the kernel's own limit on symlinks followed while resolving one path


class UnsafeArchiveError(PackagingError):
    """An archive member would land outside the destination, or is a device; ``member`` names it."""

    def __init__(self, member: str, reason: str, *, where: str = ""):
        self.member = member
        self.reason = reason
        super().__init__(f"unsafe member {member!r}{where}: {reason}; nothing was extracted")


def check_name(name: str, *, where: str = "") -> str:
    """Return ``name`` normalized (``./`` segments dropped); raise UnsafeArchiveError for absolute or ``..`` names."""
    if name.startswith("/"):
        raise UnsafeArchiveError(name, "absolute path", where=where)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(name, "'..' in its path", where=where)
    if not parts:
        raise UnsafeArchiveError(name, "empty path", where=where)
    return "/".join(parts)


def _resolve(parts: list[str], links: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve ``parts`` from the archive root through the archive's symlinks; None if it leaves the root."""
    if depth > _MAX_LINK_DEPTH:
        return None  # a loop: never resolves, so refuse it rather than guess
    out: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(part)
        target = links.get("/".join(out))
        if target is not None:
            if target.startswith("/"):
                return None
            resolved = _resolve(out[:-1] + target.split("/"), links, depth + 1)
            if resolved is None:
                return None
            out = resolved
    return out


def check_symlinks(links: dict[str, str], *, packaging: bool = False, where: str = "") -> None:
    """Check that every symlink ``name -> target`` of one archive resolves inside it.

    Args:
        links: member name -> link target, for every symlink of the archive.
        packaging: phrase the error for someone packaging their code (with the fixes) rather than extracting.
        where: where the archive is, for the message.

    Raises:
        UnsafeArchiveError: naming the first link that points outside.
    """
    for name, target in sorted(links.items()):
        if target.startswith("/") or _resolve(posixpath.dirname(name).split("/") + target.split("/"), links) is None:
            if packaging:
                where_to = "an absolute path" if target.startswith("/") else "outside the packaged files"
                raise PackagingError(
                    f"{name!r} is a symlink to {target!r}, {where_to}: the job would find a broken link. "
                    "Exclude it, replace it with a relative link or a copy of the file, or package the "
                    "directory it points to as well"
                )
            raise UnsafeArchiveError(name, f"symlink to {target!r} resolves outside the destination", where=where)


def safe_extract(archive: str, dest: str) -> list[str]:
    """Extract a ``.tar`` / ``.tar.gz`` into ``dest`` (created if missing), refusing unsafe archives.

    Every member is checked before anything is written, so a refused archive leaves ``dest`` untouched.

    Args:
        archive: path of the archive.
        dest: destination directory.

    Returns:
        The normalized names of the extracted members, in archive order.

    Raises:
        UnsafeArchiveError: a member is unsafe (the message names it and why).
        PackagingError: the file is not a readable tar archive.
    """
    where = f" in {archive}"
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            names = _check_members(members, where)
            os.makedirs(dest, exist_ok=True)
            try:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - Python < 3.11.4; our own checks above still ran
                    tf.extractall(dest, members=members)
            except tarfile.FilterError as e:
                member = e.tarinfo.name if getattr(e, "tarinfo", None) else "?"
                raise UnsafeArchiveError(member, str(e), where=where) from None
    except (tarfile.ReadError, EOFError, OSError) as e:
        raise PackagingError(f"cannot read package {archive!r}: {e}") from None
    return names


def _check_members(members: list[tarfile.TarInfo], where: str) -> list[str]:
    links: dict[str, str] = {}
    files: set[str] = set()
    names = []
    for m in members:
        name = check_name(m.name, where=where)
        if m.ischr() or m.isblk():
            raise UnsafeArchiveError(name, "device file", where=where)
        if m.isfifo():
            raise UnsafeArchiveError(name, "fifo", where=where)
        if m.issym():
            links[name] = m.linkname
        elif m.islnk():
            try:
                target = check_name(m.linkname)
            except UnsafeArchiveError:
                raise UnsafeArchiveError(
                    name, f"hard link to {m.linkname!r} outside the destination", where=where
                ) from None
            if target not in files:
                raise UnsafeArchiveError(
                    name, f"hard link to {m.linkname!r}, which is not a file earlier in the archive", where=where
                )
        elif m.isreg():
            files.add(name)
        elif not m.isdir():
            raise UnsafeArchiveError(name, f"unsupported member type {m.type!r}", where=where)
        m.name = name
        names.append(name)
    check_symlinks(links, where=where)
    if links:
        # A member written through one of the archive's own links must still land inside.
        for name in names:
            if _resolve(name.split("/")[:-1], links) is None:
                raise UnsafeArchiveError(name, "its parent resolves outside the destination through a symlink",
                                         where=where)
    return names
