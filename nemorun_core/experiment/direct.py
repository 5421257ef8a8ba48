"""``run.run(task, direct=True)``: run one task in this process, as NeMo Run's direct mode does.

A ``run.Config`` is built and a ``run.Partial`` built and called here (its exceptions reach the caller as they are);
a ``run.Script`` runs as a child process in the foreground. Nothing is recorded in the store. What a direct run can
honour of the executor is its environment (``env_vars``, set for the duration of the call) and working directory;
an executor that would run the task elsewhere, or with a launcher, is refused rather than quietly ignored.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any, Iterator

from nemorun_core.errors import ExperimentError, JobFailedError
from nemorun_core.executors.base import Executor
from nemorun_core.experiment.tasks import TaskSpec, check_task


def check_direct(executor: Executor | None) -> None:
    """Refuse an executor whose settings a run in this process cannot honour.

    Raises:
        ExperimentError: not a ``LocalExecutor``, a launcher, or more than one task per node.
    """
    if executor is None:
        return
    from nemorun_core.executors.local import LocalExecutor

    if not isinstance(executor, LocalExecutor):
        raise ExperimentError(
            f"direct=True runs the task in this process, so {type(executor).__name__} cannot apply; drop "
            "direct=True to run it on that executor, or drop executor= to run it here")
    if executor.launcher is not None or executor.ntasks_per_node != 1:
        raise ExperimentError(
            "direct=True runs one process, so the executor's launcher and ntasks_per_node cannot apply; "
            "drop direct=True to run it as a local job with them")


def run_direct(spec: TaskSpec) -> Any:
    """Run the task of ``spec`` here; return its value (None for a Script).

    Raises:
        JobFailedError: a Script exited non-zero.
        ConfigError: the configuration is invalid (checked before anything runs).
    """
    from nemorun_core.config.script import Script

    check_task(spec)
    cwd = spec.executor.working_dir
    with _environment(dict(spec.executor.env_vars)):
        if isinstance(spec.task, Script):
            return _run_script(spec.name, spec.task, cwd)
        from nemorun_core.config.building import build

        with _working_dir(cwd):
            built = build(spec.task)
            return built() if spec.kind == "partial" else built


def _run_script(name: str, script: Any, cwd: str | None) -> None:
    cmd = script.to_command(with_entrypoint=True)
    if cmd[0] == "python":
        cmd[0] = sys.executable
    proc = subprocess.run(cmd, cwd=script.cwd or cwd, env={**os.environ, **script.env}, check=False)
    if proc.returncode != 0:
        raise JobFailedError(name, "FAILED", exit_code=proc.returncode, message="run directly (direct=True)")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextlib.contextmanager
def _working_dir(path: str | None) -> Iterator[None]:
    if not path:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_experiment_direct(specs: list[TaskSpec]) -> dict[str, Any]:
    """``exp.run(direct=True)``: run the tasks here one after another, in the order added; return their values.

    The order added is a topological order, so each task's ``{name.output}`` references are resolved from the
    values already returned. Every executor is checked before the first task runs. A task that raises stops the
    run (its exception reaches the caller); it ends FAILED and the tasks not run yet end CANCELLED.

    Raises:
        ExperimentError: an executor a direct run cannot honour, or a ``{name.dir}`` reference (a direct run has no
            job directory).
    """
    from nemorun_core.executors.base import JobState, JobStatus
    from nemorun_core.experiment.tasks import referenced_tasks, resolve_references

    for spec in specs:
        check_direct(spec.executor)
    values: dict[str, Any] = {}

    def lookup(name: str, field: str) -> Any:
        if field != "output":
            raise ExperimentError(f"'{{{name}.{field}}}': a direct run (direct=True) has no job directory; refer to "
                                  f"'{{{name}.output}}' or run without direct=True")
        return values[name]

    for i, spec in enumerate(specs):
        task = resolve_references(spec.task, lookup) if referenced_tasks(spec.task) else spec.task
        try:
            values[spec.name] = run_direct(TaskSpec(spec.name, task, spec.executor, list(spec.dependencies)))
        except BaseException as exc:
            spec.status = JobStatus(JobState.FAILED, "direct", f"raised {type(exc).__name__}: {exc}")
            for later in specs[i + 1:]:
                later.status = JobStatus(JobState.CANCELLED, "not-run", f"not run: {spec.name!r} failed first")
            raise
        spec.status = JobStatus(JobState.SUCCEEDED, "direct", "run in this process (direct=True)")
    return values
