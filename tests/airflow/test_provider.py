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


def test_provider_info_declares_one_connection_type_per_kind_with_its_form() -> None:
    import importlib
    import os

    import jsonschema

    from nemorun_airflow import get_provider_info
    from nemorun_core.credentials import CredentialKind

    info = get_provider_info()
    import airflow

    with open(os.path.join(os.path.dirname(airflow.__file__), "provider_info.schema.json")) as f:
        jsonschema.validate(info, json.load(f))  # what Airflow's providers manager checks
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(types) == {"ssh", "nemorun_token", "nemorun_kubeconfig"}
    hooks = importlib.import_module("nemorun_airflow.hooks")
    assert {hooks.KIND_CONNECTION_TYPES[kind] for kind in CredentialKind} == set(types)  # every kind has its type
    for conn_type, declared in types.items():
        module, _, name = declared["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn_type and hook.hook_name == declared["hook-name"]
        if conn_type == "ssh":  # the SSH provider's own type and form
            assert "ui-field-behaviour" not in declared and "conn-fields" not in declared
            continue
        # earlier Airflow versions ask the hook: it answers what the provider info declares
        behaviour = declared["ui-field-behaviour"]
        assert hook.get_ui_field_behaviour() == {"hidden_fields": behaviour["hidden-fields"],
                                                 "relabeling": behaviour["relabeling"],
                                                 "placeholders": behaviour["placeholders"]}
        assert "password" not in behaviour["hidden-fields"]  # the secret lives in the masked, encrypted field
    assert set(types["nemorun_token"]["conn-fields"]) == {"header"}
    assert set(types["nemorun_kubeconfig"]["conn-fields"]) == {"context"}
    assert get_provider_info() is not info and get_provider_info() == info  # a fresh copy each call


@pytest.mark.airflow
def test_airflow_registers_the_connection_types_their_hooks_and_forms(airflow_cli) -> None:
    proc = airflow_cli("providers", "hooks", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    hooks = {h["connection_type"]: h for h in json.loads(proc.stdout)}
    assert hooks["nemorun_token"]["class"] == "nemorun_airflow.hooks.NemorunTokenHook"
    assert hooks["nemorun_kubeconfig"]["class"] == "nemorun_airflow.hooks.NemorunKubeconfigHook"
    assert {hooks[t]["package_name"] for t in ("ssh", "nemorun_token", "nemorun_kubeconfig")} == {"nemorun"}

    proc = airflow_cli("providers", "widgets", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    widgets = {w["connection_parameter_name"]: w for w in json.loads(proc.stdout) if w.get("package_name") == "nemorun"}
    assert set(widgets) == {"extra__nemorun_token__header", "extra__nemorun_kubeconfig__context"}

    proc = airflow_cli("providers", "behaviours", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert {"nemorun_token", "nemorun_kubeconfig"} <= {b["field_behaviours"] for b in json.loads(proc.stdout)}
