"""Writing an experiment into the store and loading it back (``Experiment.from_id``)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from nemorun_core._version import __version__
from nemorun_core.errors import ExperimentError, SerializationError
from nemorun_core.executors.base import JobHandle, JobState, JobStatus
from nemorun_core.experiment.store import Store
from nemorun_core.experiment.tasks import TaskSpec, UnloadedTask, task_payload
from nemorun_core.runner import TASK_FILE
from nemorun_core.secrets import redact, restore

ORIGINAL_FILE = "config.json"  # a task as configured, when task.json holds it with its references resolved
EXPERIMENT_FILE = "experiment.json"
ENVIRONMENT_FILE = "environment.json"
DRIVER_FILE = "driver.json"
OUTCOME_FILE = "outcome.json"


def _readable(value: Any) -> str:
    """YAML for people: the portable form when there is one, else a note and the repr."""
    from nemorun_core.config import serialize

    try:
        import yaml

        return yaml.safe_dump(redact(serialize.encode(value)), sort_keys=False)
    except SerializationError as exc:
        return f"# not exportable by name ({exc}); stored in the .json beside this file\n# {value!r}\n"


def materialize(exp: Any, options: dict[str, Any]) -> None:
    """Create the experiment's directory and write its metadata, tasks and executors (before any submission)."""
    from nemorun_core.experiment.jobref import executor_config

    store: Store = exp.store
    exp.created_at = time.time()
    exp.id, exp.dir = store.create_experiment(exp.name, exp.created_at)
    for spec in exp._tasks.values():
        d = store.task_dir(exp.dir, spec.name)
        os.makedirs(d, exist_ok=True)
        # task.json is both the stored configuration and the runner's input; a task whose references get resolved
        # at submission keeps its unresolved original in config.json (scheduler._submit).
        store.write_text(os.path.join(d, TASK_FILE), json.dumps(task_payload(spec)))
        store.write_text(os.path.join(d, "executor.json"),
                         json.dumps(executor_config(spec.executor)))
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
    except OSError:
        pass  # the experiment was deleted while we wrote; nothing to keep


def finish_snapshot(exp: Any) -> None:
    thread = getattr(exp, "_snapshot_thread", None)
    if thread is not None:
        thread.join()


def _write_info(store: Store, task_dir: str, spec: TaskSpec) -> None:
    status = spec.status or JobStatus(JobState.PENDING, "", "not submitted yet")
    store.write_json(os.path.join(task_dir, "info.json"), {
        "name": spec.name, "dependencies": spec.dependencies, "plugins": spec.plugins,
        "status": status.to_dict(), "updated_at": time.time(),
    })


def save_original(exp: Any, spec: TaskSpec) -> None:
    """Keep the task as configured (with its ``{name.output}`` references) before task.json gets the resolved one."""
    exp.store.write_text(os.path.join(exp.store.task_dir(exp.dir, spec.name), ORIGINAL_FILE),
                         json.dumps(task_payload(spec)))


def save_handle(exp: Any, spec: TaskSpec) -> None:
    """Keep the handle in the task's store directory (the local executor already wrote it there: its job dir)."""
    assert spec.handle is not None
    task_dir = exp.store.task_dir(exp.dir, spec.name)
    if os.path.abspath(spec.handle.job_dir) != os.path.abspath(task_dir):
        exp.store.write_text(os.path.join(task_dir, "handle.json"), spec.handle.to_json())


def save_states(exp: Any, statuses: dict[str, JobStatus]) -> None:
    for name, status in statuses.items():
        spec = exp._tasks[name]
        spec.status = status
        _write_info(exp.store, exp.store.task_dir(exp.dir, name), spec)


