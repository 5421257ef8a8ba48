"""The Prefect commands our docs and examples tell users to run work against a real server of our pinned
environment (FastAPI 0.151+ rejects the explicit ``"limit": null`` that Prefect 3.8's client sends by default)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.prefect._serving import api  # noqa: F401 (fixture)

pytestmark = pytest.mark.prefect


def _prefect(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "prefect", *args], env=env, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def test_list_commands_answer_with_default_arguments(api: str) -> None:  # noqa: F811
    from prefect import flow

    @flow(name="cli-list-probe")
    def probe() -> int:
        return 1

    assert probe() == 1  # so that there is a flow run (and a task-less run) to list
    for args in (("flow-run", "ls"), ("flow-run", "ls", "--state", "COMPLETED"), ("deployment", "ls"),
                 ("block", "ls"), ("flow", "ls")):
        out = _prefect(api, *args)
        assert out.returncode == 0 and "422" not in out.stdout + out.stderr, (args, out.stdout, out.stderr)
    assert "cli-list-probe" in _prefect(api, "flow", "ls").stdout


def test_client_reads_with_default_arguments(api: str) -> None:  # noqa: F811
    from prefect import get_client

    with get_client(sync_client=True) as client:
        assert isinstance(client.read_task_runs(), list)
        assert isinstance(client.read_flow_runs(), list)
        assert isinstance(client.read_deployments(), list)
