"""The canonical ``.tar.gz``: the one place that decides an archive's bytes, and a fast reader for git's tar stream.

Canonical form, so that the same files always give the same bytes and so the same digest, whichever packager or
code path produced them (a clean commit, the same files uncommitted, a pattern over the same tree):

- members are regular files and symlinks only, sorted by the UTF-8 bytes of their path. No directory entries:
  extraction creates parents, and git does not track empty directories anyway. No global headers (git's carries
  the commit id, which would make two commits of the same tree differ);
- every header has mtime 1980-01-01 (not 0: zip-based tools, wheel builds among them, reject pre-1980 times of
  extracted files), uid/gid 0, empty owner names, mode 0755 when the owner may execute the file, else 0644;
- plain ustar headers, with a pax record only for what ustar cannot hold (a path or link over 100 bytes, 8 GiB+);
- gzip without file name and with mtime 0, at one fixed level.

Headers are built and parsed here rather than with ``tarfile``: its generic header code was a third of the
packaging time for a 5,000-file repository.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tempfile
from typing import IO, Iterable, Iterator

from nemorun_core.packaging.base import Package, PackagingError

MTIME = 315532800  # 1980-01-01T00:00:00Z
# Level 1: packaging sits on the submit path and code compresses well at any level; measured in bench/README.md.
COMPRESSLEVEL = 1
_BLOCK = 512
_CHUNK = 1 << 20
_ZERO_BLOCK = bytes(_BLOCK)
_TYPES = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir"}


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:  # the length counts its own digits
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _ustar(name: bytes, size: int, mode: int, typeflag: bytes, link: bytes) -> bytes:
    header = b"".join((
        name.ljust(100, b"\0"), _octal(mode, 8), b"0000000\0", b"0000000\0", _octal(size, 12), _octal(MTIME, 12),
        b" " * 8, typeflag, link.ljust(100, b"\0"), b"ustar\x0000", bytes(64), b"0000000\0" * 2, bytes(167),
    ))
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


def tar_header(name: str, size: int, mode: int, typeflag: bytes = b"0", link: str = "") -> bytes:
    """The canonical header block(s) of one member (a pax block first when ustar cannot hold a field)."""
    bname = name.encode("utf-8", "surrogateescape")
    blink = link.encode("utf-8", "surrogateescape")
    pax = b""
    if len(bname) > 100:
        pax += _pax_record("path", bname)
        bname = bname[:100]
    if len(blink) > 100:
        pax += _pax_record("linkpath", blink)
        blink = blink[:100]
    if size >= 8**11:
        pax += _pax_record("size", str(size).encode())
        size = 0
    header = _ustar(bname, size, mode, typeflag, blink)
    if pax:
        pad = -len(pax) % _BLOCK
        header = _ustar(b"././@PaxHeader", len(pax), 0o644, b"x", b"") + pax + bytes(pad) + header
    return header


class ArchiveWriter:
    """Writes one canonical ``.tar.gz`` into ``output_dir``, hashing as it goes; members must come sorted.

    Use as a context manager: on an exception the partial file is removed. :meth:`finish` renames the archive to
    ``<digest>.tar.gz`` (atomic; a second build of the same content replaces identical bytes).
    """

    def __init__(self, output_dir: str):
        try:
            os.makedirs(output_dir, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=output_dir, prefix=".package-", suffix=".tmp")
        except OSError as e:
            raise PackagingError(
                f"cannot write the package into output dir {output_dir!r}: {e.strerror or e}; "
                "choose a writable output_dir"
            ) from None
        self._out_dir = output_dir
        self._raw = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self._size = 0
        self._gz = gzip.GzipFile(fileobj=self, mode="wb", compresslevel=COMPRESSLEVEL, mtime=0, filename="")
        self._buf = bytearray()
        self._last = b""
        self.files = 0
        self.symlinks: dict[str, str] = {}

    # GzipFile writes its output here.
    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self._size += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def _emit(self, data: bytes) -> None:
        # Batched: one GzipFile.write per small file costs more than the compression itself.
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self._gz.write(self._buf)
            self._buf.clear()

    def _order(self, name: str) -> None:
        key = name.encode("utf-8", "surrogateescape")
        if key <= self._last:
            why = "twice" if key == self._last else "out of order"
            raise PackagingError(f"internal: member {name!r} added {why}")
        self._last = key

    def add_chunks(self, name: str, size: int, executable: bool, chunks: Iterable[bytes]) -> None:
        """Add a regular file whose ``size`` bytes come as ``chunks``."""
        self._order(name)
        self._emit(tar_header(name, size, 0o755 if executable else 0o644))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            self._emit(chunk)
        if written != size:
            raise PackagingError(f"{name!r} changed size while being packaged ({size} -> {written} bytes); retry")
        self._emit(bytes(-size % _BLOCK))
        self.files += 1

    def add_path(self, name: str, path: str) -> None:
        """Add the file or symlink at ``path`` (not followed) as ``name``."""
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            self.add_symlink(name, os.readlink(path))
            return
        if not stat.S_ISREG(st.st_mode):
            raise PackagingError(f"{path!r} is not a regular file or symlink (a socket, fifo or device); exclude it")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.add_chunks(name, size, bool(st.st_mode & stat.S_IXUSR), _read_exactly(f, size))

    def add_symlink(self, name: str, target: str) -> None:
        """Add a symlink; :meth:`finish` checks that it stays inside the archive."""
        self._order(name)
        self._emit(tar_header(name, 0, 0o777, b"2", target))
        self.symlinks[name] = target

    def finish(self) -> Package:
        """Close the archive, check its links, and move it to ``<output_dir>/<digest>.tar.gz``."""
        if self.symlinks:
            from nemorun_core.packaging.extract import check_symlinks

            check_symlinks(self.symlinks, packaging=True)
        self._emit(bytes(2 * _BLOCK))
        self._gz.write(self._buf)
        self._gz.close()
        self._raw.close()
        digest = self._sha.hexdigest()
        path = os.path.join(self._out_dir, f"{digest}.tar.gz")
        os.replace(self._tmp, path)
        os.chmod(path, 0o644)
        return Package(path=os.path.abspath(path), digest=digest, files=self.files, size=self._size)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._raw.close()
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass


def _read_exactly(f: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            return  # the writer reports the short file by name
        left -= len(chunk)
        yield chunk


class TarMember:
    """One member of a tar stream (name, kind, mode, size, link target)."""

    __slots__ = ("name", "kind", "mode", "size", "link")

    def __init__(self, name: str, kind: str, mode: int, size: int, link: str):
        self.name, self.kind, self.mode, self.size, self.link = name, kind, mode, size, link


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256, for values octal cannot hold
        return int.from_bytes(field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


def _pax_fields(data: bytes) -> dict[str, bytes]:
    fields = {}
    while data:
        length = int(data.split(b" ", 1)[0])
        key, _, value = data[:length].split(b" ", 1)[1].partition(b"=")
        fields[key.decode()] = value[:-1]
        data = data[length:]
    return fields


def read_tar_stream(stream: IO[bytes]) -> Iterator[tuple[TarMember, Iterator[bytes]]]:
    """Iterate the members of an uncompressed tar stream (git archive's pax/ustar dialect).

    Each member comes with an iterator over its data chunks; data the caller does not read is skipped.
    """
    while True:
        block = stream.read(_BLOCK)
        if len(block) < _BLOCK or block == _ZERO_BLOCK:
            return
        pax: dict[str, bytes] = {}
        while block[156:157] in (b"x", b"g"):  # extended headers apply to the next real header
            size = _number(block[124:136])
            data = stream.read(size + (-size % _BLOCK))[:size]
            if block[156:157] == b"x":
                pax.update(_pax_fields(data))
            block = stream.read(_BLOCK)
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar" and block[345] != 0:
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        link = block[157:257].split(b"\0", 1)[0]
        size = _number(block[124:136])
        name, link = pax.get("path", name), pax.get("linkpath", link)
        size = int(pax["size"]) if "size" in pax else size
        kind = _TYPES.get(block[156:157], "other")
        member = TarMember(
            name.decode("utf-8", "surrogateescape").rstrip("/"), kind, _number(block[100:108]),
            size if kind == "file" else 0, link.decode("utf-8", "surrogateescape"),
        )
        padded = member.size + (-member.size % _BLOCK)
        state = [padded]
        yield member, _member_chunks(stream, member.size, state)
        while state[0] > 0:  # skip what the caller did not read
            skipped = stream.read(min(state[0], _CHUNK))
            if not skipped:
                raise PackagingError("the tar stream from git ended early")
            state[0] -= len(skipped)


def _member_chunks(stream: IO[bytes], size: int, state: list[int]) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            raise PackagingError("the tar stream from git ended early")
        left -= len(chunk)
        state[0] -= len(chunk)
        yield chunk
