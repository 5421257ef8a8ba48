"""Running an experiment's task graph: submit what is ready, watch what runs, skip what can no longer run.

The scheduler works from whatever state the tasks are in (a task with a handle is watched, not submitted again), so
the same loop serves an attached ``exp.run()``, the detached driver, and a driver resumed after a crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Iterable, Iterator

from nemorun_core.errors import BackendUnavailableError, ExperimentError, NemorunError
from nemorun_core.executors.base import SUBMISSION_BATCH, Capability, JobState, JobStatus
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.executors.outage import Outage, OutageError
from nemorun_core.experiment import driver, persist
from nemorun_core.experiment.tasks import TaskSpec, make_job, referenced_tasks, resolve_references

_FIRST_WAIT = 0.01
_MAX_WAIT = 1.0


def task_key(exp: Any, name: str) -> str:
    """The stable key of task ``name``'s job (scope: the experiment id; one attempt, 0), recorded in the backend so a
    later process finds the job again."""
    return str(JobKey(exp.id, name, 0))


def follow_lines(executor: Any, handle: Any, *, offset: int, outage: Outage) -> Iterator[str]:
    """``executor.logs(handle, follow=True)`` from line ``offset``, carried through backend outages by ``outage``.

    A follow cut by ``BackendUnavailableError`` starts again after the last line yielded, once the backend
    answers a status call again (which also ends the outage: a later one gets the whole limit again).
    """
    while True:
        try:
            for line in executor.logs(handle, follow=True, offset=offset):
                offset += 1
                yield line
            return
        except OutageError:
            raise
        except BackendUnavailableError as exc:
            outage.failed(exc)  # waits its backoff, or raises OutageError past the limit
            outage.call(lambda: executor.status(handle))


def _batch_key(spec: TaskSpec) -> Any:
    return spec.executor.batch_key()


def _groups(specs: Iterable[TaskSpec]) -> dict[Any, list[TaskSpec]]:
    """Tasks grouped so that one ``status_many`` call per group answers for all of them."""
    groups: dict[Any, list[TaskSpec]] = {}
    for spec in specs:
        if spec.handle is not None:
            groups.setdefault(_batch_key(spec), []).append(spec)
    return groups


def poll(specs: Iterable[TaskSpec]) -> dict[str, JobStatus]:
    """Current status of every submitted task in ``specs``, one backend call per executor group."""
    out: dict[str, JobStatus] = {}
    for group in _groups(specs).values():
        statuses = group[0].executor.status_many([s.handle for s in group])
        for spec in group:
            out[spec.name] = statuses[spec.handle]
    return out


class Scheduler:
    """Runs one experiment's graph in this process (attached run, resume, or the detached driver).

    Every backend call of the loop (polls, log reads, submissions, waits) goes through one :class:`Outage`: a
    backend that cannot be reached (a cut SSH session) is retried with backoff for up to ``outage_timeout``
    seconds while the jobs keep running, then ``OutageError`` says which jobs still run and how to re-attach.
    Retrying a submission is safe because submission is idempotent by the job's key.
    """

    def __init__(self, exp: Any, *, limit: int | None, tail_logs: bool, quiet: bool, prefix_logs: bool = True,
                 outage_timeout: float | None = None):
        self.exp = exp
        self.limit = limit
        # Every task's log (run(tail_logs=True)), or only those added with exp.add(..., tail_logs=True).
        self.tailed = {s.name for s in exp._tasks.values() if tail_logs or s.tail_logs}
        self.tail_logs = bool(self.tailed)
        self.quiet = quiet
        self.prefix_logs = prefix_logs and len(exp._tasks) > 1
        self._offsets: dict[str, int] = {}
        self._stop = False
        # Backends (by batch key) that answered in this run: jobs were submitted there or are followed there.
        self._reached: set[Any] = {_batch_key(s) for s in exp._tasks.values() if s.handle is not None}
        self._outage = Outage(outage_timeout, describe=lambda: running_jobs(exp),
                              reattach=lambda: f"`nemorun experiment resume {exp.id}` (or `nemorun experiment logs "
                                               f"{exp.id} TASK -f` to follow one task)")

    # -- reporting ----------------------------------------------------------------------------------------------------
    def _report(self, spec: TaskSpec) -> None:
        if self.quiet or spec.status is None:
            return
        st = spec.status
        extra = f" ({st.message})" if st.message else ""
        print(f"[{self.exp.id}] {spec.name}: {st.state.value}{extra}", file=sys.stderr, flush=True)

    def _tail(self, specs: Iterable[TaskSpec]) -> None:
        for spec in specs:
            if spec.handle is not None and spec.name in self.tailed:
                self._outage.call(lambda: self._tail_one(spec))

    def _tail_one(self, spec: TaskSpec) -> None:
        # The offset moves with each printed line, so a read cut by an outage resumes after the last line printed.
        for line in spec.executor.logs(spec.handle, offset=self._offsets.get(spec.name, 0)):
            print(f"[{spec.name}] {line}" if self.prefix_logs else line, flush=True)
            self._offsets[spec.name] = self._offsets.get(spec.name, 0) + 1

    # -- one task -----------------------------------------------------------------------------------------------------
    def _submit(self, spec: TaskSpec) -> None:
        exp = self.exp
        job_dir = exp.store.task_dir(exp.dir, spec.name)

        def lookup(name: str, field: str) -> Any:
            dep = exp._tasks[name]
            if field == "dir":
                return dep.handle.job_dir if dep.handle else exp.store.task_dir(exp.dir, name)
            from nemorun_core.experiment.results import read_result

            return read_result(dep)

        task = resolve_references(spec.task, lookup)
        if spec.dependencies and referenced_tasks(spec.task):
            persist.save_original(exp, spec)
        job = make_job(spec, task_key(exp, spec.name), job_dir, task)
        # Dependencies still running are left to the backend (Slurm --dependency); finished ones need nothing.
        job.depends_on = [exp._tasks[d].handle for d in spec.dependencies
                          if exp._tasks[d].handle is not None and not (exp._tasks[d].status and
                                                                      exp._tasks[d].status.is_terminal)]
        spec.handle = spec.executor.submit(job)
        persist.save_handle(exp, spec)
        # No info.json yet: a task with a handle and no recorded state is asked from its executor.
        spec.status = JobStatus(JobState.RUNNING if spec.executor.backend == "local" else JobState.PENDING,
                                "submitted")

    def _natively_ready(self, spec: TaskSpec, done: dict[str, JobState]) -> bool:
        """Whether ``spec`` can be submitted now with its unfinished dependencies handed to the backend."""
        if not spec.executor.supports(Capability.DEPENDENCIES) or referenced_tasks(spec.task):
            return False
        key = _batch_key(spec)
        for name in spec.dependencies:
            dep = self.exp._tasks[name]
            if done.get(name) is JobState.SUCCEEDED:
                continue
            if dep.handle is None or name in done or _batch_key(dep) != key:
                return False
        return True

    # -- the loop -----------------------------------------------------------------------------------------------------
    def run_to_end(self) -> None:
        token = SUBMISSION_BATCH.set(self.exp.id)
        try:
            self._run_to_end()
        finally:
            SUBMISSION_BATCH.reset(token)

    def _run_to_end(self) -> None:
        tasks: dict[str, TaskSpec] = self.exp._tasks
        done: dict[str, JobState] = {}
        running: dict[str, TaskSpec] = {}
        for spec in tasks.values():
            if spec.status is not None and spec.status.is_terminal:
                done[spec.name] = spec.status.state
            elif spec.handle is not None:
                running[spec.name] = spec
        pending = [n for n in tasks if n not in done and n not in running]
        wait = _FIRST_WAIT
        try:
            while pending or running:
                progressed = self._skip_blocked(pending, done) | self._launch_ready(pending, running, done)
                if self._stop:
                    self._cancel_pending(pending, done)
                statuses = self._outage.call(lambda: poll(running.values())) if running else {}
                if self.tail_logs:
                    self._tail(tasks.values())  # before the state lines, so a task's output precedes its end
                for name, status in statuses.items():
                    spec = tasks[name]
                    if status != spec.status:
                        persist.save_states(self.exp, {name: status})
                        self._report(spec)
                    if status.is_terminal:
                        if status.native.startswith("PENDING"):
                            spec.executor.cancel(spec.handle)  # can never start (a dependency failed): dequeue it
                        done[name] = status.state
                        del running[name]
                        progressed = True
                if progressed:
                    wait = _FIRST_WAIT
                    continue
                if not running:
                    break
                group = list(running.values())
                executor = group[0].executor
                if all(type(s.executor) is type(executor) for s in group):
                    self._outage.call(lambda: executor.wait_any(
                        [s.handle for s in group], min(wait, 0.25 if self.tail_logs else _MAX_WAIT)))
                else:
                    time.sleep(wait)
                wait = min(wait * 2, _MAX_WAIT)
        finally:
            try:
                if self.tail_logs and not self._outage.ongoing:
                    self._tail(tasks.values())
            finally:
                driver.launcher_ended(self.exp)
                persist.record_outcome(self.exp)
                persist.finish_snapshot(self.exp)

    def _skip_blocked(self, pending: list[str], done: dict[str, JobState]) -> bool:
        progressed = False
        for name in list(pending):
            spec = self.exp._tasks[name]
            blocked = next(((d, done[d]) for d in spec.dependencies if d in done and done[d] is not JobState.SUCCEEDED),
                           None)
            if blocked:
                status = JobStatus(JobState.CANCELLED, "not-run",
                                   f"not run: dependency {blocked[0]!r} ended {blocked[1].value}")
                persist.save_states(self.exp, {name: status})
                self._report(spec)
                done[name] = JobState.CANCELLED
                pending.remove(name)
                progressed = True
        return progressed

    def _launch_ready(self, pending: list[str], running: dict[str, TaskSpec], done: dict[str, JobState]) -> bool:
        progressed = False
        for name in list(pending):
            if self._stop or (self.limit is not None and len(running) >= self.limit):
                break
            spec = self.exp._tasks[name]
            if not all(done.get(d) is JobState.SUCCEEDED for d in spec.dependencies) and \
                    not self._natively_ready(spec, done):
                continue
            pending.remove(name)
            progressed = True
            try:
                self._submit_once_reachable(spec)
            except OutageError:
                raise  # the backend stayed away: the task has not failed, it was never submitted (resume it)
            except NemorunError as exc:
                persist.save_states(self.exp, {name: JobStatus(JobState.FAILED, "not-submitted",
                                                               f"submission failed: {exc}")})
                self._report(spec)
                done[name] = JobState.FAILED
                continue
            running[name] = spec
        return progressed

    def _submit_once_reachable(self, spec: TaskSpec) -> None:
        """Submit ``spec``, through an outage only if its backend has answered in this run.

        A backend that answered before and stops answering is an outage, worth waiting for; one that never answered
        is more likely a wrong host or port, which should fail now rather than after the outage limit.
        """
        key = _batch_key(spec)
        if key in self._reached:
            self._outage.call(lambda: self._submit(spec))
        else:
            self._submit(spec)
            self._reached.add(key)

    def _cancel_pending(self, pending: list[str], done: dict[str, JobState]) -> None:
        for name in list(pending):
            persist.save_states(self.exp, {name: JobStatus(JobState.CANCELLED, "not-run", "experiment cancelled")})
            done[name] = JobState.CANCELLED
            pending.remove(name)

    # -- detached -----------------------------------------------------------------------------------------------------
    def launch_detached(self) -> None:
        """Submit what can start now; hand the rest of the graph to a detached driver process.

        Without a concurrency limit, a graph whose every dependency the backend can hold itself (Slurm jobs on one
        cluster, no output references) is submitted at once, in order, and needs no driver.
        """
        token = SUBMISSION_BATCH.set(self.exp.id)
        try:
            self._launch_detached()
        finally:
            SUBMISSION_BATCH.reset(token)

    def _launch_detached(self) -> None:
        tasks = self.exp._tasks
        native = all(not s.dependencies or (s.executor.supports(Capability.DEPENDENCIES) and not referenced_tasks(s.task)
                                            and all(_batch_key(tasks[d]) == _batch_key(s) for d in s.dependencies))
                     for s in tasks.values())
        needs_driver = self.limit is not None or not native
        if not needs_driver:
            for spec in tasks.values():  # insertion order is a topological order: dependencies are added first
                if spec.handle is not None or (spec.status is not None and spec.status.is_terminal):
                    continue  # a resumed experiment: submitted before, or ended
                try:
                    self._submit(spec)
                except NemorunError as exc:
                    persist.save_states(self.exp, {spec.name: JobStatus(JobState.FAILED, "not-submitted",
                                                                        f"submission failed: {exc}")})
                self._report(spec)
            driver.launcher_ended(self.exp)
            persist.finish_snapshot(self.exp)
            return
        log = open(os.path.join(self.exp.dir, "driver.log"), "ab")
        with log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nemorun_core.experiment.driver", self.exp.store.root, self.exp.id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*sys.path]))},
            )
        # Recorded here, not by the driver when it starts: this process may exit before the driver gets that far,
        # and the experiment must never look launcher-less meanwhile.
        driver.record_launcher(self.exp, "driver", proc.pid)
        persist.finish_snapshot(self.exp)
        if not self.quiet:
            print(f"[{self.exp.id}] detached: a driver process (pid {proc.pid}) runs the task graph; follow it with "
                  f"`nemorun experiment status {self.exp.id}`", file=sys.stderr)


def running_jobs(exp: Any) -> str:
    """The submitted, unfinished tasks of ``exp`` with their jobs, for messages: ``task 'a' (slurm job 7, key K)``."""
    live = [s for s in exp._tasks.values() if s.handle is not None and not (s.status and s.status.is_terminal)]
    if not live:
        return f"experiment {exp.id}"
    return ", ".join(f"task {s.name!r} ({s.handle.backend} job {s.handle.job_id}, key {s.handle.key})" for s in live)


def wait_all(exp: Any, *, timeout: float | None = None, outage_timeout: float | None = None) -> dict[str, JobStatus]:
    """Block until every task of ``exp`` is terminal (or the timeout passes); return the statuses.

    Rides out a backend outage of up to ``outage_timeout`` seconds (see ``nemorun_core.executors.outage``).

    Raises:
        ExperimentError: the experiment is INTERRUPTED (its launcher is gone with tasks never submitted): waiting
            would never end; the message says how to resume.
        OutageError: the backend stayed unreachable past the outage limit.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    wait = _FIRST_WAIT
    outage = Outage(outage_timeout, describe=lambda: running_jobs(exp),
                    reattach=f"`Experiment.from_id({exp.id!r}).wait()`")
    while True:
        statuses = outage.call(exp.refresh)
        if all(st.is_terminal for st in statuses.values()):
            return statuses
        why = exp.interruption()
        if why:
            raise ExperimentError(f"experiment {exp.id} is {driver.INTERRUPTED}: {why}")
        if deadline is not None and time.monotonic() >= deadline:
            return statuses
        time.sleep(wait)
        wait = min(wait * 2, _MAX_WAIT)
