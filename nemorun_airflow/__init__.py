"""nemorun for Airflow 3: a provider with a hook, operators, triggers and a sensor.

Airflow discovers the provider through the ``apache_airflow_provider`` entry point declared in
``pyproject.toml``, which names :func:`get_provider_info`. Importing this package must stay cheap and must not
import ``airflow``: the providers manager imports it while Airflow itself is starting up. The names below are
loaded from their submodules on first use.
"""

from __future__ import annotations

import copy
from typing import Any

from nemorun_core.lazy import lazy_exports

_EXPORTS = {
    "NemorunSSHHook": "nemorun_airflow.hooks",
    "NemorunTokenHook": "nemorun_airflow.hooks",
    "NemorunKubeconfigHook": "nemorun_airflow.hooks",
    "resolve_credentials": "nemorun_airflow.hooks",
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

# The connection types, one per kind of credential (the ``ssh`` type is the SSH provider's own format), with their
# form in Airflow's UI declared here (``conn-fields``, ``ui-field-behaviour``): Airflow 3.2+ reads it from the
# provider info without importing the hooks; the hooks' get_ui_field_behaviour / get_connection_form_widgets give
# the same to earlier Airflow 3 versions.
PROVIDER_CONNECTION_TYPES: list[dict[str, Any]] = [
    {"connection-type": "ssh", "hook-class-name": "nemorun_airflow.hooks.NemorunSSHHook",
     "hook-name": "SSH (nemorun)"},
    {"connection-type": "nemorun_token", "hook-class-name": "nemorun_airflow.hooks.NemorunTokenHook",
     "hook-name": "Token or API key (nemorun)",
     "conn-fields": {"header": {
         "label": "API key header",
         "description": "For an API key: the HTTP header it is sent in (X-API-Key). Empty: the backend's own; "
                        "a bearer token is always sent as 'Authorization: Bearer'.",
         "schema": {"type": ["string", "null"]}}},
     "ui-field-behaviour": {"hidden-fields": ["host", "schema", "login", "port"],
                            "relabeling": {"password": "Token or API key"},
                            "placeholders": {"password": "the token alone, without 'Bearer '", "header": "X-API-Key"}}},
    {"connection-type": "nemorun_kubeconfig", "hook-class-name": "nemorun_airflow.hooks.NemorunKubeconfigHook",
     "hook-name": "Kubeconfig (nemorun)",
     "conn-fields": {"context": {
         "label": "Context",
         "description": "The kubeconfig context to use. Empty: its current-context.",
         "schema": {"type": ["string", "null"]}}},
     "ui-field-behaviour": {"hidden-fields": ["host", "schema", "login", "port"],
                            "relabeling": {"password": "Kubeconfig"},
                            "placeholders": {"password": "kubectl config view --raw --minify -o json",
                                             "context": "its current-context"}}},
]


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata that Airflow's providers manager reads.

    The dict is validated against Airflow's ``provider_info.schema.json``; ``package-name`` must equal the
    distribution name (``nemorun``) or Airflow refuses the provider. One connection type per kind of credential:
    ``ssh`` (SSH logins, so existing SSH connections work unchanged; when the SSH provider is installed too, its
    hook keeps the type, Airflow logs that it was registered already, and nemorun reads the same connections),
    ``nemorun_token`` (bearer tokens and API keys) and ``nemorun_kubeconfig``, with their UI forms.

    Returns:
        A new dict with ``package-name``, ``name``, ``description``, ``versions`` (newest first), the integration,
        its hook, operator, sensor and trigger modules, and the connection types.
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
        "connection-types": copy.deepcopy(PROVIDER_CONNECTION_TYPES),
    }


__getattr__, __dir__ = lazy_exports("nemorun_airflow", _EXPORTS, globals(), extra=["get_provider_info"])
