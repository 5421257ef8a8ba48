"""safe_extract against hand-crafted malicious archives: each one is refused and nothing is written."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

import nemorun_core as run
from nemorun_core.packaging.base import PackagingError
from nemorun_core.packaging.extract import UnsafeArchiveError, safe_extract

from .conftest import write_files


def _archive(tmp_path, members: list[tuple[str, str, str]], gz: bool = True) -> str:
    """Members as (name, kind, payload): kind 'file' (payload = content), 'sym'/'hard' (payload = target),
    'dir', 'chr', 'blk', 'fifo'."""
    path = str(tmp_path / ("evil.tar.gz" if gz else "evil.tar"))
    types = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE, "chr": tarfile.CHRTYPE,
             "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = types[kind]
            if kind in ("sym", "hard"):
                info.linkname = payload
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3
            tf.addfile(info)
    return path


@pytest.mark.parametrize("members, bad, reason", [
    ([("/etc/evil", "file", "x")], "/etc/evil", "absolute path"),
    ([("ok.txt", "file", "x"), ("../evil", "file", "x")], "../evil", "'..'"),
    ([("a/../../evil", "file", "x")], "a/../../evil", "'..'"),
    ([("link", "sym", "/etc/passwd")], "link", "resolves outside"),
    ([("a/link", "sym", "../../outside")], "a/link", "resolves outside"),
    # each link alone stays inside; followed together, the second climbs out
    ([("a/b/s", "sym", "../.."), ("t", "sym", "a/b/s/..")], "t", "resolves outside"),
    # writing through an archive symlink that points out
    ([("up", "sym", ".."), ("up/evil", "file", "x")], "up", "resolves outside"),
    ([("d", "sym", "."), ("d/d/../x", "file", "x")], "d/d/../x", "'..'"),
    ([("hard", "hard", "../outside")], "hard", "hard link to '../outside' outside"),
    ([("hard", "hard", "/etc/passwd")], "hard", "outside"),
    ([("hard", "hard", "not-in-archive")], "hard", "not a file earlier in the archive"),
    ([("dev", "chr", "")], "dev", "device file"),
    ([("disk", "blk", "")], "disk", "device file"),
    ([("pipe", "fifo", "")], "pipe", "fifo"),
    ([("loop", "sym", "loop2"), ("loop2", "sym", "loop")], "loop", "resolves outside"),
])
def test_refuses_unsafe_members_and_writes_nothing(tmp_path, members, bad, reason):
    archive = _archive(tmp_path, members)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, str(dest))
    assert info.value.member == bad and reason in str(info.value)
    assert not dest.exists() or not os.listdir(dest)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_uncompressed_tar_is_checked_too(tmp_path):
    with pytest.raises(UnsafeArchiveError, match=r"unsafe member '../x'"):
        safe_extract(_archive(tmp_path, [("../x", "file", "x")], gz=False), str(tmp_path / "dest"))


def test_links_inside_and_dot_slash_names_are_fine(tmp_path):
    archive = _archive(tmp_path, [
        ("./pkg/mod.py", "file", "m"), ("pkg/alias.py", "sym", "mod.py"), ("top.py", "sym", "pkg/mod.py"),
        ("pkg/again.py", "hard", "pkg/mod.py"), ("empty", "dir", ""), ("up", "sym", "pkg/.."),
    ])
    names = safe_extract(archive, str(tmp_path / "dest"))
    assert names == ["pkg/mod.py", "pkg/alias.py", "top.py", "pkg/again.py", "empty", "up"]
    assert (tmp_path / "dest" / "top.py").read_text() == "m"
    assert (tmp_path / "dest" / "pkg" / "again.py").read_text() == "m"


def test_round_trip_of_a_package_keeps_modes_and_links(tmp_path):
    root = tmp_path / "proj"
    write_files(root, {"run.sh": "#!/bin/sh\n", "lib/a.py": "a\n"})
    os.chmod(root / "run.sh", 0o755)
    os.symlink("lib/a.py", root / "a.py")
    pkg = run.PatternPackager(include=["**"]).package(str(root), str(tmp_path / "out"))
    dest = tmp_path / "dest"
    assert sorted(safe_extract(pkg.path, str(dest))) == ["a.py", "lib/a.py", "run.sh"]
    assert os.stat(dest / "run.sh").st_mode & 0o100 and not os.stat(dest / "lib" / "a.py").st_mode & 0o100
    assert os.readlink(dest / "a.py") == "lib/a.py"


def test_not_an_archive(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"definitely not a tarball")
    with pytest.raises(PackagingError, match=r"cannot read package"):
        safe_extract(str(tmp_path / "junk.tar.gz"), str(tmp_path / "dest"))
