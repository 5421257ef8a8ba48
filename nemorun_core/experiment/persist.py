"""Writing an experiment into the store and loading it back (``Experiment.from_id``)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Any

from nemorun_core._version import __version__
from nemorun_core.errors import ExperimentError, NemorunError, SerializationError
from nemorun_core.executors.base import JobHandle, JobState, JobStatus
from nemorun_core.executors.files import StoreFileError, make_private_dirs
from nemorun_core.experiment.store import EXPERIMENT_FILE, INFO_FILE, OUTCOME_FILE, Store, check_name
from nemorun_core.experiment.tasks import TaskSpec, UnloadedTask, task_payload
from nemorun_core.jobfiles import JobFiles
from nemorun_core.secrets import redact, restore

ORIGINAL_FILE = "config.json"  # a task as configured, when task.json holds it with its references resolved
ENVIRONMENT_FILE = "environment.json"
EXECUTOR_FILE = "executor.json"

log = logging.getLogger(__name__)


def _readable(value: Any) -> str:
    """YAML for people: the portable form when there is one, else a note and the repr."""
    from nemorun_core.config import serialize

    try:
        import yaml

        return yaml.safe_dump(redact(serialize.encode(value)), sort_keys=False)
    except SerializationError as exc:
        return f"# not exportable by name ({exc}); stored in the .json beside this file\n# {value!r}\n"


def materialize(exp: Any, options: dict[str, Any]) -> None:
    """Create the experiment's directory and write its metadata, tasks and executors (before any submission).

    All or nothing: if a write fails (a full disk), the directory is removed, no index line is written, and the
    experiment can be run again once there is space.
    """
    store: Store = exp.store
    exp.created_at = time.time()
    try:
        exp.id, exp.dir = store.create_experiment(exp.name, exp.created_at, exp_id=exp.requested_id)
        _write_experiment(exp, store, options)
    except BaseException:
        finish_snapshot(exp)  # it writes into the directory about to be removed
        if exp.id:
            store.remove_experiment_dir(exp.id)
        exp.id = exp.dir = exp._snapshot_thread = None
        exp._launched = False  # nothing was started: the same object may run again
        raise


def _write_experiment(exp: Any, store: Store, options: dict[str, Any]) -> None:
    from nemorun_core.experiment.jobref import executor_config

    for spec in exp._tasks.values():
        d = store.task_dir(exp.dir, spec.name)
        make_private_dirs(d)
        # task.json is both the stored configuration and the runner's input; a task whose references get resolved
        # at submission keeps its unresolved original in config.json (scheduler._submit).
        store.write_text(JobFiles(d).task, json.dumps(task_payload(spec)))
        store.write_text(os.path.join(d, EXECUTOR_FILE), json.dumps(executor_config(spec.executor)))
    # What is only for people (the environment snapshot lists every installed package; the YAML views) is written
    # beside the launch rather than before it; run() waits for it before returning.
    snap = threading.Thread(target=_write_for_people, args=(exp.dir, list(exp._tasks.values())), daemon=True,
                            name="nemorun-snapshot")
    snap.start()
    exp._snapshot_thread = snap
    store.write_json(os.path.join(exp.dir, EXPERIMENT_FILE), {
        "id": exp.id, "name": exp.name, "title": exp.title, "description": exp.description, "tags": exp.tags,
        "created_at": exp.created_at, "nemorun_version": __version__, "options": options,
        "tasks": [{"name": s.name, "dependencies": s.dependencies, "kind": s.kind, "executor": s.executor.backend}
                  for s in exp._tasks.values()],
    })
    store.record(exp.id, name=exp.name, title=exp.title, tags=exp.tags, created_at=exp.created_at,
                 state=JobState.RUNNING.value, tasks=len(exp._tasks), dir=exp.dir)


def _write_for_people(exp_dir: str, specs: list[TaskSpec]) -> None:
    from nemorun_core.experiment.envsnap import snapshot

    try:
        for spec in specs:
            d = os.path.join(exp_dir, "tasks", spec.name)
            Store.write_text(os.path.join(d, "task.yaml"), _readable(spec.task))
            Store.write_text(os.path.join(d, "executor.yaml"), _readable(spec.executor))
        Store.write_json(os.path.join(exp_dir, ENVIRONMENT_FILE), snapshot())
    except OSError as exc:
        if os.path.isdir(exp_dir):  # else the experiment was deleted while we wrote: nothing to keep
            log.warning("nemorun: warning: the readable copies of experiment %s are incomplete: %s", exp_dir, exc)


def finish_snapshot(exp: Any) -> None:
    thread = getattr(exp, "_snapshot_thread", None)
    if thread is not None:
        thread.join()


def _write_info(store: Store, task_dir: str, spec: TaskSpec) -> None:
    status = spec.status or JobStatus(JobState.PENDING, "", "not submitted yet")
    store.write_json(os.path.join(task_dir, INFO_FILE), {
        "name": spec.name, "dependencies": spec.dependencies, "plugins": spec.plugins,
        "status": status.to_dict(), "updated_at": time.time(),
    })


def _best_effort(what: str, write: Any) -> bool:
    """Run a store write whose failure must not stop the caller; warn instead.

    The states saved here are a cache of what the backends say (a later refresh asks them again), and reading an
    experiment's status must answer on a full disk too. Returns whether the write happened.
    """
    try:
        write()
        return True
    except OSError as exc:
        log.warning("nemorun: warning: could not record %s: %s", what, exc)
        return False


def save_original(exp: Any, spec: TaskSpec) -> None:
    """Keep the task as configured (with its ``{name.output}`` references) before task.json gets the resolved one."""
    exp.store.write_text(os.path.join(exp.store.task_dir(exp.dir, spec.name), ORIGINAL_FILE),
                         json.dumps(task_payload(spec)))


def save_handle(exp: Any, spec: TaskSpec) -> None:
    """Keep the handle in the task's store directory (the local executor already wrote it there: its job dir).

    The handle is the only way back to the job, so it is not best effort: when it cannot be written (a full disk),
    the job is cancelled rather than left running unfollowed, and the error names the path.
    """
    assert spec.handle is not None
    task_dir = exp.store.task_dir(exp.dir, spec.name)
    if os.path.abspath(spec.handle.job_dir) != os.path.abspath(task_dir):
        try:
            exp.store.write_text(JobFiles(task_dir).handle, spec.handle.to_json())
        except OSError:
            spec.executor.cancel(spec.handle)
            raise


def save_states(exp: Any, statuses: dict[str, JobStatus]) -> None:
    """Record the tasks' states in their ``info.json`` (best effort: a failed write is a warning)."""
    for name, status in statuses.items():
        spec = exp._tasks[name]
        spec.status = status
        task_dir = exp.store.task_dir(exp.dir, name)
        _best_effort(f"the state of task {name!r}", lambda: _write_info(exp.store, task_dir, spec))


