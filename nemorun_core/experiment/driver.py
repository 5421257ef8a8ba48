"""Who drives an experiment's task graph, whether it is still alive, and the detached driver process itself.

``python -m nemorun_core.experiment.driver HOME EXPERIMENT_ID`` is started by ``exp.run(detach=True)`` in its own
session. It loads the experiment from the store and runs the same scheduler as an attached run; tasks that already
have a handle are watched, not submitted again. SIGTERM (``exp.cancel()``) stops it from submitting anything more:
unsubmitted tasks end CANCELLED, running ones are cancelled.

The launcher record (``launcher.json`` in the experiment's directory) names the process that submits the tasks not
submitted yet: the process running an attached ``exp.run()`` or ``exp.resume()``, or the detached driver. It holds
the pid with the process's start time (so a reused pid is not taken for the launcher) and the host. When that process
is gone (``kill -9``, a crashed machine) and tasks were never submitted, nobody ever will submit them: the experiment
is INTERRUPTED, not RUNNING, and ``exp.resume()`` / ``nemorun experiment resume ID`` carries on from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from typing import Any, Iterable, Iterator

from nemorun_core.executors.procs import ended, proc_stat, signal_probe
from nemorun_core.experiment.store import EXPERIMENT_FILE, INFO_FILE, Store
from nemorun_core.jobfiles import JobFiles

LAUNCHER_FILE = "launcher.json"  # the experiment's launcher record, not a job's JobFiles.LAUNCHER
INTERRUPTED = "INTERRUPTED"  # an experiment state beside the JobState values: tasks left that nobody will submit


@dataclasses.dataclass(frozen=True)
class Launcher:
    """One launcher record. ``start`` is the process's start time in clock ticks since boot (``/proc``)."""

    pid: int
    start: str | None
    host: str
    role: str
    ended: bool = False

    def alive(self) -> bool | None:
        """True while the process runs, False once it is gone, None when this machine cannot tell (another host)."""
        if self.ended:
            return False
        if self.host != socket.gethostname():
            return None
        current = process_start(self.pid)
        if current is None:
            return False
        return self.start is None or current == self.start

    def describe(self) -> str:
        what = "detached driver" if self.role == "driver" else f"launching process ({self.role})"
        return f"its {what}, pid {self.pid} on {self.host}"


def process_start(pid: int) -> str | None:
    """The start time of a live process (field 22 of ``/proc/PID/stat``); None if it is gone or a zombie."""
    try:
        found = proc_stat(pid)
    except OSError:  # no /proc (macOS): a signal-0 probe, without pid-reuse protection
        return "" if signal_probe(pid) else None
    if found is None or ended(found[0]):
        return None  # gone, or a zombie: killed, not yet reaped by a parent that may never reap it
    return found[1]


def record_launcher(exp: Any, role: str, pid: int | None = None) -> None:
    """Record process ``pid`` (default: this one) as the launcher of ``exp``, before it submits anything."""
    pid = os.getpid() if pid is None else pid
    exp.store.write_json(os.path.join(exp.dir, LAUNCHER_FILE), {
        "pid": pid, "start": process_start(pid), "host": socket.gethostname(), "role": role, "since": time.time(),
    })


