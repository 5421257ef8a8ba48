"""Fixtures for the Airflow-side tests (run in .venvs/airflow).

Airflow writes airflow.cfg and its database under AIRFLOW_HOME (default ~/airflow) the first time it is
imported, so AIRFLOW_HOME is pointed at a temp dir before any test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

import pytest

AirflowCli = Callable[..., "subprocess.CompletedProcess[str]"]

_AIRFLOW_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _AIRFLOW_HOME
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="nemorun-test-airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.makedirs(os.path.join(_AIRFLOW_HOME, "dags"), exist_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _AIRFLOW_HOME:
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def _airflow_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``airflow ARGS`` with this test environment's python against the session's AIRFLOW_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated Airflow metadata database (SQLite in the temp AIRFLOW_HOME); returns AIRFLOW_HOME."""
    assert _AIRFLOW_HOME is not None
    proc = _airflow_cli("db", "migrate")
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_cli(airflow_db: str) -> AirflowCli:
    """Runs ``airflow ARGS`` (a subprocess, as a user would) against the migrated session database."""
    return _airflow_cli


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real Airflow deployment (api-server, scheduler, dag-processor, triggerer; tests/airflow/_server.py) for the
    session, with its own AIRFLOW_HOME, on 127.0.0.1. Tests put DAG files in with ``server.write_dag``.

    Its components get the repository on PYTHONPATH (DAG files import test helpers) and a NEMORUN_HOME of their own.
    """
    from tests.airflow._server import AirflowServer

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    home = tmp_path_factory.mktemp("airflow-server")
    env = {"PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p),
           "NEMORUN_HOME": str(home / "nemorun-home")}
    server = AirflowServer.start(str(home / "airflow"), env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _nemorun_home(tmp_path, monkeypatch) -> None:
    """Each test's jobs and store in its own NEMORUN_HOME (tests that share a deployment's home set their own)."""
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
