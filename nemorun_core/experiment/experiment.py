"""``run.Experiment``: a named set of tasks with dependencies, run together and kept in the store.

    with run.Experiment("sweep", description="lr sweep", tags=["nlp"]) as exp:
        train = exp.add(train_fn, lr=1e-4, executor=run.LocalExecutor(), name="train")
        exp.add(run.Config(evaluate, checkpoint=train.output), name="eval")
        exp.run(max_concurrent=4)

Everything a later process needs is in the store, so ``Experiment.from_id(id)`` finds the experiment again (status,
logs, results, cancel, rerun) from another process or after a restart. If the process that launched it died before
every task was submitted, the experiment is INTERRUPTED and ``exp.resume()`` carries on: it re-attaches to what
runs, keeps what succeeded and submits only what never started.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Sequence

from nemorun_core.errors import ExperimentError, JobFailedError, NemorunError, did_you_mean
from nemorun_core.executors.base import Capability, Executor, JobState, JobStatus
from nemorun_core.experiment import driver, persist
from nemorun_core.experiment.options import (
    Console,
    check_log_level,
    check_positive_int,
    goodbye,
    log_level_scope,
    resolve_naming,
    unknown_argument,
)
from nemorun_core.experiment.plugin import apply_plugins, check_plugins, plugin_name
from nemorun_core.experiment.store import Store, check_name
from nemorun_core.experiment.tasks import (
    TaskRef,
    TaskSpec,
    UnloadedTask,
    check_references,
    check_task,
    default_name,
    normalize_task,
    referenced_tasks,
)
from nemorun_core.jobfiles import JobFiles

_NOT_RUN = "skipped: dependency {dep!r} ended {state}"


class Experiment:
    """A set of tasks run together and recorded in the store.

    Both spellings work: the spec's ``Experiment(name="llm_finetuning", description=...)`` and NeMo Run's
    ``Experiment("My Experiment", executor=..., log_level="INFO")``, whose first argument is the title.

    Args:
        title_or_name: NeMo Run's title, by position: given alone it is the title and gives the name too (made
            safe for a path: ``"My Experiment"`` -> ``My-Experiment``); given with ``title=``, it is the name.
        title: a human title (may contain spaces); ``Experiment.from_title`` finds the latest with it.
        executor: the default executor of tasks added without one (default: ``LocalExecutor()``).
        name: short name, used in the experiment id (``<name>_<YYYYmmdd_HHMMSS>_<6 hex>``), checked as given;
            defaults to the title, the launching script's name, or ``"experiment"``.
        description: free text kept in the metadata.
        tags: labels kept in the metadata and the index.
        id: the experiment id to use instead of a generated one (NeMo Run's ``id=``); it must not be in the store.
        home: the store's directory (default ``$NEMORUN_HOME`` or ``~/.nemorun``); ``base_dir`` is NeMo Run's name.
        log_level: nemorun's logging level while it runs (``"INFO"``, ``"WARN"``, ...); above INFO the per-task
            progress lines are not printed.
        clean_mode: print nothing beyond the tasks' own output (no progress, no status table or hint at the end).
        threadpool_workers: the most submissions or status calls made at once. This scheduler makes them one at a
            time (each backend call covers many jobs), so every positive value is respected.
        skip_status_at_exit: do not print the status table when a ``with`` block that ran the experiment ends.
        enable_goodbye_message: print how to find the experiment again when such a block ends (default True).
    """

    def __init__(
        self,
        title_or_name: str | None = None,
        /,
        executor: Executor | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str = "",
        tags: Iterable[str] = (),
        id: str | None = None,  # noqa: A002 - NeMo Run's name
        home: str | None = None,
        base_dir: str | None = None,
        log_level: str | int = "INFO",
        clean_mode: bool = False,
        threadpool_workers: int = 16,
        skip_status_at_exit: bool = False,
        enable_goodbye_message: bool = True,
        **unknown: Any,
    ):
        if unknown:
            raise unknown_argument(sorted(unknown)[0])
        name, title = resolve_naming(title_or_name, name, title)
        if name is None:
            name = _default_experiment_name(title)
        self.name = check_name(name, "experiment name")
        self.title = title or name
        self.description = description
        self.tags = [str(t) for t in tags]
        if executor is not None and not isinstance(executor, Executor):
            raise ExperimentError(f"Experiment executor must be an executor such as run.LocalExecutor(), got "
                                  f"{executor!r}")
        self.default_executor = executor
        if home is not None and base_dir is not None and os.path.abspath(home) != os.path.abspath(base_dir):
            raise ExperimentError(f"Experiment got home={home!r} and base_dir={base_dir!r}: they name the same "
                                  "store directory; pass one of them")
        self.store = Store(home or base_dir)
        if id is not None:
            check_name(id, "experiment id")
        self.requested_id = id
        self.console = Console(check_log_level(log_level, "Experiment"), bool(clean_mode),
                               bool(skip_status_at_exit), bool(enable_goodbye_message))
        self.threadpool_workers = check_positive_int(threadpool_workers, "Experiment threadpool_workers")
        self.id: str | None = None
        self.dir: str | None = None
        self.created_at: float | None = None
        self._tasks: dict[str, TaskSpec] = {}
        self._launched = False
        self._ran_here = False  # run() was called on this object (for what the `with` block prints at its end)
        self._quiet_run = True
        self._direct_values: dict[str, Any] = {}  # what the tasks returned in a run(direct=True)
        self._dry = False  # a dry run stands for the `with` block's run: leaving the block starts nothing

    # -- building the experiment ---------------------------------------------------------------------------------
    def add(
        self,
        task: Any,
        executor: Executor | None = None,
        name: str | None = None,
        plugins: Any = None,
        tail_logs: bool = False,
        dependencies: Sequence[TaskRef | str] | None = None,
        **kwargs: Any,
    ) -> TaskRef:
        """Add a task; return its id, for ``dependencies=[...]`` and as ``ref.output`` in later tasks.

        Args:
            task: a ``run.Config`` / ``run.Partial`` / ``run.Script``, or a function whose keyword arguments follow.
                A list of tasks (NeMo Run's job group) is refused with what to do instead.
            executor: where it runs (default: the experiment's executor, else ``LocalExecutor()``). The task gets its
                own copy, so plugins and later changes do not leak between tasks.
            name: the task's name (letters, digits, ``_.-``); default: the function's or script's name. A name
                already taken is made unique as NeMo Run does: ``train``, ``train_1``, ``train_2``.
            plugins: a ``run.Plugin`` or a list of them, whose ``setup(task, executor)`` runs now (with
                ``task.config`` to read and set the task's arguments); raising rejects the task.
            tail_logs: print this task's log lines as they come while the experiment runs.
            dependencies: tasks (the ids ``add`` returned, or names) that must succeed before this one starts.
            **kwargs: arguments of ``task`` when it is a plain function.

        Returns:
            The task's id: a ``str`` (its name, as NeMo Run's ``add`` returns) with ``.output`` and ``.dir``.

        Raises:
            ExperimentError: bad name, unknown dependency or reference, experiment already launched.
            PluginError: a plugin rejected the task.
        """
        if self._launched:
            raise ExperimentError(f"experiment {self.id!r} was already launched; create a new Experiment to add tasks")
        if isinstance(task, (list, tuple)):
            raise ExperimentError(
                "exp.add([task1, task2], ...) (a NeMo Run job group, its tasks run together in one allocation) is "
                "not supported: add each task on its own (they run in parallel unless one depends on another)")
        plugin_list = check_plugins(plugins, "exp.add")
        spec_task = normalize_task(task, kwargs)
        base = default_name(spec_task) if not name else check_name(name, "task name")  # NeMo Run's default is ""
        name = self._unique_name(base)
        deps = []
        for dep in dependencies or ():
            dep_name = str(dep) if isinstance(dep, str) else dep
            if not isinstance(dep_name, str) or dep_name not in self._tasks:
                raise ExperimentError(
                    f"task {name!r} depends on {dep_name!r}, which is not in the experiment"
                    f"{did_you_mean(str(dep_name), self._tasks) or ''}; add it before its dependents"
                )
            if dep_name not in deps:
                deps.append(dep_name)
        refs = referenced_tasks(spec_task)
        check_references(name, refs, list(self._tasks))
        deps += [r for r in refs if r not in deps]
        chosen = executor or self.default_executor
        if chosen is None:
            from nemorun_core.executors.local import LocalExecutor

            chosen = LocalExecutor()
        if not isinstance(chosen, Executor):
            raise ExperimentError(f"executor of task {name!r} must be an executor such as run.LocalExecutor(), "
                                  f"got {chosen!r}")
        spec = TaskSpec(name, spec_task, chosen.clone(), deps, [plugin_name(p) for p in plugin_list],
                        tail_logs=bool(tail_logs))
        apply_plugins(plugin_list, spec.task, spec.executor, name)
        check_task(spec)
        self._tasks[name] = spec
        return TaskRef(name)

    def _unique_name(self, base: str) -> str:
        if base not in self._tasks:
            return base
        n = 1
        while f"{base}_{n}" in self._tasks:
            n += 1
        return check_name(f"{base}_{n}", "task name")

    @property
    def jobs(self) -> list[TaskSpec]:
        """The tasks, in the order added (NeMo Run's ``exp.jobs``): each has ``id``, ``task``, ``executor``,
        ``dependencies``, ``handle`` and ``state``. Same as :meth:`task_specs`."""
        return self.task_specs()

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    @property
    def launched(self) -> bool:
        """Whether the experiment was run (or loaded from the store): no task can be added, and an orchestrator
        must not build a flow or DAG from it (build one from a new Experiment, or ``exp.rerun()``)."""
        return self._launched

    def task_specs(self) -> list[TaskSpec]:
        """Every task's spec (name, task, executor, dependencies, handle, status), in the order added.

        That order is topological (a task's dependencies are added before it), so an orchestrator that creates one
        node per spec in this order has every upstream node already. The specs are the experiment's own: read them,
        do not change them.
        """
        return list(self._tasks.values())

    def spec(self, name: str) -> TaskSpec:
        """The spec of task ``name`` (see :meth:`task_specs`).

        Raises:
            ExperimentError: no such task, naming the closest task name and every task.
        """
        return self._spec(name)

    # -- running ------------------------------------------------------------------------------------------------------
    def dryrun(self, log: bool | None = None, *, print_out: bool = True) -> dict[str, Any]:
        """What each task would submit (its executor's ``dryrun``), without writing or starting anything.

        ``log`` is NeMo Run's name for ``print_out``: whether to print the requests.
        """
        if log is not None:
            print_out = bool(log)
        from nemorun_core.experiment.tasks import make_job

        from nemorun_core.executors.jobkey import JobKey

        self._dry = True
        # Before its first run an experiment has no id; the request shows the shape one will have (name, date,
        # time, random part), spelled so that it is a valid key and path, as the real one will be.
        exp_id = self.id or self.requested_id or f"{self.name}_YYYYMMDD_HHMMSS_xxxxxx"
        requests = {}
        for spec in self._tasks.values():
            job_dir = os.path.join(self.store.experiments_dir, exp_id, "tasks", spec.name)
            requests[spec.name] = spec.executor.dryrun(make_job(spec, str(JobKey(exp_id, spec.name)), job_dir))
        if print_out:
            for name, req in requests.items():
                print(f"# ---- task {name} ({req.backend}) ----")
                print(req.text, end="" if req.text.endswith("\n") else "\n")
        return requests

    def run(
        self,
        *,
        sequential: bool = False,
        max_concurrent: int | None = None,
        tail_logs: bool = False,
        detach: bool = False,
        dryrun: bool = False,
        quiet: bool = False,
        outage_timeout: float | None = None,
        direct: bool = False,
    ) -> "Experiment":
        """Launch the tasks, independent ones in parallel, each after its dependencies succeeded.

        Args:
            sequential: run one task at a time, in the order added.
            max_concurrent: at most this many tasks running at once (default: no limit).
            tail_logs: print the tasks' log lines as they come, prefixed with the task name.
            detach: return once the tasks are launched; a detached driver process starts the dependent tasks and
                the experiment can be followed from anywhere with ``Experiment.from_id``.
            dryrun: print what would be submitted and return without starting anything.
            quiet: do not print progress.
            outage_timeout: seconds to keep retrying while a backend cannot be reached (a cut SSH session): the
                jobs keep running meanwhile. Default ``$NEMORUN_OUTAGE_TIMEOUT`` or 300; past it ``OutageError``
                says which jobs still run and how to re-attach.
            direct: run every task in this process, one after another in the order added (NeMo Run's direct
                mode): nothing is submitted or recorded in the store, ``result(name)`` gives the values, and a task
                that raises stops the run with its exception. Only ``LocalExecutor`` tasks fit (their ``env_vars``
                are set for the call); ``{name.dir}`` references have no directory to point to.

        Without ``detach`` this blocks until every task has ended. A failed task stops its dependents (they end
        CANCELLED, with a message naming the dependency); other tasks go on. Ctrl-C cancels the running tasks.
        """
        if dryrun:
            self.dryrun()
            return self
        if direct:
            return self._run_direct(detach=detach)
        if self._launched:
            why = self.interruption() if self.dir else None
            raise ExperimentError(f"experiment {self.id!r} was already run; "
                                  + (f"it is {driver.INTERRUPTED} ({why})" if why else
                                     "use exp.rerun() for a fresh copy"))
        if not self._tasks:
            raise ExperimentError("the experiment has no tasks; add some with exp.add(...) before exp.run()")
        if max_concurrent is not None and (not isinstance(max_concurrent, int) or max_concurrent < 1):
            raise ExperimentError(f"max_concurrent must be a positive int or None, got {max_concurrent!r}")
        limit = 1 if sequential else max_concurrent
        from nemorun_core.experiment.scheduler import Scheduler

        # Made first: a bad outage limit fails before anything is started or written.
        quiet = quiet or self.console.quiet
        self._quiet_run = quiet
        scheduler = Scheduler(self, limit=limit, tail_logs=tail_logs, quiet=quiet, outage_timeout=outage_timeout)
        self._launched = True
        self._ran_here = True
        for spec in self._tasks.values():
            spec.executor.warm_up()  # e.g. start the local fork server now, so it is ready by the first submission
        persist.materialize(self, {"max_concurrent": limit, "detach": detach, "outage_timeout": outage_timeout})
        driver.record_launcher(self, "run")  # before any submission: who submits the rest
        return self._drive(scheduler, detach=detach, quiet=quiet)

    def _run_direct(self, *, detach: bool) -> "Experiment":
        from nemorun_core.experiment.direct import run_experiment_direct

        if detach:
            raise ExperimentError("exp.run(direct=True) runs the tasks here and now, so detach=True cannot apply; "
                                  "drop one of them")
        if self._launched:
            raise ExperimentError(f"experiment {self.id or self.name!r} was already run; use exp.reset() for a "
                                  "fresh copy")
        if not self._tasks:
            raise ExperimentError("the experiment has no tasks; add some with exp.add(...) before exp.run()")
        self._launched = True
        with log_level_scope(self.console.log_level):
            self._direct_values = run_experiment_direct(list(self._tasks.values()))
        return self

    def _drive(self, scheduler: Any, *, detach: bool, quiet: bool) -> "Experiment":
        with log_level_scope(self.console.log_level):
            return self._drive_now(scheduler, detach=detach, quiet=quiet)

    def _drive_now(self, scheduler: Any, *, detach: bool, quiet: bool) -> "Experiment":
        if detach:
            scheduler.launch_detached()
            return self
        try:
            scheduler.run_to_end()
        except KeyboardInterrupt:
            if not quiet:
                print(f"\n[{self.id}] interrupted: cancelling running tasks "
                      "(run with detach=True to leave them running)", file=sys.stderr)
            self.cancel()
            raise
        return self

    def resume(
        self,
        *,
        tail_logs: bool = False,
        detach: bool = False,
        quiet: bool = False,
        outage_timeout: float | None = None,
    ) -> "Experiment":
        """Carry on with an experiment whose launching process (or detached driver) died before it ended.

        Tasks that succeeded are kept (their results feed ``{task.output}`` references), tasks that run are
        re-attached by their stored handle (or found again by their key when the launcher died between submitting
        and recording), and only the tasks that never started are submitted, after their dependencies. Arguments
        are those of :meth:`run`; the concurrency limit is the one the experiment was launched with.

        Raises:
            ExperimentError: the experiment was never run here (use ``run``), its launcher is still alive (naming
                its pid), or it has already ended (nothing to resume).
        """
        from nemorun_core.experiment.scheduler import Scheduler

        if not self.dir or not self._launched:
            raise ExperimentError(f"experiment {self.id or self.name!r} has not been run; use exp.run()")
        with driver.claim_launcher(self, "resume"):  # refuses while another launcher is alive
            persist.reload_unsubmitted(self)
            self._find_lost_jobs()
            statuses = self.refresh()
            if all(st.is_terminal for st in statuses.values()):
                raise ExperimentError(f"experiment {self.id} has already ended ({self.state()}): nothing to "
                                      "resume; exp.rerun() runs it again as a new experiment")
            for spec in self._tasks.values():
                if spec.handle is None and isinstance(spec.task, UnloadedTask):
                    spec.task.require(spec.name)
        options = driver.launch_options(self)
        limit = options.get("max_concurrent")
        timeout = outage_timeout if outage_timeout is not None else options.get("outage_timeout")
        if not quiet:
            left = [s.name for s in self._tasks.values() if s.handle is None and not (s.status and
                                                                                    s.status.is_terminal)]
            print(f"[{self.id}] resuming: {', '.join(left) or 'nothing'} to submit", file=sys.stderr)
        scheduler = Scheduler(self, limit=limit, tail_logs=tail_logs, quiet=quiet, outage_timeout=timeout)
        return self._drive(scheduler, detach=detach, quiet=quiet)

    def _find_lost_jobs(self) -> None:
        """Re-attach tasks submitted by a launcher that died before it recorded their handles (found by key)."""
        from nemorun_core.experiment.scheduler import task_key

        for spec in self._tasks.values():
            if spec.handle is not None or (spec.status and spec.status.is_terminal):
                continue
            handle = spec.executor.find(task_key(self, spec.name), self.store.task_dir(self.dir, spec.name))
            if handle is not None:
                spec.handle = handle
                persist.save_handle(self, spec)

    # -- context manager ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Tasks added in a `with` block and never run are run on a clean exit: that is what the block means.
        if exc_type is None and not self._launched and not self._dry and self._tasks:
            self.run()
        if exc_type is None and self._ran_here and not self._quiet_run and self.id:
            # What NeMo Run prints when its block ends: the tasks' states and how to find the experiment again.
            if not self.console.skip_status_at_exit:
                try:
                    self.status()
                except (NemorunError, OSError) as exc:  # the run itself went well: say why there is no table
                    print(f"[{self.id}] no status table: {exc}", file=sys.stderr)
            if self.console.goodbye:
                print(goodbye(self.id, list(self._tasks)), file=sys.stderr)

    # -- inspecting ---------------------------------------------------------------------------------------------------
    def _spec(self, name: str) -> TaskSpec:
        if name not in self._tasks:
            raise ExperimentError(
                f"no task {name!r} in experiment {self.id or self.name!r}{did_you_mean(name, self._tasks) or ''}; "
                f"tasks: {', '.join(self._tasks) or '(none)'}"
            )
        return self._tasks[name]

    def refresh(self) -> dict[str, JobStatus]:
        """Ask the backends for the current status of every submitted task (one call per executor kind)."""
        from nemorun_core.experiment.scheduler import poll

        if self.dir:
            persist.reload_unsubmitted(self)
        statuses = poll(list(self._tasks.values()))
        for name, new in statuses.items():
            old = self._tasks[name].status
            if old is not None and old.is_terminal and new.state is old.state and not new.message:
                # A backend may later report the same end with less detail (sacct right after a cancel): keep ours.
                statuses[name] = old
        changed = {n: st for n, st in statuses.items() if self._tasks[n].status != st}
        for name, status in statuses.items():
            self._tasks[name].status = status
        if self.dir:
            persist.save_states(self, changed)  # only what changed: a refresh of a finished experiment writes nothing
            persist.record_outcome(self)
        why = self.interruption()
        waiting = JobStatus(JobState.PENDING, driver.INTERRUPTED.lower() if why else "",
                            f"not submitted: {why}" if why else "not submitted")
        return {name: spec.status or waiting for name, spec in self._tasks.items()}

    def _unsubmitted(self) -> list[str]:
        return [s.name for s in self._tasks.values() if s.handle is None and not (s.status and s.status.is_terminal)]

    def interruption(self) -> str | None:
        """Why the experiment is INTERRUPTED (its launcher died with tasks never submitted), else None.

        From the last known states and the launcher record only: no backend call, nothing written.
        """
        if not self.dir:
            return None
        return driver.interruption(self.id or "", self.dir, self._unsubmitted())

    def state(self) -> str:
        """The experiment's state from the last known task states (``refresh()`` first for fresh ones).

        ``"INTERRUPTED"`` when its launcher is gone and tasks were never submitted (``resume()`` carries on);
        else a ``JobState`` value: PENDING before anything started, RUNNING until every task ended, then the worst
        outcome (FAILED, CANCELLED, or SUCCEEDED).
        """
        if self.interruption():
            return driver.INTERRUPTED
        states = [s.status.state if s.status else JobState.PENDING for s in self._tasks.values()]
        if not states or all(st is JobState.PENDING for st in states):
            return JobState.PENDING.value
        if not all(st.is_terminal for st in states):
            return JobState.RUNNING.value
        for worst in (JobState.FAILED, JobState.CANCELLED):
            if worst in states:
                return worst.value
        return JobState.SUCCEEDED.value

    def status(self, return_dict: bool | None = None, *, quiet: bool = False) -> dict[str, dict[str, Any]] | None:
        """Print a table of the tasks (unless ``quiet``) and return it as a dict: name -> state, message, ...

        Args:
            return_dict: NeMo Run's switch: ``True`` returns the dict without printing, ``False`` prints and returns
                None; left out, the table is printed and the dict returned.
            quiet: do not print.

        Each entry has ``state`` (the ``JobState`` value), ``status`` (the ``JobState``), ``message``,
        ``exit_code``, ``executor``, ``job_id``, ``dependencies``, ``log`` and ``local_dir`` (the task's directory
        in the store).
        """
        if return_dict is not None and not isinstance(return_dict, bool):
            raise ExperimentError(f"status(return_dict=) must be True or False, got {return_dict!r}")
        quiet = quiet or return_dict is True
        statuses = self.refresh()
        report = {
            name: {
                "state": st.state.value,
                "status": st.state,
                "local_dir": self.store.task_dir(self.dir, name) if self.dir else None,
                "message": st.message,
                "exit_code": st.exit_code,
                "executor": spec.executor.backend,
                "job_id": spec.handle.job_id if spec.handle else None,
                "dependencies": list(spec.dependencies),
                "log": _log_location(spec),
            }
            for (name, st), spec in zip(statuses.items(), self._tasks.values())
        }
        if not quiet:
            from nemorun_core.experiment.render import print_status

            print_status(self, report)
            why = self.interruption()
            if why:
                print(f"{self.id} is {driver.INTERRUPTED}: {why}")
        return None if return_dict is False else report

    def logs(self, name: str, *, follow: bool = False, tail: int | None = None,
             outage_timeout: float | None = None, regex: str | None = None) -> str:
        """The log of task ``name`` as text (the last ``tail`` lines if given); ``follow`` streams it to stdout.

        ``name`` is the task's name, which is the id ``exp.add`` returned. ``regex`` keeps only the lines it
        matches (``re.search``), as NeMo Run's ``exp.logs(job_id, regex=...)``; ``tail`` counts matching lines.

        While following, a backend that cannot be reached is retried for up to ``outage_timeout`` seconds (default
        ``$NEMORUN_OUTAGE_TIMEOUT`` or 300), resuming after the last line printed, so no line is lost or repeated.
        """
        keep = _line_filter(regex)
        spec = self._spec(name)
        if spec.handle is None:
            raise ExperimentError(f"task {name!r} has not been submitted, so it has no log yet")
        if follow:
            from nemorun_core.executors.outage import Outage
            from nemorun_core.experiment.scheduler import follow_lines

            handle = spec.handle
            outage = Outage(outage_timeout, reattach=f"`nemorun experiment logs {self.id} {name} -f`",
                            describe=lambda: f"task {name!r} ({handle.backend} job {handle.job_id}, key {handle.key})")
            start = 0
            if tail is not None:  # start `tail` lines before the current end, then keep following
                start = max(0, outage.call(lambda: sum(1 for _ in spec.executor.logs(handle))) - max(tail, 0))
            for line in follow_lines(spec.executor, handle, offset=start, outage=outage):
                if keep(line):
                    print(line, flush=True)
            return ""
        lines = [line for line in spec.executor.logs(spec.handle) if keep(line)]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return "\n".join(lines)

    def cancel(self, name: str | None = None) -> None:
        """Cancel one task, or every unfinished task when ``name`` is None. Idempotent; does not wait."""
        targets = [self._spec(name)] if name is not None else list(self._tasks.values())
        for spec in targets:
            if spec.handle is not None:
                spec.executor.cancel(spec.handle)
            elif self.dir and not (spec.status and spec.status.is_terminal):
                spec.status = JobStatus(JobState.CANCELLED, "", "cancelled before it was submitted")
                persist.save_states(self, {spec.name: spec.status})
        if self.dir and name is None:
            persist.cancel_driver(self)

    def result(self, name: str) -> Any:
        """The return value of task ``name``; raises JobFailedError if it failed, ExperimentError if not done."""
        from nemorun_core.experiment.results import read_result

        spec = self._spec(name)
        if name in self._direct_values:
            return self._direct_values[name]
        status = self.refresh()[name]
        if status.state is JobState.SUCCEEDED:
            return read_result(spec)
        if status.is_terminal:
            raise job_failure(spec, status)
        raise ExperimentError(f"task {name!r} has no result yet: it is {status.state.value}")

    def results(self) -> dict[str, Any]:
        """Return values of the tasks that succeeded, by name (Script tasks give None)."""
        from nemorun_core.experiment.results import read_result

        statuses = self.refresh()
        return {n: self._direct_values[n] if n in self._direct_values else read_result(self._tasks[n])
                for n, st in statuses.items() if st.state is JobState.SUCCEEDED}

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """The records task ``name`` logged with ``nemorun_core.log_metrics``, oldest first."""
        from nemorun_core.metrics import read_metrics

        spec = self._spec(name)
        if spec.handle is None or not spec.executor.supports(Capability.FETCH_FILES):
            return []
        data = spec.executor.fetch_file(spec.handle, JobFiles.METRICS)
        return read_metrics(data.decode("utf-8", "replace")) if data else []

    def configurations(self) -> dict[str, Any]:
        """Each task's configuration (a copy), by name."""
        import copy

        for name, spec in self._tasks.items():
            if isinstance(spec.task, UnloadedTask):
                spec.task.require(name)
        return {name: copy.deepcopy(spec.task) for name, spec in self._tasks.items()}

    def metadata(self) -> dict[str, Any]:
        """Id, title, description, tags, creation time, environment snapshot and the tasks' states."""
        env = persist.read_environment(self) if self.dir else None
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "dir": self.dir,
            "environment": env,
            "tasks": {
                name: {"executor": spec.executor.backend, "dependencies": list(spec.dependencies),
                       "plugins": list(spec.plugins),
                       "state": spec.status.state.value if spec.status else JobState.PENDING.value}
                for name, spec in self._tasks.items()
            },
        }

    def wait(self, *, timeout: float | None = None, outage_timeout: float | None = None) -> dict[str, JobStatus]:
        """Block until every task has ended (or ``timeout`` seconds); return the final statuses.

        Rides out a backend outage of up to ``outage_timeout`` seconds (default ``$NEMORUN_OUTAGE_TIMEOUT`` or 300).

        Raises:
            ExperimentError: the experiment is INTERRUPTED (waiting would never end): run ``resume()``.
            OutageError: the backend stayed unreachable past the outage limit.
        """
        from nemorun_core.experiment.scheduler import wait_all

        return wait_all(self, timeout=timeout, outage_timeout=outage_timeout)

    # -- the store ----------------------------------------------------------------------------------------------------
    @classmethod
    def from_id(cls, id: str, *, home: str | None = None) -> "Experiment":  # noqa: A002 - NeMo Run's name
        """Load an experiment from the store by its id (``name_YYYYmmdd_HHMMSS_<6 hex>``, or the ``id=`` it was
        given)."""
        return persist.load(cls, Store(home), id)

    @classmethod
    def from_title(cls, title: str, *, home: str | None = None) -> "Experiment":
        """Load the most recent experiment with this title (or name)."""
        store = Store(home)
        return persist.load(cls, store, store.find_by_title(title))

    @classmethod
    def list(cls, *, home: str | None = None) -> list[dict[str, Any]]:
        """Every experiment in the store (id, name, title, tags, created_at, last known state), oldest first.

        An unfinished experiment whose launcher is gone with tasks never submitted has the state ``INTERRUPTED``
        and a ``note`` saying how to resume it.
        """
        store = Store(home)
        return driver.mark_interrupted(store, store.list())

    def reset(self) -> "Experiment":
        """A new experiment with the same title, tasks, configurations and executors, not run yet (NeMo Run's
        ``exp.reset()``): run it (or add to it) as a new experiment with its own id.

        Raises:
            ExperimentError: a task's code cannot be imported in this process (loaded from another environment).
        """
        import copy

        fresh = Experiment(name=self.name, title=self.title, description=self.description, tags=self.tags,
                           home=self.store.root)
        fresh.console = self.console
        for name, spec in self._tasks.items():
            if isinstance(spec.task, UnloadedTask):
                spec.task.require(name)
            fresh._tasks[name] = TaskSpec(name, copy.deepcopy(spec.task), spec.executor.clone(),
                                          list(spec.dependencies), list(spec.plugins), tail_logs=spec.tail_logs)
        return fresh

    def rerun(self, **run_kwargs: Any) -> "Experiment":
        """Run the same tasks, configurations and executors again, as a new experiment; returns it."""
        fresh = self.reset()
        fresh.run(**run_kwargs)
        return fresh

    def __repr__(self) -> str:
        return f"Experiment(id={self.id!r}, tasks={list(self._tasks)})"


def job_failure(spec: TaskSpec, status: JobStatus) -> JobFailedError:
    tail = spec.executor.log_tail(spec.handle, 15) if spec.handle is not None else []
    return JobFailedError(spec.name, status.state.value, exit_code=status.exit_code, log_path=_log_location(spec),
                          log_tail=tail, message=status.message)


def _log_location(spec: TaskSpec) -> str | None:
    if spec.handle is None:
        return None
    return spec.executor.log_location(spec.handle)


def _line_filter(regex: str | None) -> Any:
    import re

    if regex is None:
        return lambda line: True
    try:
        pattern = re.compile(regex)
    except (re.error, TypeError) as exc:
        raise ExperimentError(f"logs(regex={regex!r}) is not a valid regular expression: {exc}") from None
    return lambda line: pattern.search(line) is not None


def _default_experiment_name(title: str | None) -> str:
    import re

    if title:
        base = title
    else:
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)
        base = os.path.splitext(os.path.basename(script))[0] if script else "experiment"
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", base).strip("-.")[:100]
    return cleaned if cleaned[:1].isalnum() else "experiment"
