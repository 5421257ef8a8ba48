"""NeMo Run's executor and launcher fields on ours: each reaches the sbatch script, the container spec or the local
processes it is meant for (``dryrun`` shows it), and a bad value is a ``ConfigError`` naming the field."""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from pathlib import Path

import pytest

import nemorun_core as run
from nemorun_core.core.execution.launcher import Launcher
from nemorun_core.core.execution.slurm import SlurmJobDetails
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job, JobHandle
from nemorun_core.executors.slurm.details import SlurmJobDetails as RealSlurmJobDetails


def _job(name="train", job_dir="/local/store/train", command=("python", "-m", "pkg.train")):
    return Job(name, f"exp_1/{name}/0", list(command), job_dir)


def _slurm(**kwargs):
    return run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/alice/runs"), **kwargs)


def _sbatch(ex, job=None):
    return [line[len("#SBATCH "):] for line in ex.dryrun(job or _job()).text.splitlines() if line.startswith("#SBATCH ")]


def _srun(ex, job=None):
    return next(line for line in ex.dryrun(job or _job()).text.splitlines() if line.startswith("srun "))


def _error(make, path):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path, info.value
    return str(info.value)


class MyJobDetails(SlurmJobDetails):
    """The docs' example: custom stdout/stderr paths."""

    @property
    def stdout(self) -> Path:
        return Path(self.folder) / "job_%x_%j.out"

    @property
    def stderr(self) -> Path:
        return Path(self.folder) / "job.err"


# -- SlurmExecutor ---------------------------------------------------------------------------------------------------
def test_job_details_sets_the_log_paths_and_the_handle_reads_them_back():
    assert SlurmJobDetails is RealSlurmJobDetails and run.SlurmExecutor.__module__.startswith("nemorun_core")
    ex = _slurm(stderr_to_stdout=False, job_name_prefix="acct-nemo-ux:")
    ex.job_details = MyJobDetails()  # as the docs do, after construction
    lines = _sbatch(ex)
    job_dir = "/scratch/alice/runs/exp_1/train"
    assert "job-name=acct-nemo-ux:exp_1.train.0" in lines[0]
    assert f"--output={job_dir}/job_acct-nemo-ux:exp_1.train.0_%j.out" in lines
    assert f"--error={job_dir}/job.err" in lines
    extras = ex.log_extras(_job(), job_dir)
    handle = JobHandle.create("slurm", "4242", "exp_1/train/0", job_dir, **extras)
    assert ex.log_file(handle) == f"{job_dir}/job_acct-nemo-ux:exp_1.train.0_4242.out"
    assert ex.err_file(handle) == f"{job_dir}/job.err"
    assert "stderr: " in ex.log_location(handle)
    # and through JSON, as an orchestrator keeps it
    assert ex.log_file(JobHandle.from_json(handle.to_json())) == ex.log_file(handle)


def test_default_job_details_keep_the_log_in_the_job_directory_and_the_handle_plain():
    ex = _slurm()
    assert "--output=/scratch/alice/runs/exp_1/train/log.out" in _sbatch(ex)
    assert not any(line.startswith("--error") for line in _sbatch(ex))
    assert ex.log_extras(_job(), "/scratch/alice/runs/exp_1/train") == {}
    sep = _slurm(stderr_to_stdout=False)
    assert "--error=/scratch/alice/runs/exp_1/train/log.err" in _sbatch(sep)
    folder = _slurm(job_details=SlurmJobDetails(folder="logs"))
    assert "--output=/scratch/alice/runs/exp_1/train/logs/log.out" in _sbatch(folder)


def test_logs_and_poll_many_read_the_custom_log_file(tmp_path):
    """Through a LocalTunnel the remote commands run here for real (no Slurm: squeue/sacct answer nothing)."""
    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir=str(tmp_path)))
    ex.job_details = MyJobDetails()
    job = _job()
    job_dir = ex.remote_dir(job)
    os.makedirs(job_dir)
    handle = JobHandle.create("slurm", "77", job.key, job_dir, **ex.log_extras(job, job_dir))
    Path(ex.log_file(handle)).write_text("one\ntwo\n")
    assert list(ex.logs(handle)) == ["one", "two"]
    assert list(ex.logs(handle, offset=1)) == ["two"]
    ((status, lines),) = ex.poll_many({handle: 0}).values()
    assert lines == ["one", "two"]
    assert ex.log_tail(handle, 1) == ["two"]