def reload_unsubmitted(exp: Any) -> None:
    """Pick up handles and states that another process (the detached driver) wrote since this one loaded."""
    for spec in exp._tasks.values():
        if spec.handle is not None:
            continue
        d = exp.store.task_dir(exp.dir, spec.name)
        handle = _load_handle(d, spec.name)
        if handle is not None:
            spec.handle = handle
        status = _load_status(d, spec.name)
        if status is not None:
            spec.status = status


def record_outcome(exp: Any) -> None:
    """Record the experiment's final state in the index once every task has ended (once per state).

    Best effort (a warning when the disk is full): every reader that sees the experiment ended tries again, so
    the index does not keep it RUNNING once there is space.
    """
    states = [s.status.state if s.status else JobState.PENDING for s in exp._tasks.values()]
    if not all(s.is_terminal for s in states):
        return
    overall = (JobState.FAILED if JobState.FAILED in states else
               JobState.CANCELLED if JobState.CANCELLED in states else JobState.SUCCEEDED)
    marker = os.path.join(exp.dir, OUTCOME_FILE)
    recorded = Store.read_json(marker)
    if isinstance(recorded, dict) and recorded.get("state") == overall.value:
        return  # already in the index: refreshing a finished experiment appends nothing
    finished = time.time()
    what = f"the outcome ({overall.value}) of experiment {exp.id!r}"
    if _best_effort(what, lambda: exp.store.record(exp.id, state=overall.value, finished_at=finished)):
        _best_effort(what, lambda: Store.write_json(marker, {"state": overall.value, "finished_at": finished}))


