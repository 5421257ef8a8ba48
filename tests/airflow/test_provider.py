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
    import importlib.util
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
        # earlier Airflow versions ask the hook: it answers what the provider info declares
        behaviour = declared["ui-field-behaviour"]
        assert hook.get_ui_field_behaviour() == {"hidden_fields": behaviour["hidden-fields"],
                                                 "relabeling": behaviour["relabeling"],
                                                 "placeholders": behaviour["placeholders"]}
        if importlib.util.find_spec("wtforms") and importlib.util.find_spec("flask_appbuilder"):  # an older UI's
            assert set(hook.get_connection_form_widgets()) == set(declared["conn-fields"])
        if conn_type == "ssh":  # keys only: the Password field (and Schema) that nemorun refuses or ignores, hidden
            assert {"password", "schema"} <= set(behaviour["hidden-fields"])
            continue
        assert "password" not in behaviour["hidden-fields"]  # the secret lives in the masked, encrypted field
    assert set(types["nemorun_token"]["conn-fields"]) == {"header"}
    assert set(types["nemorun_kubeconfig"]["conn-fields"]) == {"context"}
    # the ssh extras nemorun reads, as form fields; the secret ones masked
    ssh_fields = types["ssh"]["conn-fields"]
    assert set(ssh_fields) <= set(hooks.SUPPORTED_EXTRAS)
    assert {"private_key", "private_key_passphrase", "key_file", "host_key", "known_hosts", "job_dir"} <= set(ssh_fields)
    assert {n for n, f in ssh_fields.items() if f["schema"].get("format") == "password"} == {
        "private_key", "private_key_passphrase"}
    # the documentation URL and the extra links
    assert info["documentation-url"].endswith("docs/airflow.md")
    assert info["integrations"][0]["external-doc-url"] == info["documentation-url"]
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)().name
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
    from nemorun_airflow import SSH_FORM

    assert set(widgets) == {"extra__nemorun_token__header", "extra__nemorun_kubeconfig__context",
                            *(f"extra__ssh__{name}" for name in SSH_FORM["conn-fields"])}

    proc = airflow_cli("providers", "behaviours", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert {"nemorun_token", "nemorun_kubeconfig"} <= {b["field_behaviours"] for b in json.loads(proc.stdout)}
    assert "ssh" in {b["field_behaviours"] for b in json.loads(proc.stdout)}

    proc = airflow_cli("providers", "links", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert "nemorun_airflow.links.NemorunJobLogLink" in proc.stdout


@pytest.mark.airflow
def test_the_ui_connection_forms_show_what_nemorun_reads(airflow_server) -> None:
    # What the UI's connection form is built from (GET /ui/connections/hook_meta), on a real API server.
    meta = {m["connection_type"]: m for m in airflow_server.api("GET", "/ui/connections/hook_meta")}
    ssh = meta["ssh"]
    assert ssh["hook_name"] == "SSH (nemorun)"
    standard = ssh["standard_fields"]
    assert standard["password"]["hidden"] and standard["url_schema"]["hidden"]
    assert standard["host"]["title"] == "Login node" and standard["login"]["title"] == "User name"
    assert standard["host"]["placeholder"] == "login.cluster.org"
    extra = ssh["extra_fields"]
    assert extra["private_key"]["schema"]["format"] == "password" and extra["private_key"]["schema"]["title"]
    assert {"host_key", "job_dir", "key_file", "known_hosts", "no_host_key_check"} <= set(extra)
    token = meta["nemorun_token"]
    assert token["standard_fields"]["password"]["title"] == "Token or API key" and "header" in token["extra_fields"]
    assert "context" in meta["nemorun_kubeconfig"]["extra_fields"]
    # the form's Test button: off by default, as docs/airflow.md says ([core] test_connection)
    from tests.airflow._server import AirflowServerError

    with pytest.raises(AirflowServerError, match="HTTP 403.*Testing connections is disabled"):
        airflow_server.api("POST", "/api/v2/connections/test", {"connection_id": "nr_t", "conn_type": "nemorun_token",
                                                                 "password": "x"})
