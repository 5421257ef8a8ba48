"""HybridPackager: one archive from several packagers.

    run.HybridPackager([git_packager, pattern_packager])                  # all at the archive's root
    run.HybridPackager({"code": git_packager, "configs": pattern_packager})  # each under its own folder

Each packager builds its own archive, which is safely extracted (so a third-party packager's archive is checked
too) and merged into one canonical archive: the result depends only on the merged files, like any package.
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import tempfile

from nemorun_core.packaging._archive import ArchiveWriter
from nemorun_core.packaging._globs import GlobSet
from nemorun_core.packaging.base import Package, Packager, PackagingError
from nemorun_core.packaging.extract import safe_extract
from nemorun_core.packaging.pattern import walk_files


@dataclasses.dataclass
class HybridPackager(Packager):
    """Merge the files of several packagers into one archive.

    A path produced by two packagers must have the same content in both (it is then stored once); different
    content is an error naming the path, rather than one packager silently winning.

    Attributes:
        packagers: a list of packagers, whose files all go to the archive's root; or a mapping folder -> packager,
            which puts each packager's files under that folder (``""`` or ``"."``: the root).
    """

    packagers: list[Packager] | dict[str, Packager]

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Build the merged archive into ``output_dir`` (see :meth:`Packager.package`).

        Blocking (runs every packager, in order). Idempotent when they are.

        Raises:
            PackagingError: no packagers, a bad folder name, a packager's own error (prefixed with which one),
                or one path with two different contents.
        """
        items = self._items()
        with tempfile.TemporaryDirectory(prefix="nemorun-hybrid-") as tmp:
            merged: dict[str, tuple[str, str]] = {}  # archive path -> (file on disk, which packager)
            for i, (folder, packager) in enumerate(items):
                label = f"packager {folder!r} ({type(packager).__name__})" if folder else (
                    f"packager #{i} ({type(packager).__name__})"
                )
                try:
                    built = packager.package(base_dir, os.path.join(tmp, f"out{i}"))
                except PackagingError as e:
                    raise PackagingError(f"HybridPackager, {label}: {e}") from e
                tree = os.path.join(tmp, f"tree{i}")
                safe_extract(built.path, tree)
                files, _ = walk_files(tree, None, GlobSet([]))
                for rel in files:
                    name = f"{folder}/{rel}" if folder else rel
                    source = os.path.join(tree, rel)
                    if name in merged and not _same(merged[name][0], source):
                        raise PackagingError(
                            f"HybridPackager: {name!r} comes from {merged[name][1]} and from {label} with different "
                            "content; exclude it from one of them, or give each packager its own folder with a "
                            "mapping ({'code': ..., 'configs': ...})"
                        )
                    merged.setdefault(name, (source, label))
            if not merged:
                raise PackagingError("HybridPackager: its packagers produced no files")
            with ArchiveWriter(output_dir) as writer:
                for name in sorted(merged, key=lambda n: n.encode("utf-8", "surrogateescape")):
                    writer.add_path(name, merged[name][0])
                return writer.finish()

    def _items(self) -> list[tuple[str, Packager]]:
        if isinstance(self.packagers, dict):
            items = [(_clean_folder(k), v) for k, v in self.packagers.items()]
        elif isinstance(self.packagers, (list, tuple)):
            items = [("", p) for p in self.packagers]
        else:
            raise PackagingError(
                f"HybridPackager takes a list of packagers or a mapping folder -> packager, got {self.packagers!r}"
            )
        if not items:
            raise PackagingError("HybridPackager needs at least one packager")
        for folder, packager in items:
            if not isinstance(packager, Packager):
                where = f" for folder {folder!r}" if folder else ""
                raise PackagingError(f"HybridPackager: {packager!r}{where} is not a packager (run.GitArchivePackager, "
                                     "run.PatternPackager, ...)")
        return items


def _clean_folder(folder: str) -> str:
    if not isinstance(folder, str):
        raise PackagingError(f"HybridPackager: folder names are strings, got {folder!r}")
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if folder.startswith("/") or ".." in parts:
        raise PackagingError(f"HybridPackager: folder {folder!r} must be a relative path inside the archive")
    return "/".join(parts)


def _same(a: str, b: str) -> bool:
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    same_exec = bool(os.stat(a).st_mode & 0o100) == bool(os.stat(b).st_mode & 0o100)
    return same_exec and filecmp.cmp(a, b, shallow=False)