def read_environment(exp: Any) -> Any:
    finish_snapshot(exp)
    return Store.read_json(os.path.join(exp.dir, ENVIRONMENT_FILE))


def load(cls: type, store: Store, exp_id: str) -> Any:
    """Rebuild an Experiment (tasks, executors, handles, last states) from the store.

    A task whose code is not importable here still loads (status, logs and cancel do not need it). A damaged store
    file raises an ExperimentError that names the file and what to do; nothing is guessed, so a succeeded task never
    silently loses its result.
    """
    exp_dir = store.experiment_dir(exp_id)
    meta_path = os.path.join(exp_dir, EXPERIMENT_FILE)
    meta = _load_meta(store, meta_path, exp_dir)
    try:
        exp = cls(name=meta["name"], title=meta.get("title"), description=str(meta.get("description") or ""),
                  tags=meta.get("tags") or (), home=store.root)
    except ExperimentError as exc:
        raise StoreFileError(meta_path, f"holds an invalid experiment ({exc})",
                             f"restore it from a backup, or remove {exp_dir}") from None
    exp.id, exp.dir = exp_id, exp_dir
    exp.created_at = meta["created_at"] if isinstance(meta.get("created_at"), (int, float)) else None
    exp._launched = True
    for entry in meta["tasks"]:
        spec = _load_task(store, exp_id, store.task_dir(exp_dir, entry["name"]), entry)
        exp._tasks[spec.name] = spec
    return exp


def _load_meta(store: Store, path: str, exp_dir: str) -> dict[str, Any]:
    """``experiment.json``, checked for the fields loading relies on."""
    fix = f"restore it from a backup, or remove {exp_dir}"
    meta = store.load_json(path, what="(the experiment's metadata)", fix=fix)
    if meta is None:
        raise ExperimentError(
            f"experiment {os.path.basename(exp_dir)!r} has no {EXPERIMENT_FILE} in {exp_dir}: its creation did not "
            f"finish (the launcher was killed, or the disk was full); remove {exp_dir}"
        )
    tasks = meta.get("tasks") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(tasks, list):
        raise StoreFileError(path, "(the experiment's metadata) lacks a 'name' string or a 'tasks' list", fix)
    for i, entry in enumerate(tasks):
        try:
            if not isinstance(entry, dict):
                raise ExperimentError(f"is a {type(entry).__name__}, not an object")
            check_name(entry.get("name"), "task name")  # it is a path component: never '../x'
            deps = entry.get("dependencies", [])
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                raise ExperimentError(f"has dependencies {deps!r}, not a list of task names")
        except ExperimentError as exc:
            raise StoreFileError(path, f"task {i} {exc}", fix) from None
    return meta