@pytest.mark.parametrize("details, message", [
    ("logs/", "must be a SlurmJobDetails"),
    (type("PerTask", (SlurmJobDetails,), {"stdout": property(lambda s: f"{s.folder}/out_%t.log")})(), "%t"),
    (type("Home", (SlurmJobDetails,), {"stdout": property(lambda s: "~/out.log")})(), "does not expand '~'"),
    (type("Spaces", (SlurmJobDetails,), {"stdout": property(lambda s: "/a b/out.log")})(), "cannot carry"),
])
def test_bad_job_details_name_the_field(details, message):
    ex = _slurm()
    ex.job_details = details
    assert message in _error(lambda: ex.dryrun(_job()), "SlurmExecutor.job_details")


def test_job_details_with_job_id_in_an_array_says_to_use_the_array_id():
    ex = _slurm(array="0-3", job_details=MyJobDetails())
    assert "%A" in _error(lambda: ex.dryrun(_job()), "SlurmExecutor.job_details")


def test_sbatch_options_of_nemo_run_are_rendered():
    ex = _slurm(gres="gpu:8", exclude="node[01-03],node07", comment="ablation run #3", mem_per_gpu="80G",
                cpus_per_gpu=8, gpus_per_node=8, signal="B:USR1@90", network="sn_all")
    lines = _sbatch(ex)
    for expected in ("--gres=gpu:8", "--exclude=node[01-03],node07", "--mem-per-gpu=80G", "--cpus-per-gpu=8",
                     "--signal=B:USR1@90", "--network=sn_all"):
        assert expected in lines
    (comment,) = [line for line in lines if line.startswith("--comment")]
    assert shlex.split(comment) == ["--comment=ablation run #3"]  # quoted as sbatch's own parser takes it
    assert _slurm(mem_per_cpu="4G").dryrun(_job()).text.count("--mem-per-cpu=4G") == 1


def test_resource_options_go_to_every_component_of_a_heterogeneous_job():
    ex = _slurm(gres="gpu:2", heterogeneous=[run.SlurmResources(nodes=1), run.SlurmResources(nodes=2)])
    text = ex.dryrun(_job()).text
    assert text.count("#SBATCH --gres=gpu:2") == 2 and "#SBATCH hetjob" in text


def test_dependencies_join_the_experiments_own():
    ex = _slurm(dependencies=["123", "slurm_tunnel://nemo_run/456/master/0", "789_2"], dependency_type="afterany")
    job = _job()
    job.depends_on = [JobHandle.create("slurm", "99", "exp_1/prep/0"), JobHandle.create("slurm", "123", "x/y/0")]
    assert "--dependency=afterany:99:123:456:789_2" in _sbatch(ex, job)
    assert "exp.add" in _error(lambda: _slurm(dependencies=["data-prep"]), "SlurmExecutor.dependencies")
    _error(lambda: _slurm(dependencies="123"), "SlurmExecutor.dependencies")


def test_container_env_goes_to_srun_and_needs_an_image():
    ex = _slurm(container_image="nvcr.io/nvidia/pytorch:24.05-py3", container_env=["HF_HOME", "WANDB_MODE"],
                env_vars={"HF_HOME": "/data/hf", "WANDB_MODE": "offline"})
    assert "--container-env=HF_HOME,WANDB_MODE" in _srun(ex)
    _error(lambda: _slurm(container_env=["HF_HOME"]), "SlurmExecutor.container_env")
    _error(lambda: _slurm(container_image="python:3.12", container_env=["1BAD"]), "SlurmExecutor.container_env")


