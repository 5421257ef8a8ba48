"""Reading a Docker job's log by line offset without asking the engine for all of it again.

Why files: the engine's API has no call that returns the output of many containers, and ``/containers/{id}/logs``
always sends a container's whole log (its ``since`` is a timestamp, not a position). A poller that follows N jobs
would make 2N engine calls per round (the SDK inspects each container before reading its log) and re-read every log
from the start. But the engine writes each container's output, as it comes, into a file on this machine (the
``json-file`` log driver, Docker's default: one JSON object per line, ``{"log": "...\\n", "stream": ..., "time":
...}``, under ``<DockerRootDir>/containers/<id>/<id>-json.log``), and this executor already requires the engine to
run here (it bind-mounts the job directory). Reading that file from a remembered byte position costs no engine call
and reads only what is new. The container's command is left as it is (a wrapper that ``tee``s into the job
directory would need a shell in every image, stop the task from being PID 1 and could lose the last bytes when the
container's init exits).

Where the file cannot be used (another log driver, an engine in a VM or another mount namespace, no permission to
read the engine's directory: the usual case for a non-root user) :meth:`EngineLogs.engine_lines` answers None and
the executor asks the engine as before; nothing else changes.

Line numbers keep their meaning everywhere (the number of the next line, 0-based, lines split at ``\\n`` only, as
the engine's own log text and the saved ``log.out`` are): a cursor remembers, per file, which line starts at which
byte, so the next read of the same offset resumes there; any other offset is found by counting from the start (a
local read, still no engine call).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator, Optional

from nemorun_core.executors.lines import LineBuffer, decode

# What one poll round returns per job at most, as ``SlurmExecutor.poll_many`` does: a job that logs faster than the
# poller reads catches up over several rounds, and one huge log cannot make a round (or the poller's memory)
# unbounded. A single line longer than the byte cap is returned cut, with a note, so the poller moves past it.
POLL_MAX_LINES = 5000
POLL_MAX_BYTES = 2 << 20
_READ_BLOCK = 1 << 20  # the most one read of the file returns: a line without newline is consumed in pieces
_MAX_CURSORS = 4096  # cursors kept per executor (one per followed log); the oldest go first
_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
JSON_FILE_DRIVER = "json-file"


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Where reading a log file resumes.

    Attributes:
        line: the number of the next line.
        pos: the byte position in the file where reading resumes.
        carry: the start of line ``line`` already read (an unterminated last line), bytes.
        skip: the rest of an over-long line that was returned cut: dropped up to its newline, not counted again.
    """

    line: int = 0
    pos: int = 0
    carry: bytes = b""
    skip: bool = False


class Unreadable(Exception):
    """The file cannot be read as a log here (missing, no permission, not the expected format)."""


