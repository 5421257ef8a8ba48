"""nemorun for Airflow 3: a provider with a hook, operators, triggers and a sensor.

Airflow discovers the provider through the ``apache_airflow_provider`` entry point declared in
``pyproject.toml``, which names :func:`get_provider_info`. Importing this package must stay cheap and must not
import ``airflow``: the providers manager imports it while Airflow itself is starting up. The names below are
loaded from their submodules on first use.
"""

from __future__ import annotations

from typing import Any

from nemorun_core.lazy import lazy_exports

_EXPORTS = {
    "NemorunSSHHook": "nemorun_airflow.hooks",
    "NemorunOperator": "nemorun_airflow.operators",
    "NemorunJobTrigger": "nemorun_airflow.triggers",
    "NemorunJobSensor": "nemorun_airflow.sensors",
    "experiment_task_group": "nemorun_airflow.task_group",
    "run_dag_file": "nemorun_airflow.local_run",
}

__all__: list[str] = sorted([*_EXPORTS, "get_provider_info"])

_MODULES = {"hooks": ["nemorun_airflow.hooks"], "operators": ["nemorun_airflow.operators",
                                                              "nemorun_airflow.task_group"],
            "sensors": ["nemorun_airflow.sensors"], "triggers": ["nemorun_airflow.triggers"]}


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata that Airflow's providers manager reads.

    The dict is validated against Airflow's ``provider_info.schema.json``; ``package-name`` must equal the
    distribution name (``nemorun``) or Airflow refuses the provider. The hook is registered for the ``ssh``
    connection type, so existing SSH connections work unchanged; when the SSH provider is installed too, its hook
    keeps the type (Airflow logs that it was registered already) and nemorun reads the same connections.

    Returns:
        A new dict with ``package-name``, ``name``, ``description``, ``versions`` (newest first), the integration,
        its hook, operator, sensor and trigger modules, and the ``ssh`` connection type.
    """
    # Imported here rather than at module level so that the entry point stays a plain attribute lookup.
    from nemorun_core import __version__

    integration = "nemorun"
    return {
        "package-name": "nemorun",
        "name": "nemorun",
        "description": (
            "Configure, package and launch ML experiments (Local, Docker, Slurm, Ray, SkyPilot, DGX Cloud, "
            "Lepton) from Airflow DAGs."
        ),
        "versions": [__version__],
        "integrations": [{"integration-name": integration, "tags": ["software"]}],
        **{kind: [{"integration-name": integration, "python-modules": list(modules)}]
           for kind, modules in _MODULES.items()},
        "connection-types": [{"connection-type": "ssh", "hook-class-name": "nemorun_airflow.hooks.NemorunSSHHook",
                              "hook-name": "SSH (nemorun)"}],
    }


__getattr__, __dir__ = lazy_exports("nemorun_airflow", _EXPORTS, globals(), extra=["get_provider_info"])
