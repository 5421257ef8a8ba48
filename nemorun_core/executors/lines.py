"""Splitting a job's output into lines, written once for every backend.

A log is read in pieces while the job runs (a file read from a position, a remote ``tail``, an engine stream), so
the last piece may end inside a line that is still being written. Every executor numbers lines the same way (the
offsets of ``Executor.logs`` and ``poll_many``): split at ``\\n`` only (a ``\\r`` stays in its line), a partial last
line held back until its newline arrives or the log is final, bytes decoded as UTF-8 with replacement.

:class:`LineBuffer` does that for a stream of pieces; :func:`split_complete` for one chunk read at once. With a
``max_bytes`` cap, a line that grows past the cap is returned cut (with :func:`cut_note`) as one line, and the
rest of it up to its newline is dropped, so a reader that follows a job printing an endless line still moves on.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from nemorun_core.errors import ExecutorError


def cut_note(max_bytes: int) -> str:
    """What follows the kept part of a line cut at ``max_bytes``."""
    return f" [line cut by nemorun: longer than {max_bytes} bytes]"


def decode(raw: bytes) -> str:
    """One line's bytes as text: UTF-8, invalid bytes replaced (a job may print anything)."""
    return raw.decode("utf-8", "replace")


class LineBuffer:
    """Bytes in, complete lines out; the partial last line is held until it ends.

    The state (``pending``: the start of the line being written; ``skipping``: the rest of a cut line is being
    dropped) is plain data, so a reader can keep it between reads (a cursor) and resume with a new buffer.

    Args:
        pending: bytes of the current, unterminated line already read.
        skipping: whether the current line was already returned cut (its rest is dropped up to its newline).
        max_bytes: cut a line that reaches this many bytes (None: lines are never cut).
    """

    def __init__(self, pending: bytes = b"", skipping: bool = False, max_bytes: Optional[int] = None):
        self.pending = pending
        self.skipping = skipping
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """The lines that ``data`` completes, as raw bytes without their newline, in order.

        A line that reaches ``max_bytes`` without ending is returned once, cut and followed by :func:`cut_note`;
        the rest of it is not a line of its own.
        """
        *done, rest = data.split(b"\n")
        out: list[bytes] = []
        for part in done:
            if self.skipping:  # the end of a line returned cut
                self.skipping = False
                continue
            out.append(self.pending + part)
            self.pending = b""
        if not self.skipping:
            self.pending += rest
        if self.max_bytes is not None and not self.skipping and len(self.pending) >= self.max_bytes:
            out.append(self.pending[:self.max_bytes] + cut_note(self.max_bytes).encode())
            self.pending, self.skipping = b"", True
        return out

    def final(self) -> list[bytes]:
        """The held partial line, for a log that will not grow (the job ended without a last newline); [] when
        there is none. The buffer is left as it is, so a later read can still resume from it."""
        return [self.pending] if self.pending and not self.skipping else []


def split_complete(chunk: bytes | str, *, final: bool, max_bytes: Optional[int] = None) -> list[str]:
    """The lines of one chunk read whole (a remote ``tail`` of a log from a line offset).

    Args:
        chunk: the bytes read (text is encoded back as UTF-8 first).
        final: whether the log will not grow: then an unterminated last line is a line too; otherwise it is held
            back (dropped here: the next read from the same offset finds it again).
        max_bytes: the reader's byte cap, if it truncated the chunk (see :class:`LineBuffer`).
    """
    data = chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else chunk
    buffer = LineBuffer(max_bytes=max_bytes)
    lines = buffer.feed(data)
    if final:
        lines += buffer.final()
    return [decode(raw) for raw in lines]


def check_offsets(offsets: Mapping[Any, Any]) -> None:
    """Refuse a ``poll_many`` offset (handle -> line number) that is not an int >= 0, naming the job.

    Raises:
        ExecutorError: the first bad offset, with the job's id and key.
    """
    for handle, offset in offsets.items():
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ExecutorError(f"poll_many: the offset of job {handle.job_id[:12]} ({handle.key}) must be a line "
                                f"number >= 0, got {offset!r}")