def _plain_pieces(path: str, pos: int) -> Iterator[tuple[bytes, int]]:
    """(bytes, end position) pieces of a plain text file from ``pos``: lines, or parts of a very long one."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            while True:
                piece = f.readline(_READ_BLOCK)
                if not piece:
                    return
                pos += len(piece)
                yield piece, pos
    except OSError as exc:
        raise Unreadable(str(exc)) from None


def _json_pieces(path: str, pos: int) -> Iterator[tuple[bytes, int]]:
    """(output bytes, end position) of each complete entry of an engine ``json-file`` log from ``pos``.

    An entry without its newline is being written: reading stops before it and resumes there next time.
    """
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            while True:
                raw = f.readline(_READ_BLOCK)
                if not raw.endswith(b"\n"):
                    if len(raw) >= _READ_BLOCK:
                        raise Unreadable(f"{path}: an entry longer than {_READ_BLOCK} bytes is not the engine's")
                    return
                try:
                    text = json.loads(raw)["log"]
                except (ValueError, KeyError, TypeError):
                    raise Unreadable(f"{path}: byte {pos} does not start a json-file log entry") from None
                if not isinstance(text, str):
                    raise Unreadable(f"{path}: byte {pos} does not start a json-file log entry")
                pos += len(raw)
                yield text.encode("utf-8", "surrogatepass"), pos
    except OSError as exc:
        raise Unreadable(str(exc)) from None


def advance(pieces: Iterator[tuple[bytes, int]], start: Cursor, offset: int, *, final: bool,
            max_lines: Optional[int], max_bytes: Optional[int]) -> tuple[list[str], Cursor]:
    """The lines from line ``offset`` of a log read as ``pieces`` from ``start``, and the cursor after them.

    Lines are split by ``executors/lines.py`` (the numbering of every executor). Lines before ``offset`` are
    counted, not kept. With ``final`` an unterminated last line is returned too (the log will not grow) once every
    piece was read; the cursor returned never moves past it, so a later read finds it again. ``max_lines`` and
    ``max_bytes`` cap what is returned (None: no cap); a line longer than ``max_bytes`` is returned cut.
    """
    lines: list[str] = []
    buffer = LineBuffer(start.carry, start.skip, max_bytes)
    line, pos = start.line, start.pos
    size, exhausted = 0, True
    for piece, end in pieces:
        for raw in buffer.feed(piece):
            if line >= offset:
                lines.append(decode(raw))
                size += len(raw) + 1
            line += 1
        pos = end
        if (max_lines is not None and len(lines) >= max_lines) or (max_bytes is not None and size >= max_bytes):
            exhausted = False
            break
    cursor = Cursor(line, pos, buffer.pending, buffer.skipping)
    if final and exhausted and line >= offset:
        lines += [decode(raw) for raw in buffer.final()]
    return lines, cursor


class EngineLogs:
    """One executor's view of its jobs' log files: where the engine keeps them, and a cursor per followed file.

    Thread-safe (an Airflow trigger polls from worker threads). Copies and pickles start empty: cursors and the
    engine's directory are facts of this process, never part of the executor's configuration.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._roots: dict[str, Optional[str]] = {}

    def __deepcopy__(self, memo: dict) -> "EngineLogs":
        return EngineLogs()

    def __copy__(self) -> "EngineLogs":
        return EngineLogs()

    def __reduce__(self) -> Any:
        return (EngineLogs, ())

    # -- the engine's log directory ------------------------------------------------------------------------------
    def root(self, host: str, ask: Callable[[], dict[str, Any]]) -> Optional[str]:
        """``<DockerRootDir>/containers`` of the engine at ``host`` when it logs to ``json-file`` files, else None.

        ``ask`` is the engine's ``info()``: called once per engine and executor (the answer is remembered), so a
        poll round costs no call for it. A log file missing under a remembered directory (the engine restarted with
        another one) only makes the executor ask the engine for that log.
        """
        with self._lock:
            if host in self._roots:
                return self._roots[host]
        info = ask() or {}
        root = info.get("DockerRootDir")
        found = (os.path.join(root, "containers")
                 if info.get("LoggingDriver") == JSON_FILE_DRIVER and isinstance(root, str) and root else None)
        with self._lock:
            self._roots[host] = found
        return found

    def pin_root(self, host: str, root: Optional[str]) -> None:
        """Use ``root`` as the log directory of the engine at ``host`` instead of asking it: where its files are
        mounted at another path here, or None to read every log through the engine's API."""
        with self._lock:
            self._roots[host] = root

    # -- reading ---------------------------------------------------------------------------------------------------
    def engine_lines(self, root: Optional[str], container_id: str, offset: int, *, final: bool,
                     capped: bool = True) -> Optional[list[str]]:
        """Lines of the container's output from line ``offset``, read from the engine's log file; None when that
        file cannot be read here (the caller then asks the engine)."""
        if root is None or not _CONTAINER_ID.fullmatch(container_id):
            return None  # an id from a handle is only ever a path component once it is known to be one
        path = os.path.join(root, container_id, f"{container_id}-json.log")
        try:
            return self._read(path, _json_pieces, offset, final=final, capped=capped)
        except Unreadable:
            self.drop(path)
            return None

    def saved_lines(self, path: str, offset: int, *, capped: bool = False) -> list[str]:
        """Lines of a saved log (``log.out``) from line ``offset``, split at ``\\n`` only (the numbering the
        engine's log has while the job runs); [] when it does not exist."""
        try:
            return self._read(path, _plain_pieces, offset, final=True, capped=capped)
        except Unreadable:
            return []

    def drop(self, path: str) -> None:
        """Forget the cursor of ``path`` (the file is gone, or cannot be read)."""
        with self._lock:
            self._cursors.pop(path, None)

    def drop_container(self, container_id: str) -> None:
        """Forget the cursor of a container's engine log (its job ended: its lines now come from ``log.out``)."""
        name = f"{container_id}-json.log"
        with self._lock:
            for path in [p for p in self._cursors if os.path.basename(p) == name]:
                del self._cursors[path]

    def _read(self, path: str, pieces: Callable[[str, int], Iterator[tuple[bytes, int]]], offset: int, *,
              final: bool, capped: bool) -> list[str]:
        start = self._cursor(path, offset)
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise Unreadable(str(exc)) from None
        if size < start.pos:  # rotated or rewritten since: the positions no longer hold
            start = Cursor()
        source = pieces(path, start.pos)
        try:
            lines, cursor = advance(source, start, offset, final=final,
                                    max_lines=POLL_MAX_LINES if capped else None,
                                    max_bytes=POLL_MAX_BYTES if capped else None)
        finally:
            source.close()  # a capped read stops early: the file is closed now, not when collected
        with self._lock:
            self._cursors[path] = cursor
            self._cursors.move_to_end(path)
            while len(self._cursors) > _MAX_CURSORS:
                self._cursors.popitem(last=False)
        return lines

    def _cursor(self, path: str, offset: int) -> Cursor:
        """The remembered cursor of ``path`` if it stands at or before line ``offset``, else the file's start."""
        with self._lock:
            cursor = self._cursors.get(path)
        return cursor if cursor is not None and cursor.line <= offset else Cursor()
