"""The request each executor sends for one deterministic job (golden files), and the prepare/render split behind
``dryrun``: the same pure render as ``submit``, given decisions made without side effects.

``tests/contract`` proves against the real services that ``submit`` sends exactly ``dryrun``'s text (it fetches the
kept request from the job directory); these golden files pin that text. Regenerate them after an intended change
with ``NEMORUN_UPDATE_GOLDEN=1 pytest tests/unit/executors`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import nemorun_core as run
from nemorun_core.executors.base import Job
from nemorun_core.executors.docker.executor import CODE_IMAGE_PLACEHOLDER, DockerPlan
from nemorun_core.executors.docker.executor import DIGEST_PLACEHOLDER as DOCKER_DIGEST
from nemorun_core.executors.local import LocalPlan
from nemorun_core.executors.slurm.executor import DIGEST_PLACEHOLDER, HOME_PLACEHOLDER, SCRIPT_FILE, SlurmPlan
from nemorun_core.jobfiles import JobFiles

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
SRC = os.path.dirname(os.path.abspath(run.__file__))
# An import directory that exists wherever the tests run (only existing ones are mounted).
PROJECT = os.path.dirname(os.path.abspath(__file__))


def _job() -> Job:
    payload = json.dumps({"version": 1, "name": "train", "kind": "partial", "task": {"_target_": "m:f"},
                          "sys_path": [PROJECT, "/nonexistent/nemorun-project"]})
    return Job("train", "exp_20260101_000000/train/0", ["python", "-m", "nemorun_core.runner", "/store/exp/train"],
               "/store/exp/train", env={"TRAIN_MODE": "fast", "HF_TOKEN": "hf_abcdefghijklmnopqrstu"},
               files={JobFiles.TASK: payload})


def _local() -> run.LocalExecutor:
    return run.LocalExecutor(working_dir="/work/project", python="/opt/venv/bin/python3", ntasks_per_node=2,
                             env_vars={"NCCL_DEBUG": "INFO"}, cancel_grace_s=5)


def _docker() -> run.DockerExecutor:
    return run.DockerExecutor(container_image="nvcr.io/nvidia/pytorch:24.05-py3", num_gpus=1, network="none",
                              env_vars={"NCCL_DEBUG": "INFO"}, volumes=["/data:/data:ro"])


def _slurm() -> run.SlurmExecutor:
    return run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/runs"), partition="debug", account="ml",
                             time="00:30:00", env_vars={"NCCL_DEBUG": "INFO"})


def _machine_neutral(text: str) -> str:
    """Where nemorun and the tests live differs from machine to machine."""
    return text.replace(SRC, "<nemorun_core>").replace(PROJECT, "<tests/unit/executors>")


CASES = {"local": (_local, "request_local.launch.sh"), "docker": (_docker, "request_docker.json"),
         "slurm": (_slurm, "request_slurm.sbatch")}


@pytest.mark.parametrize("backend", sorted(CASES))
def test_golden_request(backend):
    make, golden = CASES[backend]
    request = make().dryrun(_job())
    text = _machine_neutral(request.text)
    path = os.path.join(GOLDEN, golden)
    if os.environ.get("NEMORUN_UPDATE_GOLDEN") == "1":
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{golden}: the request changed; see the module docstring to update"
    assert "hf_abcdefghijklmnopqrstu" not in request.text, "secret values are never in the request"
    assert not request.placeholders, "without a packager the request holds no placeholder"
    if backend == "docker":
        assert json.loads(request.text)["containers"]
    else:
        shell = "sh" if backend == "local" else "bash"
        assert subprocess.run([shell, "-n"], input=request.text, text=True).returncode == 0, "not valid shell"


def test_each_request_says_where_the_job_directory_keeps_it():
    assert _local().dryrun(_job()).sent_as == JobFiles.LAUNCH_SCRIPT
    assert _docker().dryrun(_job()).sent_as == JobFiles.REQUEST
    assert _slurm().dryrun(_job()).sent_as == SCRIPT_FILE


def test_dryrun_is_the_render_of_the_dry_plan():
    job = _job()
    for ex in (_local(), _docker(), _slurm()):
        assert ex.dryrun(job) == ex.render(job, ex.prepare(job, dry=True)), type(ex).__name__


def test_local_working_directory_is_the_absolute_one_submit_uses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = run.LocalExecutor().dryrun(_job())
    assert request.meta["cwd"] == str(tmp_path)
    assert f"cd {tmp_path} ||" in request.text, "dryrun shows the directory the job will run in, not '.'"
    relative = run.LocalExecutor(working_dir="sub").dryrun(_job())
    assert relative.meta["cwd"] == str(tmp_path / "sub")
    # a plan is all a request depends on beyond the job and the settings
    assert run.LocalExecutor().render(_job(), LocalPlan(cwd="/elsewhere")).meta["cwd"] == "/elsewhere"


def test_a_missing_working_directory_is_refused_by_prepare_not_by_dryrun(tmp_path):
    from nemorun_core.errors import SubmissionError

    ex = run.LocalExecutor(working_dir=str(tmp_path / "missing"))
    assert ex.dryrun(_job()).meta["cwd"] == str(tmp_path / "missing")
    with pytest.raises(SubmissionError, match="does not exist"):
        ex.prepare(_job())


def test_docker_task_payload_imports_from_what_the_containers_mount():
    request = _docker().dryrun(_job())
    (one,) = json.loads(request.text)["containers"]
    mounted = {m["source"] for m in one["mounts"]}
    sys_path = json.loads(request.files[JobFiles.TASK])["sys_path"]
    assert sys_path == [PROJECT] and PROJECT in mounted and "/nonexistent/nemorun-project" not in mounted


def test_docker_placeholders_are_declared_for_what_only_submission_knows(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    packaged = run.DockerExecutor(container_image="busybox:1", packager=run.PatternPackager(include=["*.py"]))
    request = packaged.dryrun(_job())
    assert set(request.placeholders) == {DOCKER_DIGEST}
    (one,) = json.loads(request.text)["containers"]
    assert {"source": str(tmp_path / "home" / "docker-code" / DOCKER_DIGEST), "target": "/workspace/code",
            "read_only": True, "type": "bind"} in one["mounts"]
    assert json.loads(request.files[JobFiles.TASK])["sys_path"] == ["/workspace/code"]
    built = run.DockerExecutor(container_image="busybox:1", packager=run.DockerImagePackager("busybox:1"))
    request = built.dryrun(_job())
    assert set(request.placeholders) == {CODE_IMAGE_PLACEHOLDER} and request.meta["image"] == CODE_IMAGE_PLACEHOLDER
    assert not os.path.exists(tmp_path / "home"), "dryrun packaged or extracted nothing"
    # what submission decided replaces the placeholder in the same render
    plan = DockerPlan(image="nemorun-code:0123456789abcdef", code_dir=None, code_target="/workspace", mounts=None,
                      files=((JobFiles.TASK, "{}"),))
    sent = built.render(_job(), plan)
    assert not sent.placeholders and json.loads(sent.text)["containers"][0]["image"] == plan.image


def test_slurm_dryrun_over_ssh_runs_nothing_and_declares_the_remote_home():
    # 192.0.2.1 is TEST-NET-1: any connection attempt would hang or fail, so passing shows none was made.
    tunnel = run.SSHTunnel(host="192.0.2.1", user="alice", job_dir="~/runs")
    ex = run.SlurmExecutor(tunnel=tunnel, packager=run.PatternPackager(include=["*.py"]))
    request = ex.dryrun(_job())
    assert set(request.placeholders) == {HOME_PLACEHOLDER, DIGEST_PLACEHOLDER}
    code_dir = f"{HOME_PLACEHOLDER}/runs/code/{DIGEST_PLACEHOLDER}"
    assert request.meta["remote_dir"] == f"{HOME_PLACEHOLDER}/runs/exp_20260101_000000/train"
    assert request.meta["code_dir"] == code_dir and f"cd '{code_dir}' ||" in request.text
    assert json.loads(request.files[JobFiles.TASK])["sys_path"] == [code_dir], "the task imports the uploaded code"
    sent = ex.render(_job(), SlurmPlan(remote_dir="/home/alice/runs/exp_20260101_000000/train",
                                       code_dir="/home/alice/runs/code/abc"))
    assert not sent.placeholders and "cd /home/alice/runs/code/abc ||" in sent.text


def test_slurm_local_tunnel_home_is_known_without_a_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="~/runs"))
    request = ex.dryrun(_job())
    assert not request.placeholders
    assert request.meta["remote_dir"] == f"{tmp_path}/runs/exp_20260101_000000/train"