@contextlib.contextmanager
def claim_launcher(exp: Any, role: str) -> Iterator[None]:
    """Become the launcher of ``exp`` (for ``resume``), refusing while another launcher is alive.

    The check and the new record are made under a lock of the experiment, so two resumes at once cannot both go
    on to submit the same tasks. When the body raises, the claim is given up (the record is marked ended).

    Raises:
        ExperimentError: another launcher is alive (naming its pid), or its host is not this one.
    """
    import fcntl

    from nemorun_core.errors import ExperimentError

    with open(os.path.join(exp.dir, "launcher.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = read_launcher(exp.dir)
            alive = None if current is None else current.alive()
            if current is not None and alive is not False:
                state = ("is still running" if alive else
                         f"may still be running (this is {socket.gethostname()}: resume it on {current.host})")
                raise ExperimentError(
                    f"experiment {exp.id} is being run by {current.describe()}, which {state}; resuming now could "
                    f"submit its tasks twice. Follow it with `nemorun experiment status {exp.id} --watch`, or stop "
                    f"it (`kill {current.pid}`) and resume then")
            record_launcher(exp, role)
            try:
                yield
            except BaseException:
                launcher_ended(exp)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def launcher_ended(exp: Any) -> None:
    """Mark this process's launcher record ended (it submitted everything it could, or gave up); else leave it."""
    path = os.path.join(exp.dir, LAUNCHER_FILE)
    data = Store.read_json(path)
    if isinstance(data, dict) and data.get("pid") == os.getpid() and not data.get("ended_at"):
        exp.store.write_json(path, {**data, "ended_at": time.time()})


def read_launcher(exp_dir: str) -> Launcher | None:
    """The launcher record of the experiment in ``exp_dir``; None when there is none (or it is unreadable)."""
    try:
        data = Store.read_json(os.path.join(exp_dir, LAUNCHER_FILE))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    return Launcher(data["pid"], data.get("start"), str(data.get("host", "")), str(data.get("role", "run")),
                    bool(data.get("ended_at")))


def interruption(exp_id: str, exp_dir: str, unsubmitted: Iterable[str]) -> str | None:
    """Why the experiment is INTERRUPTED (its launcher is gone and tasks were never submitted), or None if it is not.

    ``unsubmitted``: the tasks that have no job and have not ended. Reading only: nothing is written.
    """
    names = list(unsubmitted)
    if not names:
        return None
    launcher = read_launcher(exp_dir)
    if launcher is None or launcher.alive() is not False:
        return None
    how = "ended" if launcher.ended else "is gone"
    return (f"{launcher.describe()} {how}, and {', '.join(names)} {'was' if len(names) == 1 else 'were'} never "
            f"submitted; carry on with `nemorun experiment resume {exp_id}` (or Experiment.from_id({exp_id!r})"
            f".resume())")


def stored_unsubmitted(store: Store, exp_dir: str) -> list[str]:
    """The tasks of a stored experiment with no job and no end state, read from its files (for listings)."""
    from nemorun_core.executors.base import JobState

    meta = Store.read_json(os.path.join(exp_dir, EXPERIMENT_FILE))
    if not isinstance(meta, dict):
        return []
    names = []
    for entry in meta.get("tasks") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        d = store.task_dir(exp_dir, name)
        if os.path.exists(JobFiles(d).handle):
            continue
        info = Store.read_json(os.path.join(d, INFO_FILE))
        state = ((info or {}).get("status") or {}).get("state") if isinstance(info, dict) else None
        if state in JobState._value2member_map_ and JobState(state).is_terminal:
            continue
        names.append(name)
    return names


def mark_interrupted(store: Store, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index entries with the state of each unfinished experiment whose launcher is gone set to INTERRUPTED.

    Only entries the index still calls unfinished are looked at (one small file each, more only for the rare one
    whose launcher is gone), so listing a large store stays about one file read.
    """
    from nemorun_core.executors.base import JobState

    out = []
    for entry in entries:
        state = entry.get("state")
        if state in JobState._value2member_map_ and not JobState(state).is_terminal and entry.get("id"):
            exp_dir = os.path.join(store.experiments_dir, str(entry["id"]))
            launcher = read_launcher(exp_dir)
            if launcher is not None and launcher.alive() is False:
                why = interruption(str(entry["id"]), exp_dir, stored_unsubmitted(store, exp_dir))
                if why:
                    entry = {**entry, "state": INTERRUPTED, "note": why}
        out.append(entry)
    return out


# -- the detached driver ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m nemorun_core.experiment.driver NEMORUN_HOME EXPERIMENT_ID", file=sys.stderr)
        return 2
    from nemorun_core.experiment.experiment import Experiment
    from nemorun_core.experiment.scheduler import Scheduler

    exp = Experiment.from_id(args[1], home=args[0])
    meta_options = launch_options(exp)
    scheduler = Scheduler(exp, limit=meta_options.get("max_concurrent"), tail_logs=False, quiet=False,
                          outage_timeout=meta_options.get("outage_timeout"))

    def stop(signum, _frame):  # noqa: ANN001
        scheduler._stop = True
        for spec in exp._tasks.values():
            if spec.handle is not None:
                spec.executor.cancel(spec.handle)

    signal.signal(signal.SIGTERM, stop)
    scheduler.run_to_end()
    return 0


def launch_options(exp: Any) -> dict[str, Any]:
    """The options ``exp.run`` was given (concurrency limit, outage limit), as recorded in ``experiment.json``."""
    meta = exp.store.read_json(os.path.join(exp.dir, EXPERIMENT_FILE))
    options = meta.get("options") if isinstance(meta, dict) else None
    return options if isinstance(options, dict) else {}


if __name__ == "__main__":
    sys.exit(main())
