"""``run.run``: run one task and return its result."""

from __future__ import annotations

from typing import Any

from nemorun_core.errors import ExperimentError
from nemorun_core.executors.base import Executor


def run(
    fn_or_script: Any,
    executor_or_name: Any = None,
    *,
    executor: Executor | None = None,
    plugins: Any = None,
    name: str | None = None,
    direct: bool = False,
    dryrun: bool = False,
    detach: bool = False,
    tail_logs: bool = True,
    log_level: str | int = "INFO",
    home: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn_or_script`` on ``executor`` (default ``LocalExecutor()``) and return what it returned.

    The task is recorded in the store as a one-task experiment, so ``Experiment.from_id`` and the ``nemorun`` CLI
    see it like any other.

    Args:
        fn_or_script: a ``run.Partial`` (called), a ``run.Config`` (built), a ``run.Script``, or a function followed
            by its keyword arguments.
        executor_or_name: the executor (``run.run(task, executor)``) or, as in NeMo Run's ``run(task, name)``, the
            name, given by position.
        executor: where to run it.
        plugins: a ``run.Plugin`` or a list of them, applied before submission; one raising rejects the task.
        name: the task's (and the experiment's) name; defaults to the function's name.
        direct: run the task in this process (NeMo Run's direct mode) and return its value; nothing is recorded in
            the store. Only a ``LocalExecutor`` (or none) fits: its ``env_vars`` are set for the call.
        dryrun: print what would be submitted and return that request, without running anything.
        detach: return the ``Experiment`` as soon as the job started instead of waiting for it.
        tail_logs: print the task's output as it runs.
        log_level: nemorun's logging level while it runs (``"INFO"``, ``"WARN"``, ...).
        home: the store's directory (default ``$NEMORUN_HOME`` or ``~/.nemorun``).

    Returns:
        The task's return value (None for a Script); with ``dryrun`` the SubmitRequest; with ``detach`` the
        Experiment.

    Raises:
        JobFailedError: the task failed or was cancelled; the error names the job, its exit status, its log and
            the log's last lines.
        ExperimentError: arguments that cannot go together (``direct`` with ``detach`` or a remote executor, ...).
    """
    from nemorun_core.experiment.experiment import Experiment
    from nemorun_core.experiment.options import check_log_level
    from nemorun_core.experiment.tasks import default_name, normalize_task

    if isinstance(executor_or_name, str) and name is None:
        name = executor_or_name
    elif isinstance(executor_or_name, Executor) and executor is None:
        executor = executor_or_name
    elif executor_or_name is not None:
        raise ExperimentError(f"run.run's second argument is the executor (or NeMo Run's name), got "
                              f"{executor_or_name!r}" + (" beside executor=/name=" if executor or name else ""))
    check_log_level(log_level, "run.run")
    spec_task = normalize_task(fn_or_script, kwargs)
    task_name = name or default_name(spec_task)
    if direct:
        return _run_here(spec_task, task_name, executor, plugins, dryrun=dryrun, detach=detach)
    exp = Experiment(task_name, home=home, log_level=log_level)
    ref = exp.add(spec_task, executor=executor, name=task_name, plugins=plugins)
    if dryrun:
        return exp.dryrun()[ref.name]
    exp.run(detach=detach, tail_logs=tail_logs and not detach, quiet=True)
    if detach:
        return exp
    return exp.result(ref.name)


def _run_here(task: Any, name: str, executor: Executor | None, plugins: Any, *, dryrun: bool, detach: bool) -> Any:
    from nemorun_core.experiment.direct import check_direct, run_direct
    from nemorun_core.experiment.plugin import apply_plugins, check_plugins, plugin_name
    from nemorun_core.experiment.store import check_name
    from nemorun_core.experiment.tasks import TaskSpec

    if detach or dryrun:
        raise ExperimentError(f"run.run(direct=True) runs the task here and now, so {'detach' if detach else 'dryrun'}"
                              "=True cannot apply; drop one of them")
    check_direct(executor)
    if executor is None:
        from nemorun_core.executors.local import LocalExecutor

        executor = LocalExecutor()
    plugin_list = check_plugins(plugins, "run.run")
    spec = TaskSpec(check_name(name, "task name"), task, executor.clone(), [],
                    [plugin_name(p) for p in plugin_list])
    apply_plugins(plugin_list, spec.task, spec.executor, spec.name)
    check_direct(spec.executor)  # a plugin may have set a launcher
    return run_direct(spec)
