"""Fixtures for the Prefect-side tests (run in .venvs/prefect).

Prefect reads PREFECT_HOME and its settings from the environment, so they are pointed at a temp dir before any
test module imports prefect: no test writes to the user's ~/.prefect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_PREFECT_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _PREFECT_HOME
    _PREFECT_HOME = tempfile.mkdtemp(prefix="nemorun-test-prefect-home-")
    os.environ["PREFECT_HOME"] = _PREFECT_HOME
    # No telemetry calls and no UI build from the test servers; the machine has no internet anyway.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREFECT_HOME:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API server (temporary database) for the whole session.

    Starting it takes 10-20 s, so every Prefect test shares one.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