@pytest.mark.parametrize("kwargs, path", [
    (dict(mem="64G", mem_per_gpu="8G", gpus_per_node=1), "SlurmExecutor.mem_per_gpu"),
    (dict(mem_per_cpu="4G", mem_per_gpu="8G", gpus_per_node=1), "SlurmExecutor.mem_per_cpu"),
    (dict(mem_per_gpu="lots"), "SlurmExecutor.mem_per_gpu"),
    (dict(cpus_per_gpu=4, cpus_per_task=2, gpus_per_node=1), "SlurmExecutor.cpus_per_gpu"),
    (dict(cpus_per_gpu=4), "SlurmExecutor.cpus_per_gpu"),
    (dict(cpus_per_gpu=0, gres="gpu:1"), "SlurmExecutor.cpus_per_gpu"),
    (dict(signal="USR9@90"), "SlurmExecutor.signal"),
    (dict(signal="USR1 @90"), "SlurmExecutor.signal"),
    (dict(comment="two\nlines"), "SlurmExecutor.comment"),
    (dict(gres="gpu 8"), "SlurmExecutor.gres"),
    (dict(exclude="node1;rm"), "SlurmExecutor.exclude"),
    (dict(network="a b"), "SlurmExecutor.network"),
    (dict(job_name_prefix="my team"), "SlurmExecutor.job_name_prefix"),
    (dict(stderr_to_stdout="no"), "SlurmExecutor.stderr_to_stdout"),
    (dict(signal="USR1@90", additional_parameters={"signal": "USR2@60"}), "SlurmExecutor.signal"),
    (dict(heterogeneous=True), "SlurmExecutor.heterogeneous"),
])
def test_bad_nemo_run_options_name_the_field(kwargs, path):
    _error(lambda: _slurm(**kwargs), path)


def test_signal_accepts_slurms_forms():
    for value in ("USR1", "SIGUSR1@90", "10@60", "R:TERM@300", "B:USR2"):
        assert f"--signal={value}" in _sbatch(_slurm(signal=value))


def test_setup_lines_as_one_text_and_additional_parameters_none():
    ex = _slurm(setup_lines="module load cuda\nsource /opt/venv/bin/activate", additional_parameters=None)
    text = ex.dryrun(_job()).text
    assert "\nmodule load cuda\nsource /opt/venv/bin/activate\n" in text


def test_slurm_dryrun_over_ssh_with_job_details_declares_the_home():
    ex = run.SlurmExecutor(tunnel=run.SSHTunnel(host="login.example", user="alice", job_dir="~/runs"),
                           stderr_to_stdout=False)
    request = ex.dryrun(_job())
    assert "#SBATCH --error=<remote home>/runs/exp_1/train/log.err" in request.text
    assert "<remote home>" in request.placeholders


def test_slurm_methods():
    ex = _slurm(nodes=2, ntasks_per_node=4)
    assert (ex.nnodes(), ex.nproc_per_node()) == (2, 4)
    assert ex.info() == "SlurmExecutor on local"


# -- DockerExecutor --------------------------------------------------------------------------------------------------
IMAGE = "python:3.12"


def _containers(ex):
    return json.loads(ex.dryrun(_job(job_dir="/tmp/nemorun-test-job")).text)["containers"]


def test_docker_privileged_healthcheck_and_additional_kwargs_reach_the_container_spec():
    ex = run.DockerExecutor(container_image=IMAGE, privileged=True, num_gpus=-1,
                            healthcheck={"test": ["CMD", "true"], "interval": 10**10, "retries": 3},
                            additional_kwargs={"mem_limit": "4g"})
    (spec,) = _containers(ex)
    assert spec["privileged"] is True and spec["mem_limit"] == "4g"
    assert spec["healthcheck"] == {"test": ["CMD", "true"], "interval": 10**10, "retries": 3}
    assert spec["device_requests"][0]["count"] == -1 and ex.num_gpus == "all"
    assert ex.extra_args == {"mem_limit": "4g"} and ex.additional_kwargs is None
    (plain,) = _containers(run.DockerExecutor(container_image=IMAGE))
    assert "privileged" not in plain and "healthcheck" not in plain


@pytest.mark.parametrize("kwargs, path", [
    (dict(healthcheck={"tset": ["CMD", "true"]}), "DockerExecutor.healthcheck"),
    (dict(healthcheck={"test": ["CMD", "true"], "interval": 5}), "DockerExecutor.healthcheck"),
    (dict(healthcheck={"interval": 10**10}), "DockerExecutor.healthcheck"),
    (dict(healthcheck={"test": []}), "DockerExecutor.healthcheck"),
    (dict(privileged="yes"), "DockerExecutor.privileged"),
    (dict(privileged=True, extra_args={"privileged": True}), "DockerExecutor.privileged"),
    (dict(extra_args={"mem_limit": "1g"}, additional_kwargs={"mem_limit": "2g"}), "DockerExecutor.additional_kwargs"),
    (dict(additional_kwargs={"restart_policy": {"Name": "always"}}), "DockerExecutor.extra_args"),
])
def test_bad_docker_fields_name_the_field(kwargs, path):
    _error(lambda: run.DockerExecutor(container_image=IMAGE, **kwargs), path)


