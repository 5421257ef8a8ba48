"""HybridPackager: one archive from several packagers.

    run.HybridPackager([git_packager, pattern_packager])                  # all at the archive's root
    run.HybridPackager({"code": git_packager, "configs": pattern_packager})  # each under its own folder
    run.HybridPackager(sub_packagers={"code": git_packager}, extract_at_root=False)  # NeMo Run's spelling

Each packager builds its own archive, which is safely extracted (so a third-party packager's archive is checked
too) and merged into one canonical archive: the result depends only on the merged files, like any package.
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import tempfile
import types
from typing import Any, ClassVar, Mapping

from nemorun_core.packaging._archive import ArchiveWriter
from nemorun_core.packaging._globs import GlobSet
from nemorun_core.packaging.base import Package, Packager, PackagerSettingError, PackagingError
from nemorun_core.packaging.extract import safe_extract
from nemorun_core.packaging.pattern import walk_files


@dataclasses.dataclass
class HybridPackager(Packager):
    """Merge the files of several packagers into one archive.

    A path produced by two packagers must have the same content in both (it is then stored once); different
    content is an error naming the path, rather than one packager silently winning (NeMo Run lets the last one
    win). A pass-through ``run.Packager()`` among them contributes no files.

    NeMo Run's spelling works too: ``HybridPackager(sub_packagers={"code": ..., "configs": ...})`` is the mapping
    form, and ``extract_at_root=True`` puts every packager's files at the root (the list form).

    Attributes:
        packagers: a list of packagers, whose files all go to the archive's root; or a mapping folder -> packager,
            which puts each packager's files under that folder (``""`` or ``"."``: the root).
    """

    packagers: list[Packager] | dict[str, Packager]

    nemo_run_names: ClassVar[Mapping[str, str]] = types.MappingProxyType(
        {"sub_packagers": "packagers", "extract_at_root": ""})

    @classmethod
    def nemo_run_value(cls, name: str, value: Any) -> tuple[str | None, Any]:
        """``sub_packagers`` is ``packagers``; ``extract_at_root`` changes the form of ``packagers``."""
        return (None, value) if name == "extract_at_root" else super().nemo_run_value(name, value)

    @classmethod
    def apply_nemo_run_setting(cls, name: str, value: Any, kwargs: dict[str, Any]) -> None:
        """``extract_at_root=True``: the mapping's packagers, in order, all at the root."""
        if value is None or value is False:
            return
        if value is not True:
            raise PackagerSettingError(f"must be True or False, got {value!r}", path="HybridPackager.extract_at_root")
        packagers = kwargs.get("packagers")
        if isinstance(packagers, Mapping):
            kwargs["packagers"] = list(packagers.values())

    def __post_init__(self) -> None:
        self._items()  # a wrong form or member is an error now, not at submission

    def package(self, base_dir: str, output_dir: str) -> Package:
        """Build the merged archive into ``output_dir`` (see :meth:`Packager.package`).

        Blocking (runs every packager, in order). Idempotent when they are.

        Raises:
            PackagingError: no packagers, a bad folder name, a packager's own error (prefixed with which one),
                or one path with two different contents.
        """
        items = []
        for i, (folder, packager) in enumerate(self._items()):
            label = f"packager {folder!r} ({type(packager).__name__})" if folder else (
                f"packager #{i} ({type(packager).__name__})"
            )
            items.append((folder, label, packager))
        return merge_packages(items, base_dir, output_dir, owner="HybridPackager",
                              fix="exclude it from one of them, or give each packager its own folder with a mapping "
                                  "({'code': ..., 'configs': ...})")

    def _items(self) -> list[tuple[str, Packager]]:
        if isinstance(self.packagers, dict):
            items = [(_clean_folder(k), v) for k, v in self.packagers.items()]
        elif isinstance(self.packagers, (list, tuple)):
            items = [("", p) for p in self.packagers]
        else:
            raise PackagerSettingError(
                f"takes a list of packagers or a mapping folder -> packager, got {self.packagers!r}",
                path="HybridPackager.packagers")
        if not items:
            raise PackagerSettingError("needs at least one packager", path="HybridPackager.packagers")
        for folder, packager in items:
            if not isinstance(packager, Packager):
                where = f" for folder {folder!r}" if folder else ""
                raise PackagerSettingError(f"{packager!r}{where} is not a packager (run.GitArchivePackager(), "
                                           "run.PatternPackager(...), ...)", path="HybridPackager.packagers")
        return items


def merge_packages(items: list[tuple[str, str, Packager]], base_dir: str, output_dir: str, *, owner: str,
                   fix: str) -> Package:
    """Build each ``(folder, label, packager)`` and merge their files into one canonical archive in ``output_dir``.

    Each archive is safely extracted first (a third-party packager's too). One path from two packagers must have
    the same content; otherwise the error names both and says ``fix``. A pass-through packager adds nothing.

    Raises:
        PackagingError: a packager's own error (prefixed with ``owner`` and its label), a conflict, or no files.
    """
    with tempfile.TemporaryDirectory(prefix="nemorun-hybrid-") as tmp:
        merged: dict[str, tuple[str, str]] = {}  # archive path -> (file on disk, which packager)
        for i, (folder, label, packager) in enumerate(items):
            try:
                built = packager.package(base_dir, os.path.join(tmp, f"out{i}"))
            except PackagingError as e:
                raise PackagingError(f"{owner}, {label}: {e}") from e
            if built is None:  # the pass-through packager: nothing to add
                continue
            tree = os.path.join(tmp, f"tree{i}")
            safe_extract(built.path, tree)
            files, _ = walk_files(tree, None, GlobSet([]))
            for rel in files:
                name = f"{folder}/{rel}" if folder else rel
                source = os.path.join(tree, rel)
                if name in merged and not _same(merged[name][0], source):
                    raise PackagingError(
                        f"{owner}: {name!r} comes from {merged[name][1]} and from {label} with different content; "
                        f"{fix}"
                    )
                merged.setdefault(name, (source, label))
        if not merged:
            raise PackagingError(f"{owner}: its packagers produced no files")
        with ArchiveWriter(output_dir) as writer:
            for name in sorted(merged, key=lambda n: n.encode("utf-8", "surrogateescape")):
                writer.add_path(name, merged[name][0])
            return writer.finish()


def _clean_folder(folder: str) -> str:
    if not isinstance(folder, str):
        raise PackagerSettingError(f"folder names are strings, got {folder!r}", path="HybridPackager.packagers")
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if folder.startswith("/") or ".." in parts:
        raise PackagerSettingError(f"folder {folder!r} must be a relative path inside the archive",
                                   path="HybridPackager.packagers")
    return "/".join(parts)


def _same(a: str, b: str) -> bool:
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    same_exec = bool(os.stat(a).st_mode & 0o100) == bool(os.stat(b).st_mode & 0o100)
    return same_exec and filecmp.cmp(a, b, shallow=False)
