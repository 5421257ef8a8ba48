"""``nemo_run.core.execution.local``: :class:`nemorun_core.executors.local.LocalExecutor`."""

from nemorun_core.executors.local import LocalExecutor

__all__ = ["LocalExecutor"]