def test_docker_methods():
    ex = run.DockerExecutor(container_image=IMAGE, nodes=2, ntasks_per_node=3, docker_host="unix:///x.sock")
    assert (ex.nnodes(), ex.nproc_per_node()) == (2, 3) and ex.info() == "DockerExecutor on unix:///x.sock"


# -- LocalExecutor(nodes=) -------------------------------------------------------------------------------------------
def _wait(ex, handle, timeout=90):
    deadline = time.time() + timeout
    while not ex.status(handle).is_terminal and time.time() < deadline:
        time.sleep(0.2)
    return ex.status(handle)


@pytest.mark.local
def test_local_nodes_start_one_group_of_ranks_per_node(tmp_path):
    ex = run.LocalExecutor(nodes=2, ntasks_per_node=2)
    assert (ex.nnodes(), ex.nproc_per_node(), ex.info()) == (2, 2, "LocalExecutor on this machine")
    job = _job(job_dir=str(tmp_path), command=["/bin/sh", "-c", "echo R=$RANK L=$LOCAL_RANK N=$NODE_RANK W=$WORLD_SIZE"])
    handle = ex.submit(job)
    assert _wait(ex, handle).exit_code == 0
    assert sorted(ex.logs(handle)) == ["R=0 L=0 N=0 W=4", "R=1 L=1 N=0 W=4", "R=2 L=0 N=1 W=4", "R=3 L=1 N=1 W=4"]
    _error(lambda: run.LocalExecutor(nodes=0), "LocalExecutor.nodes")


def test_local_nodes_with_torchrun_render_one_launcher_per_node():
    ex = run.LocalExecutor(nodes=2, ntasks_per_node=3, launcher=run.Torchrun(rdzv_id=7))
    lines = [line for line in ex.dryrun(_job(job_dir="/tmp/j")).text.splitlines() if "torch.distributed.run" in line]
    assert len(lines) == 2
    for node, line in enumerate(lines):
        assert line.startswith(f"NODE_RANK={node} ") and f"--node-rank={node}" in line
        assert "--nnodes=2" in line and "--rdzv-endpoint=127.0.0.1:29500" in line and "--rdzv-id=7" in line


@pytest.mark.torch
@pytest.mark.local
def test_local_nodes_with_torchrun_rendezvous_for_real(tmp_path):
    pytest.importorskip("torch")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "rank.py"
    script.write_text("import os\nprint('R', os.environ['RANK'], os.environ['GROUP_RANK'], os.environ['WORLD_SIZE'])\n")
    ex = run.LocalExecutor(nodes=2, ntasks_per_node=1, launcher=run.Torchrun(rdzv_port=port))
    handle = ex.submit(_job(job_dir=str(tmp_path), command=["python", str(script)]))
    assert _wait(ex, handle, timeout=120).exit_code == 0, ex.log_tail(handle)
    assert sorted(line for line in ex.logs(handle) if line.startswith("R ")) == ["R 0 0 2", "R 1 1 2"]


# -- launchers -------------------------------------------------------------------------------------------------------
def _wrap(launcher, argv=("python", "-m", "pkg.train", "--lr=1"), nodes=2, profile_dir="/jobs/j"):
    from nemorun_core.launchers import wrap_command

    return wrap_command(launcher, list(argv), nodes=nodes, nproc_per_node=4, node_rank=1, master_addr="10.0.0.1",
                        profile_dir=profile_dir)


def test_torchrun_rdzv_id_and_backend():
    assert "--rdzv-id=run42" in _wrap(run.Torchrun(rdzv_id="run42"))
    assert "--rdzv-id=nemorun" in _wrap(run.Torchrun())
    assert not any(a.startswith("--max-restarts") for a in _wrap(run.Torchrun(max_restarts=None)))
    _error(lambda: run.Torchrun(rdzv_id="a b"), "Torchrun.rdzv_id")


def test_nsys_profile_runs_each_worker_under_nsys():
    launcher = run.Torchrun(nsys_profile=True, nsys_trace=["nvtx", "cuda", "osrt"])
    assert isinstance(launcher, Launcher)
    cmd = _wrap(launcher)
    i = cmd.index("--no-python")
    program = cmd[i + 1:]
    assert program[:5] == ["sh", "-c", 'mkdir -p -- "$1" && shift && exec nsys "$@"', "nsys-profile",
                           "/jobs/j/nsys_profile"]
    assert program[5:11] == ["profile", "-s", "none", "-t", "nvtx,cuda,osrt", "-o"]
    assert program[11] == "/jobs/j/nsys_profile/profile_%p" and "--capture-range=cudaProfilerApi" in program
    assert program[-4:] == ["python", "-m", "pkg.train", "--lr=1"]  # the task, unchanged, after nsys's options
    torch_run = pytest.importorskip("torch.distributed.run")
    args = torch_run.get_args_parser().parse_args(cmd[3:])
    assert args.no_python and args.training_script == "sh" and args.nnodes == "2"


