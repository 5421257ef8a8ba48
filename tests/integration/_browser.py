"""A headless Chromium for the checks of the orchestrators' web forms (tests/prefect/test_ui_forms.py and
tests/airflow/test_ui_forms.py), driven by Playwright's Python API.

The browser is Debian's ``chromium`` installed by ``scripts/services/browser.sh`` (its ``env`` prints
``NEMORUN_CHROMIUM``); Playwright only drives it and never downloads a browser of its own. A missing variable or
binary fails the test with the command to run: CI must not skip the UI checks because the service was not started.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# As root Chromium needs --no-sandbox (Playwright adds it: its chromium_sandbox is off by default); on a machine
# without internet its background connections (updates, sync, safe browsing, QUIC) are refused many at a time and
# slow every start, so they are switched off. Playwright gives each launch a new empty profile directory.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The Chromium binary of scripts/services/browser.sh; fails the test when that service was not started."""
    path = os.environ.get("NEMORUN_CHROMIUM", "")
    if not path:
        pytest.fail("NEMORUN_CHROMIUM is not set: the browser service is not ready. Run `bash "
                    "scripts/services/browser.sh start` and `eval \"$(bash scripts/services/browser.sh env)\"`, or "
                    "run the tests through `bash scripts/test.sh`, which does both.", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"NEMORUN_CHROMIUM={path} is not an executable: run `bash scripts/services/browser.sh start` "
                    "(it installs Debian's chromium and chromium-driver).", pytrace=False)
    return path


@contextlib.contextmanager
def browser_page(screenshots: str | os.PathLike[str] | None = None) -> Iterator["Page"]:
    """A new page of a headless Chromium, closed afterwards.

    Args:
        screenshots: a directory; when the body of the ``with`` raises, a full-page screenshot of the page as it
            was is saved there (``failure.png``) and its path added to the error's notes.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(30_000)  # a loaded CI machine renders a SPA slowly
            try:
                yield page
            except BaseException as exc:
                if screenshots is not None:
                    shot = os.path.join(os.fspath(screenshots), "failure.png")
                    with contextlib.suppress(Exception):
                        page.screenshot(path=shot, full_page=True)
                        exc.add_note(f"screenshot of the page: {shot} (at {page.url})")
                raise
        finally:
            browser.close()


def visible_lines(locator: "Locator") -> set[str]:
    """The lines of text a user sees in ``locator`` (``innerText``: what is rendered, nothing hidden), stripped."""
    return {line.strip() for line in locator.inner_text().splitlines() if line.strip()}


_MARKUP = re.compile(r"[`*_\\]")


def plain(text: str) -> str:
    """``text`` without Markdown emphasis and code marks and with whitespace collapsed: a field description as the
    UI shows it, whether the UI renders it as Markdown or as text."""
    return " ".join(_MARKUP.sub("", text).split())
