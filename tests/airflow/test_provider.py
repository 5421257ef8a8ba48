"""Airflow finds nemorun as a provider through the apache_airflow_provider entry point."""

from __future__ import annotations

import json

import pytest


def test_get_provider_info_matches_the_distribution() -> None:
    from nemorun_airflow import get_provider_info
    from nemorun_core._version import __version__

    info = get_provider_info()
    # Airflow refuses a provider whose package-name differs from its distribution name.
    assert info["package-name"] == "nemorun"
    assert info["name"] and info["description"]
    assert info["versions"] == [__version__]


@pytest.mark.airflow
def test_airflow_providers_list_shows_nemorun(airflow_cli) -> None:
    from nemorun_core._version import __version__

    proc = airflow_cli("providers", "list", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    providers = {p["package_name"]: p for p in json.loads(proc.stdout)}
    assert "nemorun" in providers, sorted(providers)
    assert providers["nemorun"]["version"] == __version__