def test_nsys_profile_reaches_the_executors_with_their_job_directory():
    tr = run.Torchrun(nsys_profile=True)
    slurm = _slurm(nodes=2, launcher=tr).dryrun(_job()).text
    assert "/scratch/alice/runs/exp_1/train/nsys_profile/profile_%p" in slurm
    local = run.LocalExecutor(launcher=tr).dryrun(_job(job_dir="/tmp/jd")).text
    assert "/tmp/jd/nsys_profile" in local
    (spec,) = _containers(run.DockerExecutor(container_image=IMAGE, launcher=tr))
    assert "/tmp/nemorun-test-job/nsys_profile" in spec["command"]


@pytest.mark.parametrize("make, path", [
    (lambda: run.Torchrun(nsys_trace="cuda"), "Torchrun.nsys_trace"),
    (lambda: run.Torchrun(nsys_gpu_metrics=True), "Torchrun.nsys_gpu_metrics"),
    (lambda: run.Torchrun(nsys_folder="~/prof"), "Torchrun.nsys_folder"),
    (lambda: run.Torchrun(nsys_filename="a b"), "Torchrun.nsys_filename"),
    (lambda: run.FaultTolerance(nsys_extra_args="--x"), "FaultTolerance.nsys_extra_args"),
    (lambda: run.FaultTolerance(rdzv_backend="etcd"), "FaultTolerance.rdzv_backend"),
    (lambda: run.FaultTolerance(finished_flag_file="/x/flag"), "FaultTolerance.finished_flag_file"),
    (lambda: run.FaultTolerance(job_results_file="/x/res"), "FaultTolerance.job_results_file"),
])
def test_bad_launcher_fields_name_the_field(make, path):
    _error(make, path)


def test_fault_tolerance_takes_nemo_runs_fields():
    ft = run.FaultTolerance(cfg_path="/cfg/ft.yaml", rdzv_id=5, max_restarts=None, nsys_profile=True)
    cmd = _wrap(ft)
    assert "--ft-cfg-path=/cfg/ft.yaml" in cmd and "--rdzv-id=5" in cmd
    assert not any(a.startswith("--max-restarts") for a in cmd) and "--no-python" in cmd
    legacy = _wrap(run.FaultTolerance(cfg_path="/cfg/ft.yaml", legacy_options=True))
    assert "--fault-tol-cfg-path=/cfg/ft.yaml" in legacy and "--ignore-missing-fault-tol-cfg" not in legacy


@pytest.mark.local
def test_local_retries_start_the_job_again_while_a_process_fails(tmp_path):
    # rank 0 fails on its first two attempts (it counts them in a file), rank 1 always succeeds
    count = tmp_path / "count"
    script = ('n=$(cat "$0" 2>/dev/null || echo 0); [ "$RANK" = 0 ] && echo $((n+1)) > "$0"; '
              'echo "try $n rank $RANK"; [ "$n" -ge 2 ] || [ "$RANK" = 1 ]')
    job = _job(job_dir=str(tmp_path), command=["/bin/sh", "-c", script, str(count)])
    ex = run.LocalExecutor(retries=2, ntasks_per_node=2)
    handle = ex.submit(job)
    assert _wait(ex, handle).exit_code == 0
    lines = list(ex.logs(handle))
    assert sum("starting it again" in line for line in lines) == 2 and "try 2 rank 0" in lines

    count.unlink()
    once = run.LocalExecutor(retries=1, ntasks_per_node=2)
    handle = once.submit(_job(name="again", job_dir=str(tmp_path / "again"), command=job.command))
    status = _wait(once, handle)
    assert status.state is run.JobState.FAILED and count.read_text().strip() == "2"  # two attempts, then failed
    _error(lambda: run.LocalExecutor(retries=-1), "LocalExecutor.retries")
    assert "attempt=1" not in run.LocalExecutor().dryrun(_job(job_dir="/tmp/j")).text
