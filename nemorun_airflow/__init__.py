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
    "NemorunJobLogLink": "nemorun_airflow.links",
    "NemorunBackendLink": "nemorun_airflow.links",
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
#
# The ``ssh`` form hides what nemorun refuses or ignores (Password: keys only; Schema) and shows the extras it reads as
# fields of their own. It is declared only while the SSH provider is not installed (see :func:`get_provider_info`):
# with that provider the ``ssh`` form is its own, which takes a password.
_STR = {"type": ["string", "null"]}
SSH_FORM: dict[str, Any] = {
    "conn-fields": {
        "private_key": {"label": "Private key", "schema": {**_STR, "format": "password"},
                        "description": "The private key TEXT (-----BEGIN OPENSSH PRIVATE KEY-----...). Empty: "
                                       "'Key file', else the SSH agent and ~/.ssh/id_*."},
        "private_key_passphrase": {"label": "Key passphrase", "schema": {**_STR, "format": "password"},
                                   "description": "The private key's passphrase, if it has one."},
        "key_file": {"label": "Key file", "schema": _STR,
                     "description": "Path of a private key file on the machines that run tasks and the triggerer "
                                    "(instead of 'Private key')."},
        "host_key": {"label": "Host key", "schema": _STR,
                     "description": "The login node's public host key, checked strictly: a line of "
                                    "`ssh-keyscan HOST` without the host name."},
        "known_hosts": {"label": "Known hosts file", "schema": _STR,
                        "description": "An OpenSSH known_hosts file to check the host key against (default "
                                       "~/.ssh/known_hosts), when 'Host key' is empty."},
        "no_host_key_check": {"label": "Learn the host key on first use", "schema": {"type": ["boolean", "null"]},
                              "description": "Trust the key the host shows the first time (a key that changes "
                                             "later is still refused)."},
        "job_dir": {"label": "Job directory", "schema": _STR,
                    "description": "Base directory for job files on the cluster (required unless the executor's "
                                   "tunnel has one)."},
        "conn_timeout": {"label": "Connect timeout (s)", "schema": {"type": ["number", "null"]},
                         "description": "Seconds to connect and authenticate."},
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "password"],
        "relabeling": {"host": "Login node", "login": "User name"},
        "placeholders": {"host": "login.cluster.org", "port": "22", "login": "your user name on the cluster",
                         "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----", "host_key": "ssh-ed25519 AAAA...",
                         "job_dir": "/scratch/USER/nemorun", "known_hosts": "~/.ssh/known_hosts",
                         "conn_timeout": "30"},
    },
}
PROVIDER_CONNECTION_TYPES: list[dict[str, Any]] = [
    {"connection-type": "ssh", "hook-class-name": "nemorun_airflow.hooks.NemorunSSHHook",
     "hook-name": "SSH (nemorun)", **SSH_FORM},
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


#: Where the provider's documentation lives (``integrations[].external-doc-url`` and ``documentation-url``): the
#: distribution's ``Documentation`` project URL when its metadata has one, else this page of the repository.
DOCUMENTATION_URL = "https://github.com/nemorun/nemorun/blob/main/docs/airflow.md"
#: The operator extra links (:mod:`nemorun_airflow.links`), registered so the API server can show them.
EXTRA_LINKS = ["nemorun_airflow.links.NemorunJobLogLink", "nemorun_airflow.links.NemorunBackendLink"]


def ssh_provider_installed() -> bool:
    """Whether Airflow's SSH provider is installed (read from distribution metadata: airflow is not imported)."""
    from importlib import metadata

    try:
        metadata.distribution("apache-airflow-providers-ssh")
    except metadata.PackageNotFoundError:
        return False
    return True


def documentation_url() -> str:
    """The ``Documentation`` project URL of the installed ``nemorun`` distribution, else :data:`DOCUMENTATION_URL`."""
    from importlib import metadata

    try:
        urls = metadata.metadata("nemorun").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("documentation", "docs") and url.strip():
            return url.strip()
    return DOCUMENTATION_URL


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata that Airflow's providers manager reads.

    The dict is validated against Airflow's ``provider_info.schema.json``; ``package-name`` must equal the
    distribution name (``nemorun``) or Airflow refuses the provider. One connection type per kind of credential:
    ``ssh`` (SSH logins, so existing SSH connections work unchanged; when the SSH provider is installed too, its
    hook keeps the type, Airflow logs that it was registered already, and nemorun reads the same connections),
    ``nemorun_token`` (bearer tokens and API keys) and ``nemorun_kubeconfig``, with their UI forms (the ``ssh`` form
    only without the SSH provider, whose own form then stays), the operator extra links and the documentation URL.

    Returns:
        A new dict with ``package-name``, ``name``, ``description``, ``versions`` (newest first), the integration,
        its hook, operator, sensor and trigger modules, the connection types, ``extra-links`` and
        ``documentation-url``.
    """
    # Imported here rather than at module level so that the entry point stays a plain attribute lookup.
    from nemorun_core import __version__

    integration = "nemorun"
    docs = documentation_url()
    connection_types = copy.deepcopy(PROVIDER_CONNECTION_TYPES)
    if ssh_provider_installed():
        # Its ``ssh`` form (with a password) stays the form of ``ssh`` connections; nemorun only reads them.
        for declared in connection_types:
            if declared["connection-type"] == "ssh":
                for name in SSH_FORM:
                    declared.pop(name)
    return {
        "package-name": "nemorun",
        "name": "nemorun",
        "description": (
            "Configure, package and launch ML experiments (Local, Docker, Slurm, Ray, SkyPilot, DGX Cloud, "
            "Lepton) from Airflow DAGs."
        ),
        "versions": [__version__],
        "documentation-url": docs,
        "integrations": [{"integration-name": integration, "external-doc-url": docs, "tags": ["software"]}],
        **{kind: [{"integration-name": integration, "python-modules": list(modules)}]
           for kind, modules in _MODULES.items()},
        "connection-types": connection_types,
        "extra-links": list(EXTRA_LINKS),
    }


__getattr__, __dir__ = lazy_exports("nemorun_airflow", _EXPORTS, globals(), extra=["get_provider_info"])
