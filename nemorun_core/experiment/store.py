"""The experiment store: one directory per experiment under ``$NEMORUN_HOME`` (default ``~/.nemorun``).

Layout::

    $NEMORUN_HOME/
      index.jsonl                      one JSON line per change of an experiment (last line per id wins)
      index.lock                       flock'ed by writers of the index
      experiments/<id>/
        experiment.json                id, name, title, description, tags, created_at, task names
        environment.json               python, packages, git commit and dirty state, host (envsnap.py)
        tasks/<task>/                  the job directory of a local task; a mirror for remote ones
          task.yaml, executor.yaml     readable, secrets redacted
          task.json, executor.json     what the runner / a re-attaching process loads (secrets redacted too)
          info.json                    dependencies, plugins, the task's last known state
          handle.json, log.out, status.json, result.json, metrics.jsonl ...

Every file is written atomically (temporary + rename). The index makes listing thousands of experiments one read;
two processes may append to it at once (each append is one short ``O_APPEND`` write under a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from typing import Any, Iterator

from nemorun_core.errors import ExperimentError, did_you_mean
from nemorun_core.executors.files import read_json, write_atomic

INDEX_FILE = "index.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def default_home() -> str:
    """``$NEMORUN_HOME`` or ``~/.nemorun``, read at call time (never cached at import)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("NEMORUN_HOME") or "~/.nemorun"))


def check_name(name: Any, what: str) -> str:
    """Validate an experiment or task name: it becomes a directory name and appears in shell scripts."""
    if not isinstance(name, str) or not _NAME.match(name):
        shown = name if isinstance(name, str) else repr(name)
        fixed = re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(name)).strip("-.")[:128] or "task"
        if fixed[:1] in "_.-":
            fixed = "x" + fixed
        raise ExperimentError(
            f"{what} {shown!r} is not allowed: use letters, digits, '_', '.', '-' (at most 128, starting with a "
            f"letter or digit); for example {fixed!r}"
        )
    return name


class Store:
    """Access to the experiment store at ``root``."""

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root) if root else default_home()
        self.experiments_dir = os.path.join(self.root, "experiments")

    # -- experiments ------------------------------------------------------------------------------------------------
    def create_experiment(self, name: str, stamp: float | None = None) -> tuple[str, str]:
        """Reserve a new experiment id ``<name>_<YYYYmmdd_HHMMSS>`` (suffixed on collision); return (id, dir)."""
        os.makedirs(self.experiments_dir, exist_ok=True)
        base = f"{name}_{time.strftime('%Y%m%d_%H%M%S', time.localtime(stamp or time.time()))}"
        for n in range(1, 10_000):
            exp_id = base if n == 1 else f"{base}_{n}"
            path = os.path.join(self.experiments_dir, exp_id)
            try:
                os.mkdir(path)  # atomic: two processes never get the same id
            except FileExistsError:
                continue
            os.mkdir(os.path.join(path, "tasks"))
            return exp_id, path
        raise ExperimentError(f"could not allocate an experiment id for {name!r} in {self.experiments_dir}")

    def experiment_dir(self, exp_id: str) -> str:
        path = os.path.join(self.experiments_dir, exp_id)
        if not exp_id or "/" in exp_id or exp_id.startswith(".") or not os.path.isdir(path):
            known = [e["id"] for e in self.list()]
            raise ExperimentError(
                f"no experiment {exp_id!r} in {self.root}{did_you_mean(exp_id, known) or ''}"
                + ("" if known else " (the store is empty)")
                + "; list them with `nemorun experiment list`"
            )
        return path

    def task_dir(self, exp_dir: str, task: str) -> str:
        return os.path.join(exp_dir, "tasks", task)

    # -- files ------------------------------------------------------------------------------------------------------
    @staticmethod
    def write_json(path: str, data: Any) -> None:
        write_atomic(path, json.dumps(data, indent=1, sort_keys=False, default=str))

    @staticmethod
    def read_json(path: str) -> Any:
        return read_json(path)

    @staticmethod
    def write_text(path: str, text: str) -> None:
        write_atomic(path, text)

    # -- index ------------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "index.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, exp_id: str, **fields: Any) -> None:
        """Append a change of experiment ``exp_id`` to the index (fields merge over earlier lines)."""
        line = json.dumps({"id": exp_id, "updated_at": time.time(), **fields}, default=str) + "\n"
        with self._index_lock():
            fd = os.open(os.path.join(self.root, INDEX_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def list(self) -> list[dict[str, Any]]:
        """Every experiment's merged index entry, oldest first. One file read, whatever the store's size."""
        merged: dict[str, dict[str, Any]] = {}
        try:
            with open(os.path.join(self.root, INDEX_FILE)) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn line from a crashed writer: skip it, later lines still count
                    merged.setdefault(entry["id"], {}).update(entry)
        except FileNotFoundError:
            return []
        entries = [e for e in merged.values() if not e.get("deleted")]
        return sorted(entries, key=lambda e: (e.get("created_at") or 0, e["id"]))

    def compact(self) -> None:
        """Rewrite the index with one line per experiment (safe against concurrent appends: same lock)."""
        with self._index_lock():
            entries = self.list()
            write_atomic(os.path.join(self.root, INDEX_FILE), "".join(json.dumps(e) + "\n" for e in entries))

    def find_by_title(self, title: str) -> str:
        """The id of the most recent experiment with this title (or name)."""
        entries = [e for e in self.list() if title in (e.get("title"), e.get("name"))]
        if not entries:
            titles = {e.get("title") for e in self.list() if e.get("title")}
            raise ExperimentError(
                f"no experiment titled {title!r} in {self.root}{did_you_mean(title, titles) or ''}"
            )
        return entries[-1]["id"]
