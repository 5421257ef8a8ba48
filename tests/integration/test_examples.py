"""The examples in examples/ run as written (they are the spec's examples on this machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script: str, home: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEMORUN_HOME": home, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, os.path.join(REPO, "examples", script)], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


def test_quickstart(home):
    proc = _run("quickstart.py", home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "best: {'checkpoint': 'ckpt-h256'" in proc.stdout
    assert "[train-h64] step 4" in proc.stdout, "tail_logs streams each task's output with its name"


def test_spec_tour(home):
    proc = _run("spec_tour.py", home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spec tour: all examples ran" in proc.stdout
    assert "did you mean 'hidden_size'" in proc.stdout


def test_slurm_example_dryrun_needs_no_cluster(home):
    env = {**os.environ, "NEMORUN_HOME": home, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "examples", "slurm_sweep.py"), "--dryrun"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("#SBATCH --partition=gpu") == 4 and "srun python3 -m nemorun_core.runner" in proc.stdout
    assert not os.path.exists(os.path.join(home, "experiments")), "a dry run writes nothing to the store"


def test_from_nemo_run(home):
    proc = _run("from_nemo_run.py", home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "train: SUCCEEDED, train_1: SUCCEEDED" in proc.stdout
    assert "refused before submission: plugin ValidateLR rejected task 'train': ValueError: lr must be positive" \
        in proc.stdout
