"""An ``Experiment`` as an Airflow task group: one :class:`NemorunOperator` per experiment task, same dependencies.

    import nemorun_core as run
    from nemorun_airflow import experiment_task_group

    exp = run.Experiment("sweep")
    train = exp.add(run.Partial(train_fn, steps=10), name="train", executor=slurm)
    exp.add(run.Partial(evaluate, checkpoint=f"{train.output.checkpoint}"), name="eval", dependencies=[train])

    with DAG("sweep", schedule="@daily", start_date=...):
        group = experiment_task_group(exp, ssh_conn_id="slurm_login", deferrable=True)

* Dependencies become ``upstream >> downstream``; a task whose dependency failed ends ``upstream_failed`` and
  submits nothing (Airflow's default trigger rule).
* References: ``{train.output...}`` in a task is replaced, when the task starts, by the value the ``train`` operator
  pushed to XCom (its return value: so it must be JSON and within ``xcom_result_max_bytes``), ``{train.dir}`` by its
  job directory.
* ``max_concurrent``: Airflow has no per-group limit. ``max_active_tis_per_dagrun`` limits instances of one task,
  not a set of tasks, and the DAG's ``max_active_tasks`` does not count deferred tasks, whose jobs still run. What
  does limit a set of tasks, deferred ones included, is a pool created with ``--include-deferred``: with
  ``max_concurrent`` every operator of the group takes one slot of ``pool``, which must exist with that many slots.
  Pools are shared by all runs (and DAGs) that use them: give each experiment DAG its own pool for a per-DAG limit.
"""

from __future__ import annotations

import re
from typing import Any

from nemorun_core.errors import ExperimentError


def experiment_task_group(exp: Any, group_id: str | None = None, *, max_concurrent: int | None = None,
                          **operator_kwargs: Any) -> Any:
    """Add ``exp``'s tasks to the current DAG as a task group and return the ``TaskGroup``.

    Must be called inside a DAG (``with DAG(...):``). Each task becomes ``NemorunOperator(task_id=<task name>, ...)``
    with the task's own config and executor; ``operator_kwargs`` go to every operator (``ssh_conn_id``,
    ``deferrable``, ``retries``, ``pool``...).

    Args:
        exp: a ``run.Experiment`` that has tasks and was not launched.
        group_id: the group's id (default: the experiment's name, with characters Airflow refuses replaced).
        max_concurrent: at most this many of the group's tasks at once, through the Airflow pool given as
            ``pool=`` (see the module docs for why a pool).

    Raises:
        ExperimentError: the experiment was launched or has no tasks, or ``max_concurrent`` is invalid or has no
            pool.
    """
    from airflow.sdk import TaskGroup

    from nemorun_airflow.operators import NemorunOperator
    from nemorun_core.experiment.tasks import referenced_tasks

    if exp.launched:
        raise ExperimentError(f"experiment {exp.id!r} was already launched; build the task group from a new "
                              "Experiment")
    specs = exp.task_specs()  # insertion order is a topological order: dependencies are added first
    if not specs:
        raise ExperimentError(f"experiment {exp.name!r} has no tasks; add some with exp.add(...)")
    group_id = group_id or (re.sub(r"[^A-Za-z0-9_-]+", "_", exp.name).strip("_") or "experiment")
    if max_concurrent is not None:
        if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool) or max_concurrent < 1:
            raise ExperimentError(f"max_concurrent must be a positive int or None, got {max_concurrent!r}")
        if not operator_kwargs.get("pool"):
            pool = f"nemorun-{group_id}"
            raise ExperimentError(
                f"max_concurrent={max_concurrent} needs an Airflow pool that counts deferred tasks: create it with "
                f"`airflow pools set {pool} {max_concurrent} 'nemorun experiment {exp.name}' --include-deferred` "
                f"and pass pool={pool!r}")
        operator_kwargs["pool_slots"] = 1
    with TaskGroup(group_id=group_id) as group:
        operators: dict[str, Any] = {}
        for spec in specs:
            refs = referenced_tasks(spec.task)
            op = NemorunOperator(task_id=spec.name, task=spec.task, executor=spec.executor, name=spec.name,
                                 references={ref: operators[ref].task_id for ref in refs if ref in operators},
                                 **operator_kwargs)
            for dep in spec.dependencies:
                operators[dep] >> op
            operators[spec.name] = op
    return group


__all__ = ["experiment_task_group"]
