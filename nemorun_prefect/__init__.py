"""nemorun for Prefect 3: experiments and jobs as Prefect tasks, flows and blocks.

This layer is thin: it speaks in orchestration concepts only (tasks, flows, artifacts, blocks) and reaches
every backend through the ``nemorun_core`` job contract, so it imports no backend SDK itself. Importing this
package does not import ``prefect``: the names below are loaded from their submodules on first use.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "JobRef": "nemorun_prefect.tasks",
    "run_nemorun_task": "nemorun_prefect.tasks",
    "submit_nemorun_task": "nemorun_prefect.tasks",
    "wait_nemorun_task": "nemorun_prefect.tasks",
    "cancel_nemorun_task": "nemorun_prefect.tasks",
    "experiment_flow": "nemorun_prefect.flows",
    "build_experiment_flow": "nemorun_prefect.flows",
    "cancel_flow_jobs": "nemorun_prefect.flows",
    "DependencyFailedError": "nemorun_prefect.flows",
    "ExperimentFlowError": "nemorun_prefect.flows",
}

__all__: list[str] = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nemorun_prefect' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
