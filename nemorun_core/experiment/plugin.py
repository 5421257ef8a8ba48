"""``run.Plugin``: change a task and its executor before it is submitted, or reject it."""

from __future__ import annotations

from typing import Any


class Plugin:
    """Base class of plugins.

    ``setup(task, executor)`` is called once per task when the task is added to an experiment (or given to
    ``run.run``), on the task's own copies of the config and executor: it may change environment variables
    (``executor.env_vars``), task arguments (``task.some_arg = ...``) or executor settings. Raising any exception
    rejects the task: nothing is submitted and the error names the plugin and the task.
    """

    def setup(self, task: Any, executor: Any) -> None:  # noqa: B027 - an optional hook, empty by default
        """Adjust ``task`` and ``executor`` in place; raise to reject the task."""

    @property
    def name(self) -> str:
        return type(self).__name__
