"""``dryrun=True`` shows exactly what would run and starts nothing: the local head's script, and a job's request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.executors.ray.request import submission_id
from nemorun_core.ray.local import MARKER
from nemorun_core.run.ray import RayCluster, RayJob


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _no_popen(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"dryrun started a process: {args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def test_the_local_head_script_is_what_start_runs(home, monkeypatch, capsys):
    # The spec's second shape: sizes only; where it runs defaults to this machine.
    cluster = RayCluster(name="sized", num_nodes=1, gpus_per_node=0, cpus_per_node=2, memory_per_node="3GB")
    _no_popen(monkeypatch)
    text = cluster.start(pre_ray_start_commands=["pip list >/dev/null", "mkdir -p /tmp/cache dir"], dryrun=True)
    assert capsys.readouterr().out == text
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    assert f"export {MARKER}={os.path.join(str(home), 'ray', 'sized')}" in lines
    # the commands run, in order, before `ray start`, which is the script's last line (exec: Ray is the process)
    assert lines[-3:-1] == ["pip list >/dev/null", "mkdir -p /tmp/cache dir"]
    start = lines[-1]
    assert start.startswith(f"exec {sys.executable} -m ray.scripts.scripts start --head --block ")
    for flag in ("--num-cpus=2", "--num-gpus=0", f"--memory={3 * 10**9}", "--dashboard-host=127.0.0.1",
                 "--node-ip-address=127.0.0.1", "--disable-usage-stats"):
        assert flag in start.split()
    assert not os.path.exists(home / "ray" / "sized"), "dryrun wrote the cluster's state"


def test_a_job_dryrun_shows_the_cluster_script_and_the_request(home, monkeypatch, tmp_path, capsys):
    workdir = tmp_path / "project"
    workdir.mkdir()
    env_yaml = tmp_path / "runtime_env.yaml"
    env_yaml.write_text("env_vars: {MODE: fast}\npip: [numpy]\n")
    job = RayJob(name="train", executor=run.LocalExecutor())
    _no_popen(monkeypatch)
    text = job.start(command="python train.py --lr 0.1", workdir=str(workdir), runtime_env_yaml=str(env_yaml),
                     pre_ray_start_commands=["echo before"], dryrun=True)
    assert capsys.readouterr().out == text
    script, _, request_text = text.partition("\n{")
    assert "echo before\nexec " in script and "ray.scripts.scripts start --head" in script
    request = json.loads("{" + request_text)
    assert request["submission_id"] == submission_id("ray-train/train/0")
    assert request["entrypoint"].endswith("exec /bin/sh -c 'python train.py --lr 0.1'")
    assert request["runtime_env"]["working_dir"] == str(workdir)
    assert request["runtime_env"]["pip"] == ["numpy"] and request["runtime_env"]["env_vars"]["MODE"] == "fast"
    assert request["metadata"] == {"nemorun.key": "ray-train/train/0", "nemorun.name": "train"}
    assert not os.path.exists(home / "ray"), "dryrun wrote state"


def test_submission_ids_are_stable_safe_and_distinct():
    a, b = submission_id("exp-1/train/0"), submission_id("exp-1/train/1")
    assert a == submission_id("exp-1/train/0") and a != b
    assert a.startswith("nemorun-exp-1-train-0-") and all(c.isalnum() or c in "-_" for c in a)
    assert submission_id("a'; echo x/t/0") != submission_id("a-echo-x/t/0")
