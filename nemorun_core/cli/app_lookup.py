"""Finding what the ``nemorun`` command line names: an experiment by id or title, a task by name.

Kept apart from ``app.py`` so the rules (what counts as a usage error, which experiment a title picks) read
in one place and stay free of typer and rich.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from nemorun_core.errors import ExperimentError, did_you_mean
from nemorun_core.executors.base import JobState
from nemorun_core.experiment.store import Store


_TERMINAL = frozenset(s.value for s in JobState if s.is_terminal)


class UsageProblem(Exception):
    """The command line named something that does not exist (exit status 2, like any usage error)."""


def resolve_id(store: Store, ref: str) -> tuple[str, str | None]:
    """The experiment id that ``ref`` names, and a note for the user when it was matched by title.

    An existing id wins; otherwise the latest experiment whose title (or name) is ``ref``.

    Raises:
        UsageProblem: neither an id nor a title; the message carries the store's did-you-mean.
    """
    store.check_root()  # a store that is not a directory is an error of its own, not a wrong ID
    try:
        store.experiment_dir(ref)
        return ref, None
    except ExperimentError as not_an_id:
        try:
            exp_id = store.find_by_title(ref)
        except ExperimentError:
            raise UsageProblem(str(not_an_id)) from None
        return exp_id, (f"{ref!r} is not an experiment id; "
                        f"using the latest experiment titled {ref!r}: {exp_id}")


def _code_dirs(store: Store, exp_id: str) -> list[str]:
    """Where the launching process found the task code (its working directory and script directory)."""
    env = store.read_json(os.path.join(store.experiments_dir, exp_id, "environment.json"))
    if not isinstance(env, dict):
        return []  # not recorded, or damaged: the snapshot is only a hint
    dirs = [env.get("cwd")]
    if isinstance(env.get("script"), str):
        dirs.append(os.path.dirname(env["script"]))
    return [d for d in dirs if isinstance(d, str) and os.path.isdir(d)]


def load(store: Store, exp_id: str) -> Any:
    """``Experiment.from_id`` that also finds task code next to the script that launched the experiment.

    Loading decodes every task's config, which imports the task's module. A user who launched
    ``python train.py`` from their project and runs ``nemorun experiment status`` from elsewhere would
    otherwise get an import error for their own module, so the recorded launch directories are appended (never
    prepended: they must not shadow installed packages) to ``sys.path`` of this short-lived process.
    """
    from nemorun_core.experiment.experiment import Experiment

    for path in _code_dirs(store, exp_id):
        if path not in sys.path:
            sys.path.append(path)
    return Experiment.from_id(exp_id, home=store.root)


def pick_task(exp: Any, task: str | None, *, verb: str) -> str:
    """The task ``task`` names; with no name, the only task of a one-task experiment.

    Raises:
        UsageProblem: an unknown name (with did-you-mean) or a missing one in a many-task experiment.
    """
    names = exp.tasks
    if task is None:
        if len(names) == 1:
            return names[0]
        raise UsageProblem(
            f"experiment {exp.id!r} has {len(names)} tasks; name the one to {verb}: {', '.join(names)}"
        )
    if task not in names:
        raise UsageProblem(
            f"no task {task!r} in experiment {exp.id!r}{did_you_mean(task, names) or ''}; "
            f"tasks: {', '.join(names)}"
        )
    return task


def overall_state(states: Iterable[str]) -> str:
    """One state for a whole experiment: RUNNING until every task ended, then the worst outcome."""
    found = [JobState(s) for s in states]
    if not found:
        return JobState.PENDING.value
    if not all(s.is_terminal for s in found):
        if all(s is JobState.PENDING for s in found):
            return JobState.PENDING.value
        return JobState.RUNNING.value
    for worst in (JobState.FAILED, JobState.CANCELLED):
        if worst in found:
            return worst.value
    return JobState.SUCCEEDED.value


def sync_index(exp: Any, state: str) -> None:
    """Record a finished experiment's outcome in the index when nobody else did.

    Only an attached ``exp.run()`` or a detached driver writes the outcome; a detached experiment without a
    driver (independent tasks) or one cancelled from another process would otherwise stay RUNNING in
    ``experiment list``.
    """
    if not JobState(state).is_terminal:
        return
    entry = next((e for e in exp.store.list() if e.get("id") == exp.id), None)
    if entry is not None and entry.get("state") in _TERMINAL:
        return
    from nemorun_core.experiment import persist

    persist.record_outcome(exp)
