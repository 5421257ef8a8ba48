"""Every executor treats NeMo Run's pass-through ``run.Packager()`` as ``packager=None``: no code is packaged or
uploaded, and the request is the one sent without a packager. A setting that is not a packager is refused when
the executor is made."""

from __future__ import annotations

import json
import os

import pytest

import nemorun_core as run
from nemorun_core.config.serialize import decode, encode
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job
from nemorun_core.jobfiles import JobFiles

PROJECT = os.path.dirname(os.path.abspath(__file__))


def _job() -> Job:
    payload = json.dumps({"version": 1, "name": "train", "kind": "partial", "task": {"_target_": "m:f"},
                          "sys_path": [PROJECT]})
    return Job("train", "exp_20260101_000000/train/0", ["python", "-m", "nemorun_core.runner", "/store/exp/train"],
               "/store/exp/train", files={JobFiles.TASK: payload})


MAKERS = {
    "slurm": lambda **kw: run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/runs"), partition="debug", **kw),
    "docker": lambda **kw: run.DockerExecutor(container_image="python:3.11-slim", network="none", **kw),
}


@pytest.mark.parametrize("backend", sorted(MAKERS))
def test_pass_through_request_is_the_one_without_a_packager(backend):
    passthrough = MAKERS[backend](packager=run.Packager()).dryrun(_job())
    none = MAKERS[backend]().dryrun(_job())
    assert passthrough.text == none.text and passthrough.files == none.files
    assert not passthrough.placeholders, "nothing is packaged, so dryrun knows everything it sends"
    packaged = MAKERS[backend](packager=run.PatternPackager(include=["*.py"])).dryrun(_job())
    assert packaged.placeholders, "a packager that ships code does get a package digest placeholder"


def test_slurm_submission_packages_and_uploads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir=str(tmp_path / "cluster")), packager=run.Packager())
    plan = ex.prepare(_job())  # what submit decides (a real plan, not a dry one)
    assert plan.code_dir is None and not plan.placeholders
    assert not os.path.exists(tmp_path / "home" / "packages") and not os.path.exists(tmp_path / "cluster" / "code")


@pytest.mark.parametrize("make, field", [
    (lambda: run.LocalExecutor(packager="git"), "LocalExecutor.packager"),
    (lambda: MAKERS["slurm"](packager="git"), "SlurmExecutor.packager"),
    (lambda: MAKERS["docker"](packager=["*.py"]), "DockerExecutor.packager"),
])
def test_a_packager_setting_that_is_not_a_packager_names_the_field(make, field):
    with pytest.raises(ConfigError, match=rf"{field}: must be a packager \(run.Packager\(\) for none"):
        make()


def test_docker_image_packager_needs_a_packager_that_ships_code():
    with pytest.raises(ConfigError, match=r"DockerImagePackager.packager: the pass-through run.Packager\(\) puts "
                                          r"no code into the image"):
        run.DockerImagePackager("python:3.11-slim", packager=run.Packager())


@pytest.mark.parametrize("backend", sorted(MAKERS))
def test_executor_with_pass_through_packager_round_trips(backend):
    ex = MAKERS[backend](packager=run.Packager())
    assert decode(encode(ex), build=True) == ex
