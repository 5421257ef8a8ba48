"""``run.cli.RunContext``: the ``ctx`` of an experiment entrypoint, what the command line said about launching.

    @run.cli.entrypoint(type="experiment")
    def sweep(ctx: run.cli.RunContext, lrs: list[float] = [1e-3, 1e-4]):
        with run.Experiment("sweep") as exp:
            for lr in lrs:
                exp.add(run.Partial(train, lr=lr), executor=ctx.executor, name=f"lr-{lr}")
            ctx.launch(exp, sequential=False)

    $ python sweep.py lrs=[1e-3] ctx.executor=local --dryrun

The command line fills it in (``--executor``/``ctx.executor=...``, ``--dryrun``, ``--detach``, ``--name``,
``--tail-logs``, ``-y``, ``plugins=...``); the function decides what to launch. Importing this module is cheap: the
experiment layer is loaded only when :meth:`RunContext.launch` runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class RunContext:
    """Launch settings handed to an experiment entrypoint.

    Attributes:
        name: the run's name (``--name``), or the entrypoint's name.
        executor: where tasks should run (``--executor``, ``ctx.executor=...``, the decorator's
            ``default_executor``); None when nothing was said.
        plugins: ``run.Plugin`` objects (``plugins=...``, the decorator's ``default_plugins``).
        dryrun: ``--dryrun``: :meth:`launch` previews instead of launching.
        detach: ``--detach``: :meth:`launch` returns once the tasks started.
        direct: run in this process rather than on the executor (NeMo Run's ``--direct``).
        tail_logs: ``--tail-logs``: print the tasks' output while they run.
        skip_confirmation: ``-y``/``--yes``: do not ask before launching.
    """

    name: str = ""
    executor: Any = None
    plugins: list[Any] = dataclasses.field(default_factory=list)
    dryrun: bool = False
    detach: bool = False
    direct: bool = False
    tail_logs: bool = False
    skip_confirmation: bool = False

    def launch(self, task_or_experiment: Any, *, sequential: bool = False, direct: Optional[bool] = None,
               dryrun: Optional[bool] = None, log_level: Optional[str] = None) -> Any:
        """Launch an ``Experiment`` (its tasks, as it was built) or a single task on :attr:`executor`.

        Blocks until the tasks end unless :attr:`detach` is set; with :attr:`dryrun` only prints what would be
        submitted.

        Args:
            task_or_experiment: a ``run.Experiment``, or a task (``run.Partial``, ``run.Config``, ``run.Script``).
            sequential: run the experiment's tasks one at a time, in the order added.
            direct: override :attr:`direct` for this call.
            dryrun: override :attr:`dryrun` for this call.
            log_level: accepted for NeMo Run compatibility; nemorun's logging is configured by the caller.

        Returns:
            The experiment (run or previewed); for a single task, what ``run.run`` returns.
        """
        from nemorun_core.experiment.experiment import Experiment

        del log_level
        dry = self.dryrun if dryrun is None else dryrun
        in_process = self.direct if direct is None else direct
        if isinstance(task_or_experiment, Experiment):
            if dry:
                task_or_experiment.dryrun()
                return task_or_experiment
            return task_or_experiment.run(sequential=sequential, detach=self.detach, tail_logs=self.tail_logs)
        if in_process and not dry:
            from nemorun_core.config.building import build

            built = build(task_or_experiment)
            return built() if callable(built) else built
        from nemorun_core.experiment.launch import run

        return run(task_or_experiment, executor=self.executor, plugins=list(self.plugins),
                   name=self.name or None, dryrun=dry, detach=self.detach, tail_logs=self.tail_logs)


def is_context_annotation(annotation: Any) -> bool:
    """True for ``RunContext`` (or a subclass), also written as a string (``"run.cli.RunContext"``)."""
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "RunContext"
    return isinstance(annotation, type) and issubclass(annotation, RunContext)


def context_parameter(fn: Any) -> str | None:
    """The name of ``fn``'s run-context parameter: annotated ``RunContext``, or a first parameter named ``ctx``."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    for p in params:
        if p.annotation is not inspect.Parameter.empty and is_context_annotation(p.annotation):
            return p.name
    if params and params[0].name == "ctx" and params[0].annotation is inspect.Parameter.empty:
        return "ctx"
    return None
