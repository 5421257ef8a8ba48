"""Small file helpers shared by the runner, executors and the store: atomic writes and tolerant reads.

Kept free of heavy imports: the runner uses them in every job process.
"""

from __future__ import annotations

import json
import os
# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_atomic(path: str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The temporary file is in the same directory (a rename across file systems is not atomic) and carries the pid,
    so two processes writing the same file never share a temporary. No fsync: the guarantee is against concurrent
    readers and crashed processes, not power loss, and an fsync per file would dominate the cost of small jobs.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def read_json(path: str) -> Any:
    """Parse a JSON file; None if it does not exist or is empty (a writer that uses write_atomic never leaves a torn
    file, but a user may)."""
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


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
