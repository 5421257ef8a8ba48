"""nemorun's connection types as a user meets them in Airflow's own web UI: the "Add Connection" form of a real
api-server (the session's deployment, tests/airflow/_server.py: Simple auth manager, every request an admin, so no
login), looked at in headless Chromium (scripts/services/browser.sh).

The expectations are read from what nemorun declares (``get_provider_info()["connection-types"]``: hidden fields,
relabelled fields, placeholders, the extra fields), so the checks follow the declarations as they change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration._browser import browser_page, plain, visible_lines

pytestmark = pytest.mark.airflow

# The labels Airflow's form gives the standard fields when a connection type says nothing about them (checked
# against a type without a form of its own, below); ``schema`` is the form's "Schema" field.
DEFAULT_LABELS = {"host": "Host", "schema": "Schema", "login": "Login", "password": "Password", "port": "Port"}
CONTROL_TYPE = "Generic"  # Airflow's own "generic" connection type: every standard field, default labels


def _declared() -> list[dict[str, Any]]:
    import nemorun_airflow

    return [c for c in nemorun_airflow.get_provider_info()["connection-types"]
            if c.get("ui-field-behaviour") or c.get("conn-fields")]


def _open_add_form(page, base: str, hook_name: str):
    """The "Add Connection" dialog with the connection type ``hook_name`` chosen; returns the dialog."""
    page.goto(f"{base}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Connection Type").first.wait_for()
    dialog.get_by_role("combobox").first.click()
    page.keyboard.type(hook_name)
    page.get_by_role("option", name=hook_name, exact=True).click()
    dialog.get_by_text("Standard Fields").wait_for()
    return dialog


def _extra_fields(page, dialog) -> None:
    """Unfold the "Extra Fields" section (folded when the form opens)."""
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    page.wait_for_timeout(500)


def test_the_default_labels_are_the_forms_own(airflow_server, tmp_path) -> None:
    """The control for the hidden-field checks below: a type without a form of its own shows every default label."""
    with browser_page(tmp_path) as page:
        dialog = _open_add_form(page, airflow_server.base_url, CONTROL_TYPE)
        lines = visible_lines(dialog)
        assert set(DEFAULT_LABELS.values()) <= lines, f"{CONTROL_TYPE} form shows {sorted(lines)}"


@pytest.mark.parametrize("declared", _declared(), ids=lambda c: c["connection-type"])
def test_connection_form_shows_and_hides_what_nemorun_declares(airflow_server, declared, tmp_path) -> None:
    behaviour = declared.get("ui-field-behaviour", {})
    hidden = set(behaviour.get("hidden-fields", []))
    relabelled = behaviour.get("relabeling", {})
    placeholders = behaviour.get("placeholders", {})
    extras = declared.get("conn-fields", {})
    with browser_page(tmp_path) as page:
        dialog = _open_add_form(page, airflow_server.base_url, declared["hook-name"])
        lines = visible_lines(dialog)
        problems = []
        for field, label in DEFAULT_LABELS.items():
            if field in hidden:
                if label in lines:
                    problems.append(f"hidden field {field!r} is shown (label {label!r})")
            elif field in relabelled:
                if relabelled[field] not in lines:
                    problems.append(f"field {field!r} is not shown with its label {relabelled[field]!r}")
                if label in lines:
                    problems.append(f"field {field!r} still shows its default label {label!r}")
            elif label not in lines:
                problems.append(f"field {field!r} (label {label!r}) is not shown")

        # The standard section folds when the extras unfold: its placeholders are checked first, and its masked
        # inputs marked, so that only the extras' are counted below.
        for field, placeholder in placeholders.items():
            if field in DEFAULT_LABELS and field not in hidden and \
                    dialog.locator(f'[placeholder="{placeholder}"]:visible').count() == 0:
                problems.append(f"no visible input of {field!r} with the placeholder {placeholder!r}")
        dialog.locator('input[type="password"]:visible').evaluate_all(
            "inputs => inputs.forEach(i => i.setAttribute('data-nemorun-standard', ''))")

        _extra_fields(page, dialog)
        lines = visible_lines(dialog)
        text = plain(dialog.inner_text())
        for name, field in extras.items():
            if field["label"] not in lines:
                problems.append(f"extra field {name!r} is not shown with its label {field['label']!r}")
            if field.get("description") and plain(field["description"]) not in text:
                problems.append(f"extra field {name!r}: its description is not shown: {field['description']!r}")
        secret = [n for n, f in extras.items() if f["schema"].get("format") == "password"]
        masked = dialog.locator('input[type="password"]:not([data-nemorun-standard]):visible').count()
        if masked != len(secret):
            problems.append(f"secret extra fields {secret}: {masked} masked inputs shown among the extra fields")
        # (Placeholders declared for extra fields are not checked: Airflow 3.3's form shows them for the standard
        # fields only, its connection metadata carries none for the extras.)
        assert not problems, f"{declared['connection-type']} form:\n  " + "\n  ".join(problems) + \
            f"\nshown: {sorted(lines)}"
