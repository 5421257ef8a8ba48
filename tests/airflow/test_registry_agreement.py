"""Airflow has a registered connection type for every credential kind a registered backend takes."""

from __future__ import annotations

from nemorun_airflow import get_provider_info
from nemorun_airflow.hooks import KIND_CONNECTION_TYPES
from nemorun_core.credentials import CredentialKind
from nemorun_core.executors import registry


def test_every_credential_kind_of_every_backend_has_a_provider_connection_type() -> None:
    kinds = {kind for entry in registry.entries() for kind in entry.credential_kinds}
    assert CredentialKind.SSH in kinds  # the Slurm backend's
    assert set(CredentialKind) <= set(KIND_CONNECTION_TYPES), "a credential kind without an Airflow connection type"
    declared = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    assert {KIND_CONNECTION_TYPES[k] for k in kinds} <= declared
    assert set(KIND_CONNECTION_TYPES.values()) <= declared, "a connection type the provider info does not register"
