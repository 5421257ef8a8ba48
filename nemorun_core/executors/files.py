"""Small file helpers shared by the runner, executors and the store: private atomic writes, strict and tolerant
reads, and full-disk errors that name the path.

Kept free of heavy imports: the runner uses them in every job process.
"""

from __future__ import annotations

import errno
import json
import os

from nemorun_core.errors import ExperimentError, NemorunError

# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class NoSpaceError(NemorunError, OSError):
    """A write failed because the file system is full (or the user's quota is).

    Still an ``OSError`` (``errno`` ENOSPC or EDQUOT, ``filename`` the path), so callers that handle I/O errors keep
    working; its message names the path, the free space and the mount, instead of a bare ``[Errno 28]``.
    """

    def __init__(self, path: str, cause: OSError, message: str | None = None):
        super().__init__(cause.errno, cause.strerror, path)
        self.message = message or (f"no space left on device writing {path} ({_free_space(path)}); "
                                   "free some space and retry")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        # OSError pickles as (errno, strerror, filename), which is not this constructor's signature.
        return (NoSpaceError, (self.filename, OSError(self.errno, self.strerror), self.message))


def _free_space(path: str) -> str:
    """``"<n> bytes free on <mount>"`` for the file system holding ``path`` (or its nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
    except OSError:
        return "free space unknown"
    mount = probe
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    return f"{st.f_bavail * st.f_frsize} bytes free on {mount}"


def raise_io_error(path: str, exc: OSError) -> None:
    """Raise ``exc`` again, as a :class:`NoSpaceError` naming ``path`` when the disk is full."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(exc, NoSpaceError):
        raise NoSpaceError(path, exc) from exc
    raise exc


def make_private_dirs(path: str) -> None:
    """``os.makedirs`` with every directory it creates private to the user (0700), whatever the umask.

    The store and job directories hold logs, results and configurations that may reveal what a secret protects;
    on a shared machine they must not be readable by other users. Existing directories are left as they are.
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if parent != path and not os.path.isdir(parent):
        make_private_dirs(parent)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except OSError as exc:
        raise_io_error(path, exc)


def write_atomic(path: str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The temporary file is in the same directory (a rename across file systems is not atomic), carries the pid and
    a random part (two writers never share a temporary) and is created 0600, so the file is private to the user
    from its first byte (the rename keeps the mode). No fsync: the guarantee is against concurrent readers and
    crashed processes, not power loss, and an fsync per file would dominate the cost of small jobs.

    Raises:
        NoSpaceError: the disk is full; nothing is left behind (the temporary is removed, the old file kept).
    """
    tmp = f"{path}.tmp.{os.getpid()}.{os.urandom(3).hex()}"
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        raise_io_error(path, exc)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise_io_error(path, exc)
        raise


def read_json(path: str) -> Any:
    """Parse a JSON file; None if it does not exist, is empty or is not JSON (a writer that uses write_atomic never
    leaves a torn file, but a user or a full disk may). For the store's own files, :func:`load_json` says why."""
    try:
        return load_json(path)
    except StoreFileError:
        return None


class StoreFileError(ExperimentError):
    """A file that nemorun wrote is damaged (not UTF-8, not JSON, the wrong shape). ``path`` names it."""

    def __init__(self, path: str, problem: str, fix: str = ""):
        self.path = path
        super().__init__(f"{path}: {problem}" + (f"; {fix}" if fix else ""))


def load_json(path: str, *, empty_ok: bool = True) -> Any:
    """Parse a JSON file that nemorun wrote; None if it does not exist (or, with ``empty_ok``, is empty).

    Raises:
        StoreFileError: the file is there but damaged (empty when ``empty_ok`` is false, not UTF-8, not JSON, or
            not a file), with the path in the message.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise StoreFileError(path, "is a directory, not a file") from None
    if not raw.strip():
        if empty_ok:
            return None
        raise StoreFileError(path, "is empty")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StoreFileError(path, f"is not UTF-8 text (byte {exc.start}): the file is damaged") from None
    except json.JSONDecodeError as exc:
        raise StoreFileError(path, f"is not valid JSON (line {exc.lineno}, column {exc.colno}): the file is "
                                   "damaged") from None


def read_lines(path: str, last: int | None = None) -> list[str]:
    """The lines of a text file (the ``last`` ones only, when given), without newlines; [] if it does not exist."""
    from collections import deque

    try:
        with open(path, "r", errors="replace") as f:
            if last is None:
                return f.read().splitlines()
            return [line.rstrip("\n") for line in deque(f, maxlen=last)]
    except FileNotFoundError:
        return []


def rewrite_payload(text: str, sys_path: list[str]) -> str:
    """The runner's ``task.json`` text with ``sys_path`` as its import path: where the code is on the machine or in
    the container that runs the job (uploaded, extracted or baked into an image), instead of this machine's paths."""
    payload = json.loads(text)
    payload["sys_path"] = sys_path
    return json.dumps(payload)