def reload_unsubmitted(exp: Any) -> None:
    """Pick up handles and states that another process (the detached driver) wrote since this one loaded."""
    for spec in exp._tasks.values():
        if spec.handle is not None:
            continue
        d = exp.store.task_dir(exp.dir, spec.name)
        handle = Store.read_json(os.path.join(d, "handle.json"))
        if handle:
            spec.handle = JobHandle.from_dict(handle)
        info = Store.read_json(os.path.join(d, "info.json")) or {}
        if info.get("status"):
            spec.status = JobStatus.from_dict(info["status"])


def record_outcome(exp: Any) -> None:
    """Record the experiment's final state in the index once every task has ended (once per state)."""
    states = [s.status.state if s.status else JobState.PENDING for s in exp._tasks.values()]
    if not all(s.is_terminal for s in states):
        return
    overall = (JobState.FAILED if JobState.FAILED in states else
               JobState.CANCELLED if JobState.CANCELLED in states else JobState.SUCCEEDED)
    marker = os.path.join(exp.dir, OUTCOME_FILE)
    if (Store.read_json(marker) or {}).get("state") == overall.value:
        return  # already in the index: refreshing a finished experiment appends nothing
    finished = time.time()
    exp.store.record(exp.id, state=overall.value, finished_at=finished)
    Store.write_json(marker, {"state": overall.value, "finished_at": finished})


def read_environment(exp: Any) -> Any:
    finish_snapshot(exp)
    return Store.read_json(os.path.join(exp.dir, ENVIRONMENT_FILE))


def load(cls: type, store: Store, exp_id: str) -> Any:
    """Rebuild an Experiment (tasks, executors, handles, last states) from the store."""
    from nemorun_core.config import serialize

    exp_dir = store.experiment_dir(exp_id)
    meta = store.read_json(os.path.join(exp_dir, EXPERIMENT_FILE))
    if not meta:
        raise ExperimentError(f"experiment {exp_id!r} in {exp_dir} has no readable {EXPERIMENT_FILE}")
    exp = cls(meta["name"], title=meta.get("title"), description=meta.get("description", ""),
              tags=meta.get("tags", ()), home=store.root)
    exp.id, exp.dir, exp.created_at = meta["id"], exp_dir, meta.get("created_at")
    exp._launched = True
    for entry in meta.get("tasks", []):
        d = store.task_dir(exp_dir, entry["name"])
        try:
            stored = store.read_json(os.path.join(d, ORIGINAL_FILE)) or store.read_json(os.path.join(d, TASK_FILE))
            task = serialize.decode(stored["task"])
        except Exception as exc:  # the task's code is not importable here: status, logs, cancel still work
            task = UnloadedTask(entry.get("kind", "partial"), f"{type(exc).__name__}: {exc}")
        try:
            executor = serialize.decode(restore(store.read_json(os.path.join(d, "executor.json"))))
        except Exception as exc:
            raise ExperimentError(
                f"cannot load task {entry['name']!r} of experiment {exp_id!r}: {type(exc).__name__}: {exc}"
            ) from exc
        info = store.read_json(os.path.join(d, "info.json")) or {}
        spec = TaskSpec(entry["name"], task, executor, list(entry.get("dependencies", [])), info.get("plugins", []))
        handle = store.read_json(os.path.join(d, "handle.json"))
        if handle:
            spec.handle = JobHandle.from_dict(handle)
        if info.get("status"):
            spec.status = JobStatus.from_dict(info["status"])
        exp._tasks[spec.name] = spec
    return exp


def write_driver(exp: Any, pid: int) -> None:
    exp.store.write_json(os.path.join(exp.dir, DRIVER_FILE), {"pid": pid, "started_at": time.time()})


def cancel_driver(exp: Any) -> None:
    """Stop the detached driver of this experiment (it then marks its unsubmitted tasks CANCELLED)."""
    data = Store.read_json(os.path.join(exp.dir, DRIVER_FILE))
    if not data or data.get("pid") == os.getpid():
        return
    try:
        os.kill(int(data["pid"]), signal.SIGTERM)
    except (ProcessLookupError, PermissionError, ValueError):
        pass
