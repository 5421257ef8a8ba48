"""``run.run``: run one task and return its result."""

from __future__ import annotations

from typing import Any, Sequence

from nemorun_core.executors.base import Executor


def run(
    task: Any,
    executor: Executor | None = None,
    *,
    plugins: Sequence[Any] | None = None,
    name: str | None = None,
    dryrun: bool = False,
    detach: bool = False,
    tail_logs: bool = True,
    home: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``task`` on ``executor`` (default ``LocalExecutor()``) and return what it returned.

    The task is recorded in the store as a one-task experiment, so ``Experiment.from_id`` and the ``nemorun`` CLI
    see it like any other.

    Args:
        task: a ``run.Partial`` (called), a ``run.Config`` (built), a ``run.Script``, or a function followed by its
            keyword arguments.
        executor: where to run it.
        plugins: ``run.Plugin`` objects applied before submission; one raising rejects the task.
        name: the task's (and the experiment's) name; defaults to the function's name.
        dryrun: print what would be submitted and return that request, without running anything.
        detach: return the ``Experiment`` as soon as the job started instead of waiting for it.
        tail_logs: print the task's output as it runs.
        home: the store's directory (default ``$NEMORUN_HOME`` or ``~/.nemorun``).

    Returns:
        The task's return value (None for a Script); with ``dryrun`` the SubmitRequest; with ``detach`` the
        Experiment.

    Raises:
        JobFailedError: the task failed or was cancelled; the error names the job, its exit status, its log and
            the log's last lines.
    """
    from nemorun_core.experiment.experiment import Experiment
    from nemorun_core.experiment.tasks import default_name, normalize_task

    spec_task = normalize_task(task, kwargs)
    task_name = name or default_name(spec_task)
    exp = Experiment(task_name, home=home)
    ref = exp.add(spec_task, executor=executor, name=task_name, plugins=plugins or ())
    if dryrun:
        return exp.dryrun()[ref.name]
    exp.run(detach=detach, tail_logs=tail_logs and not detach, quiet=True)
    if detach:
        return exp
    return exp.result(ref.name)
