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
import logging
import os
import re
import secrets
import time
from typing import Any, Iterator

from nemorun_core.errors import ExperimentError, did_you_mean
from nemorun_core.executors.base import JobState
from nemorun_core.executors.files import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    StoreFileError,
    load_json,
    make_private_dirs,
    raise_io_error,
    read_json,
    write_atomic,
)
from nemorun_core.home import default_home  # re-exported: the store's public name for the home

log = logging.getLogger(__name__)

INDEX_FILE = "index.jsonl"
LOCK_FILE = "index.lock"
EXPERIMENT_FILE = "experiment.json"
OUTCOME_FILE = "outcome.json"
INFO_FILE = "info.json"  # in each task's directory: dependencies, plugins, the last known state
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}")
_STATES = frozenset(s.value for s in JobState)
_STATE_WORD = re.compile(r"[A-Z][A-Z_]{0,31}")
# Index fields and the types a reader may rely on; a value of another type (a damaged or hand-edited line) is
# dropped with a warning rather than breaking `experiment list` for every experiment.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "title": (str,), "state": (str,), "dir": (str,), "error": (str,),
    "created_at": (int, float), "finished_at": (int, float), "updated_at": (int, float),
    "tasks": (int,), "deleted": (bool,),
}


def check_name(name: Any, what: str) -> str:
    """Validate an experiment or task name: it becomes a directory name and appears in shell scripts."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
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
    """Access to the experiment store at ``root``.

    Reading never needs to write, except to rebuild a lost index (best effort); every damaged entry or file is
    reported by name and skipped, so one bad experiment never hides the others.
    """

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root) if root else default_home()
        self.experiments_dir = os.path.join(self.root, "experiments")
        self._warned: set[str] = set()

    def _warn(self, message: str) -> None:
        """Log a problem of the store once per Store (a command may list the index several times)."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("nemorun: warning: %s", message)

    def check_root(self) -> None:
        """Raise a clear error when the store's directory (or its ``experiments`` folder) is not a directory."""
        for path in (self.root, self.experiments_dir):
            if os.path.exists(path) and not os.path.isdir(path):
                raise ExperimentError(
                    f"the experiment store {self.root} cannot be used: {path} is a file, not a directory; "
                    "point NEMORUN_HOME (or --home) at a directory, or move the file away"
                )

    # -- experiments ------------------------------------------------------------------------------------------------
    def create_experiment(self, name: str, stamp: float | None = None, *, exp_id: str | None = None
                          ) -> tuple[str, str]:
        """Reserve a new experiment id ``<name>_<YYYYmmdd_HHMMSS>_<6 hex>`` (or exactly ``exp_id``); return (id, dir).

        The random part makes ids unique across stores, not only within this one: remote job directories are
        ``<job_dir>/<id>/<task>``, so two users (or CI runners) on one cluster account who start a same-named
        experiment in the same second must never share a directory. The directory is created private (0700).

        Raises:
            ExperimentError: the store is not a directory, or ``exp_id`` is taken; NoSpaceError (an OSError): the
                disk is full.
        """
        self.check_root()
        make_private_dirs(self.experiments_dir)
        base = f"{name}_{time.strftime('%Y%m%d_%H%M%S', time.localtime(stamp or time.time()))}"
        chosen = exp_id
        for _ in range(100):
            exp_id = chosen or f"{base}_{secrets.token_hex(3)}"
            path = os.path.join(self.experiments_dir, exp_id)
            try:
                os.mkdir(path, PRIVATE_DIR)  # atomic: two processes never get the same id
            except FileExistsError:
                if chosen:
                    raise ExperimentError(
                        f"experiment id {chosen!r} is already in {self.root}; pass another id=, or load that "
                        f"experiment with Experiment.from_id({chosen!r})") from None
                continue
            except OSError as exc:
                raise_io_error(path, exc)
            try:
                os.mkdir(os.path.join(path, "tasks"), PRIVATE_DIR)
            except OSError as exc:
                os.rmdir(path)  # nothing half-made: an id without its tasks folder would look like a broken experiment
                raise_io_error(os.path.join(path, "tasks"), exc)
            return exp_id, path
        raise ExperimentError(f"could not allocate an experiment id for {name!r} in {self.experiments_dir}")

    def remove_experiment_dir(self, exp_id: str) -> None:
        """Remove the directory of an experiment whose creation failed (best effort: the disk may be full)."""
        import shutil

        path = os.path.join(self.experiments_dir, exp_id)
        if _ID.fullmatch(exp_id) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)

    def experiment_dir(self, exp_id: str) -> str:
        """The directory of experiment ``exp_id``.

        Raises:
            ExperimentError: no such experiment (with did-you-mean), or one the index lists whose directory is gone.
        """
        self.check_root()
        valid = isinstance(exp_id, str) and _ID.fullmatch(exp_id) is not None
        path = os.path.join(self.experiments_dir, exp_id) if valid else ""
        if valid and os.path.isdir(path):
            return path
        known = [e["id"] for e in self.list()]
        if valid and exp_id in known:
            what = "is a file, not a directory" if os.path.exists(path) else "is gone (deleted?)"
            raise ExperimentError(
                f"experiment {exp_id!r} is listed in {os.path.join(self.root, INDEX_FILE)} but its directory "
                f"{path} {what}; restore the directory, or drop the entry with "
                f"`python -c \"from nemorun_core.experiment.store import Store; Store({self.root!r}).forget("
                f"{exp_id!r})\"`"
            )
        raise ExperimentError(
            f"no experiment {exp_id!r} in {self.root}{did_you_mean(str(exp_id), known) or ''}"
            + ("" if known else " (the store is empty)")
            + "; list them with `nemorun experiment list`"
        )

    def task_dir(self, exp_dir: str, task: str) -> str:
        return os.path.join(exp_dir, "tasks", task)

    # -- files ------------------------------------------------------------------------------------------------------
    @staticmethod
    def write_json(path: str, data: Any) -> None:
        write_atomic(path, json.dumps(data, indent=1, sort_keys=False, default=str))

    @staticmethod
    def read_json(path: str) -> Any:
        """Tolerant read: None for a missing, empty or damaged file (for files that are only a cache)."""
        return read_json(path)

    @staticmethod
    def load_json(path: str, *, what: str, fix: str, empty_ok: bool = True) -> Any:
        """Strict read of a store file: None if it does not exist; a damaged one raises naming it.

        Args:
            what: what the file is for, in the message (``"the task's job handle"``).
            fix: what the user can do about it.

        Raises:
            StoreFileError (an ExperimentError): the file is not UTF-8 JSON (or is empty, unless ``empty_ok``).
        """
        try:
            return load_json(path, empty_ok=empty_ok)
        except StoreFileError as exc:
            raise StoreFileError(path, f"{what} {str(exc)[len(path) + 2:]}", fix) from None

    @staticmethod
    def write_text(path: str, text: str) -> None:
        write_atomic(path, text)

    # -- index ------------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        self.check_root()
        make_private_dirs(self.root)
        path = os.path.join(self.root, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
        except OSError as exc:
            raise_io_error(path, exc)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def record(self, exp_id: str, **fields: Any) -> None:
        """Append a change of experiment ``exp_id`` to the index (fields merge over earlier lines).

        A write cut short (a full disk) is undone, so the index never keeps a torn line that the next append would
        run into.

        Raises:
            NoSpaceError (an OSError): the disk is full; the index is as it was.
        """
        line = (json.dumps({"id": exp_id, "updated_at": time.time(), **fields}, default=str) + "\n").encode()
        path = os.path.join(self.root, INDEX_FILE)
        with self._index_lock():
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE)
            except OSError as exc:
                raise_io_error(path, exc)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # end the torn line a crashed writer left, so this one stays readable
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError(28, "short write")
                except OSError as exc:
                    os.ftruncate(fd, size)
                    raise_io_error(path, exc)
            finally:
                os.close(fd)

    def forget(self, exp_id: str) -> None:
        """Drop an experiment from the index (its directory, if any, is left alone)."""
        self.record(exp_id, deleted=True)

    def list(self) -> list[dict[str, Any]]:
        """Every experiment's merged index entry, oldest first. One file read, whatever the store's size.

        A damaged line (not UTF-8, not a JSON object, no valid ``id``) is skipped with a warning naming the file and
        line, and a field of the wrong type is dropped: the other experiments still list. An index that is missing
        or empty while experiment directories exist is rebuilt from their ``experiment.json``.
        """
        return self._entries(rebuild=True)

    def _entries(self, *, rebuild: bool) -> list[dict[str, Any]]:
        self.check_root()
        path = os.path.join(self.root, INDEX_FILE)
        merged = self._parse_index(path, _read_bytes(path))
        if rebuild and not merged and self._has_experiment_dirs():
            merged = self._rebuild_index(path)
        entries = [e for e in merged.values() if not e.get("deleted")]
        return sorted(entries, key=lambda e: (e.get("created_at") or 0, e["id"]))

    def _parse_index(self, path: str, data: bytes) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            problem, entry = _parse_line(raw)
            if problem:
                if number == len(lines) and problem == "not JSON":
                    continue  # the last line torn by a writer that is still appending (or crashed): not damage
                self._warn(f"{path} line {number}: {problem}; line skipped (the other experiments still list)")
                continue
            assert entry is not None
            for key, value in list(entry.items()):
                if not _field_ok(key, value):
                    self._warn(f"{path} line {number}: field {key!r} of {entry['id']!r} is {value!r}, "
                               "which is not valid; field ignored")
                    del entry[key]
            merged.setdefault(entry["id"], {}).update(entry)
        return merged

    def _has_experiment_dirs(self) -> bool:
        try:
            with os.scandir(self.experiments_dir) as it:
                return any(e.is_dir() for e in it)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _rebuild_index(self, path: str) -> dict[str, dict[str, Any]]:
        """The index rebuilt from each experiment's ``experiment.json`` (and ``outcome.json``), then saved under the
        index lock. Saving is best effort: a reader must answer even when the disk is full."""
        merged: dict[str, dict[str, Any]] = {}
        for name in sorted(os.listdir(self.experiments_dir)):
            entry = self._entry_from_dir(name)
            if entry is not None:
                merged[entry["id"]] = entry
        if not merged:
            return merged
        self._warn(f"{path} is missing or empty; rebuilt it from {len(merged)} experiment directories in "
                   f"{self.experiments_dir}")
        try:
            with self._index_lock():
                current = self._parse_index(path, _read_bytes(path))
                if current:
                    return current  # another process rebuilt it (or recorded something) meanwhile
                damaged = _read_bytes(path)
                if damaged.strip():
                    write_atomic(f"{path}.damaged", damaged)  # kept for a person to look at, never read again
                write_atomic(path, "".join(json.dumps(e, default=str) + "\n" for e in merged.values()))
        except OSError as exc:
            self._warn(f"could not save the rebuilt index {path}: {exc}")
        return merged

    def _entry_from_dir(self, name: str) -> dict[str, Any] | None:
        exp_dir = os.path.join(self.experiments_dir, name)
        if not _ID.fullmatch(name) or not os.path.isdir(exp_dir):
            return None
        meta_path = os.path.join(exp_dir, EXPERIMENT_FILE)
        try:
            meta = load_json(meta_path)
        except StoreFileError as exc:
            self._warn(f"{exc}; listed as broken")
            return {"id": name, "name": name, "title": f"(broken: {EXPERIMENT_FILE} is damaged)",
                    "state": JobState.UNKNOWN.value, "dir": exp_dir}
        if not isinstance(meta, dict):
            return None  # never finished being created (the launcher died or the disk was full): nothing to list
        outcome = read_json(os.path.join(exp_dir, OUTCOME_FILE)) or {}
        entry = {"id": name, "name": meta.get("name"), "title": meta.get("title"), "tags": meta.get("tags"),
                 "created_at": meta.get("created_at"), "dir": exp_dir,
                 "tasks": len(meta["tasks"]) if isinstance(meta.get("tasks"), list) else None,
                 "state": outcome.get("state") if isinstance(outcome, dict) else None,
                 "finished_at": outcome.get("finished_at") if isinstance(outcome, dict) else None}
        return {k: v for k, v in entry.items() if v is not None and _field_ok(k, v)}

    def compact(self) -> None:
        """Rewrite the index with one line per experiment (safe against concurrent appends: same lock)."""
        with self._index_lock():
            entries = self._entries(rebuild=False)  # a rebuild takes the lock itself: flock is not re-entrant
            if not entries:
                return  # nothing to compact (an empty index is rebuilt by the next list())
            write_atomic(os.path.join(self.root, INDEX_FILE), "".join(json.dumps(e) + "\n" for e in entries))

    def find_by_title(self, title: str) -> str:
        """The id of the most recent experiment with this title (or name)."""
        listed = self.list()
        entries = [e for e in listed if title in (e.get("title"), e.get("name"))]
        if not entries:
            titles = {e["title"] for e in listed if e.get("title")}
            raise ExperimentError(
                f"no experiment titled {title!r} in {self.root}{did_you_mean(title, titles) or ''}"
            )
        return entries[-1]["id"]


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _parse_line(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, None) for a damaged index line, (None, entry) for a good one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text", None
    try:
        entry = json.loads(text)
    except json.JSONDecodeError:
        return "not JSON", None
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object", None
    exp_id = entry.get("id")
    if not isinstance(exp_id, str) or not _ID.fullmatch(exp_id):
        return ("no experiment id" if exp_id is None else f"experiment id {exp_id!r} is not valid"), None
    return None, entry


def _field_ok(key: str, value: Any) -> bool:
    """Whether an index field has the type (and, for a state, a value) that readers expect."""
    if key == "tags":
        return isinstance(value, list) and all(isinstance(t, str) for t in value)
    types = _FIELD_TYPES.get(key)
    if types is None:
        return True  # a field this version does not know: kept as it is
    if isinstance(value, bool) and bool not in types:
        return False
    if not isinstance(value, types):
        return False
    # A state is one of JobState's, or another upper-case word a reader adds (INTERRUPTED): never free text.
    return key != "state" or value in _STATES or _STATE_WORD.fullmatch(value) is not None
