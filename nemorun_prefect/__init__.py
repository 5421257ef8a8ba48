"""nemorun for Prefect 3: experiments and jobs as Prefect tasks, flows and blocks.

This layer is thin: it speaks in orchestration concepts only (tasks, flows, artifacts, blocks) and reaches
every backend through the ``nemorun_core`` job contract, so it imports no backend SDK itself. Importing this
package does not import ``prefect``: the names below are loaded from their submodules on first use.
"""

from __future__ import annotations

from nemorun_core.lazy import lazy_exports

_EXPORTS = {
    "JobRef": "nemorun_prefect.tasks",
    "run_nemorun_task": "nemorun_prefect.tasks",
    "submit_nemorun_task": "nemorun_prefect.tasks",
    "wait_nemorun_task": "nemorun_prefect.tasks",
    "cancel_nemorun_task": "nemorun_prefect.tasks",
    "experiment_flow": "nemorun_prefect.flows",
    "build_experiment_flow": "nemorun_prefect.flows",
    "cancel_flow_jobs": "nemorun_prefect.flows",
    "on_cancellation_cancel_jobs": "nemorun_prefect.flows",
    "DependencyFailedError": "nemorun_prefect.flows",
    "ExperimentFlowError": "nemorun_prefect.flows",
    "NemorunSSHCluster": "nemorun_prefect.blocks",
    "NemorunExecutorBlock": "nemorun_prefect.blocks",
    "NemorunBearerToken": "nemorun_prefect.blocks",
    "NemorunAPIKey": "nemorun_prefect.blocks",
    "NemorunKubeconfig": "nemorun_prefect.blocks",
    "executor_block": "nemorun_prefect.blocks",
    "NemorunJob": "nemorun_prefect.jobs",
    "NemorunJobRun": "nemorun_prefect.jobs",
}

__all__: list[str] = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("nemorun_prefect", _EXPORTS, globals())
