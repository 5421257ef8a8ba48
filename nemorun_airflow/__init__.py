"""nemorun for Airflow 3: a provider with a hook, operators, triggers and a sensor.

Airflow discovers the provider through the ``apache_airflow_provider`` entry point declared in
``pyproject.toml``, which names :func:`get_provider_info`. Importing this package must stay cheap and must not
import ``airflow``: the providers manager imports it while Airflow itself is starting up.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata that Airflow's providers manager reads.

    The dict is validated against Airflow's ``provider_info.schema.json``; ``package-name`` must equal the
    distribution name (``nemorun``) or Airflow refuses the provider.

    Returns:
        A new dict with ``package-name``, ``name``, ``description`` and ``versions`` (newest first).
    """
    # Imported here rather than at module level so that the entry point stays a plain attribute lookup.
    from nemorun_core._version import __version__

    return {
        "package-name": "nemorun",
        "name": "nemorun",
        "description": (
            "Configure, package and launch ML experiments (Local, Docker, Slurm, Ray, SkyPilot, DGX Cloud, "
            "Lepton) from Airflow DAGs."
        ),
        "versions": [__version__],
    }
