"""examples/prefect_quickstart.py runs as written: its own process, Prefect's temporary server, real local jobs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.prefect

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_prefect_quickstart(tmp_path) -> None:
    home = tmp_path / "home"
    # No PREFECT_API_URL: the example must bring up Prefect's temporary server itself, as for a first-time user.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(NEMORUN_HOME=str(home), PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=REPO,
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "examples", "prefect_quickstart.py")], env=env,
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "one task: {'checkpoint': 'ckpt-h64', 'final_loss': 8.5738}" in proc.stdout, output
    assert "best: {'checkpoint': 'ckpt-h128', 'final_loss': 7.29}" in proc.stdout, output
    assert "Task run 'train-h128' - step 2: loss=7.2900" in output, "job logs stream into the Prefect run logger"
    # Two flow runs, one job directory per task, each with the task's result.
    runs = sorted(os.listdir(home / "prefect"))
    tasks = sorted(sorted(os.listdir(home / "prefect" / r)) for r in runs)
    assert tasks == [["evaluate", "train-h128", "train-h64"], ["train"]], tasks
    for r in runs:
        for t in os.listdir(home / "prefect" / r):
            assert (home / "prefect" / r / t / "result.json").exists()