def _load_task(store: Store, exp_id: str, d: str, entry: dict[str, Any]) -> TaskSpec:
    from nemorun_core.config import serialize

    name = entry["name"]
    try:
        stored = (store.load_json(os.path.join(d, ORIGINAL_FILE), what="(the task as configured)", fix="")
                  or store.load_json(JobFiles(d).task, what="(the task)", fix=""))
        task = serialize.decode(stored["task"])
    except Exception as exc:  # the task's code is not importable here: status, logs, cancel still work
        task = UnloadedTask(entry.get("kind", "partial"), f"{type(exc).__name__}: {exc}")
    executor_path = os.path.join(d, EXECUTOR_FILE)
    fix = f"restore it from a backup, or rerun the experiment (`nemorun experiment rerun {exp_id}`)"
    config = store.load_json(executor_path, what="(the task's executor)", fix=fix, empty_ok=False)
    if not isinstance(config, dict):
        problem = "is missing" if config is None else f"holds a JSON {type(config).__name__}, not an executor"
        raise StoreFileError(executor_path, f"(the executor of task {name!r}) {problem}", fix)
    try:
        executor = serialize.decode(restore(config))
    except NemorunError as exc:
        raise StoreFileError(executor_path, f"(the executor of task {name!r}) cannot be loaded: {exc}", fix) from None
    except Exception as exc:
        raise StoreFileError(executor_path, f"(the executor of task {name!r}) cannot be loaded: "
                                            f"{type(exc).__name__}: {exc}", fix) from exc
    info = _load_info(d)
    plugins = info.get("plugins", [])
    spec = TaskSpec(name, task, executor, list(entry.get("dependencies", [])),
                    [str(p) for p in plugins] if isinstance(plugins, list) else [])
    spec.handle = _load_handle(d, name)
    spec.status = _load_status(d, name, info)
    return spec


def _load_info(task_dir: str) -> dict[str, Any]:
    path = os.path.join(task_dir, INFO_FILE)
    fix = "delete it: the task's state is then asked from its backend again (a never-submitted task shows PENDING)"
    info = Store.load_json(path, what="(the task's last known state)", fix=fix)
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise StoreFileError(path, f"(the task's last known state) is a JSON {type(info).__name__}, not an object",
                             fix)
    return info


def _load_status(task_dir: str, name: str, info: dict[str, Any] | None = None) -> JobStatus | None:
    """The state recorded in ``info.json``; a state this version does not know is an error naming the file."""
    raw = (_load_info(task_dir) if info is None else info).get("status")
    if not raw:
        return None
    try:
        return JobStatus.from_dict(raw)
    except (ValueError, KeyError, TypeError, AttributeError):
        known = ", ".join(s.value for s in JobState)
        shown = raw.get("state") if isinstance(raw, dict) else raw
        raise StoreFileError(
            os.path.join(task_dir, INFO_FILE), f"holds an unknown state {shown!r} for task {name!r} (known: {known})",
            "correct the state, or delete the file: the task's state is then asked from its backend again",
        ) from None


def _load_handle(task_dir: str, name: str) -> JobHandle | None:
    """The task's job handle; None if it was never submitted. Damaged: an error naming the file, never None,
    since without the handle a succeeded task's result would silently read as missing."""
    path = JobFiles(task_dir).handle
    fix = ("without it the job's status, logs and result cannot be found: restore it from a backup, or rerun "
           "the task")
    data = Store.load_json(path, what=f"(the job handle of task {name!r})", fix=fix, empty_ok=False)
    if data is None:
        return None
    try:
        if not isinstance(data, dict):
            raise ExperimentError(f"is a JSON {type(data).__name__}, not an object")
        return JobHandle.from_dict(data)
    except (NemorunError, ValueError, TypeError, AttributeError) as exc:
        raise StoreFileError(path, f"(the job handle of task {name!r}) is not a valid handle: {exc}", fix) from None


def cancel_driver(exp: Any) -> None:
    """Stop the detached driver of this experiment (it then marks its unsubmitted tasks CANCELLED).

    Only a driver that is alive by its launcher record (same pid AND same process start time) is signalled, so a
    pid reused by another process after the driver died is never touched.
    """
    from nemorun_core.experiment.driver import read_launcher

    launcher = read_launcher(exp.dir)
    if launcher is None or launcher.role != "driver" or launcher.pid <= 0 or launcher.pid == os.getpid():
        return
    if launcher.alive() is not True:
        return
    try:
        os.kill(launcher.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
