"""The sbatch scripts SlurmExecutor renders: golden files for the main shapes, and quoting of hostile values.

Regenerate the golden files after an intended change with ``NEMORUN_UPDATE_GOLDEN=1 pytest tests/unit/executors``
and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job, JobHandle

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
HOSTILE = "a'; touch /tmp/pwned #"


def _tunnel():
    return run.LocalTunnel(job_dir="/scratch/alice/runs")


def _python_job(name="train"):
    payload = json.dumps({"version": 1, "name": name, "kind": "partial", "task": {"_target_": "m:f"},
                          "sys_path": ["/home/alice/project"]})
    return Job(name, f"exp_20260101_000000/{name}/0", ["python", "-m", "nemorun_core.runner", "/local/store/" + name],
               "/local/store/" + name, files={"task.json": payload})


SHAPES = {
    "basic": (dict(partition="debug", account="gpu-dept", time="01:00:00",
                   env_vars={"NCCL_DEBUG": "INFO", "WANDB_API_KEY": "sk-secret-value-123456"},
                   setup_lines=["source /opt/venv/bin/activate"]), _python_job, ()),
    "torchrun_two_nodes": (dict(nodes=2, ntasks_per_node=4, gpus_per_node=8, partition="a100",
                                launcher=run.Torchrun(), time="12:00:00"), _python_job, ()),
    "array_retries_dependency": (dict(array="0-9%2", retries=2, qos="high", mem="64G", exclusive=True,
                                      constraint="a100&ib", cpus_per_task=8,
                                      additional_parameters={"mail-type": "END", "signal": "USR1@90"}),
                                 _python_job, ("101", "102")),
    "heterogeneous_container": (dict(heterogeneous=[run.SlurmResources(nodes=1, partition="cpu", cpus_per_task=4),
                                                    run.SlurmResources(nodes=2, ntasks_per_node=2,
                                                                       partition="gpu", gpus_per_node=2)],
                                     container_image="nvcr.io/nvidia/pytorch:24.05-py3",
                                     container_mounts=["/data:/data"], srun_args=["--mpi=pmix"]),
                                _python_job, ()),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_golden(shape):
    kwargs, make_job, deps = SHAPES[shape]
    ex = run.SlurmExecutor(tunnel=_tunnel(), **kwargs)
    job = make_job()
    job.depends_on = [JobHandle.create("slurm", d, f"exp/dep{d}/0") for d in deps]
    text = ex.dryrun(job).text
    path = os.path.join(GOLDEN, f"{shape}.sbatch")
    if os.environ.get("NEMORUN_UPDATE_GOLDEN") == "1":
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{shape}: rendering changed; see the module docstring to update"
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0, "not valid bash"


def test_secret_values_are_never_rendered():
    ex = run.SlurmExecutor(tunnel=_tunnel(), env_vars={"HF_TOKEN": "hf_abcdefghijklmnopqrstu", "MODE": "x"})
    text = ex.dryrun(_python_job()).text
    assert "hf_abcdefghijklmnopqrstu" not in text and "HF_TOKEN" in text and "export MODE=x" in text


def test_hostile_values_are_quoted_where_they_are_data(tmp_path):
    """Env values and script args are data: quoted, they come through unchanged and run nothing."""
    marker = tmp_path / "pwned"
    value = HOSTILE.replace("/tmp/pwned", str(marker))
    ex = run.SlurmExecutor(tunnel=_tunnel(), env_vars={"EVIL": value})
    job = Job("s", "exp/s/0", ["bash", "/local/store/s/script.sh", value], "/local/store/s")
    text = ex.dryrun(job).text
    # run the exports and the srun line with srun replaced by a recorder
    exports = "\n".join(line for line in text.splitlines() if line.startswith("export "))
    srun_line = next(line for line in text.splitlines() if line.startswith("srun "))
    probe = exports + "\nsrun() { printf '%s\\n' \"$@\"; }\n" + srun_line + '\nprintf "EVIL=%s\\n" "$EVIL"\n'
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"EVIL={value}" in out.stdout and value in out.stdout.splitlines()
    assert "/scratch/alice/runs/exp/s/script.sh" in out.stdout, "job paths point at the cluster's job dir"
    assert not marker.exists()


@pytest.mark.parametrize("field", ["partition", "account", "qos", "constraint"])
def test_hostile_values_are_refused_where_they_are_directives(field):
    with pytest.raises(ConfigError) as info:
        run.SlurmExecutor(tunnel=_tunnel(), **{field: HOSTILE})
    assert field in str(info.value) and "#SBATCH" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"time": "forever"}, "time"),
        ({"time": "1:00:00", "time_limit": "2:00:00"}, "time"),
        ({"mem": "lots"}, "mem"),
        ({"nodes": 0}, "nodes"),
        ({"gpus_per_node": -1}, "gpus_per_node"),
        ({"array": "0-9; rm"}, "array"),
        ({"retries": -1}, "retries"),
        ({"dependency_type": "after_ok"}, "dependency_type"),
        ({"env_vars": {"A B": "1"}}, "env_vars"),
        ({"additional_parameters": {"Mail Type": "END"}}, "additional_parameters"),
        ({"additional_parameters": {"comment": "two words"}}, "additional_parameters"),
        ({"setup_lines": ["a\nb"]}, "setup_lines"),
        ({"launcher": "mpirun"}, "launcher"),
    ],
)
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError) as info:
        run.SlurmExecutor(tunnel=_tunnel(), **kwargs)
    assert field in str(info.value)


def test_time_limit_is_an_alias_of_time():
    ex = run.SlurmExecutor(tunnel=_tunnel(), time_limit="24:00:00")
    assert ex.time == "24:00:00" and "--time=24:00:00" in ex.dryrun(_python_job()).text


def test_spec_examples_construct():
    run.SlurmExecutor(nodes=4, gpus_per_node=8, time="12:00:00", account="gpu-dept", partition="a100", qos="high",
                      env_vars={"NCCL_IB_DISABLE": "0", "NCCL_DEBUG": "INFO"})
    run.SlurmExecutor(nodes=4, gpus_per_node=8, time_limit="24:00:00")


def test_pending_job_that_can_never_start_is_terminal_even_when_sacct_lags():
    from nemorun_core.executors.base import JobState
    from nemorun_core.executors.slurm import states

    queued = states.parse_squeue("1482|PENDING|DependencyNeverSatisfied\n")
    accounted = states.parse_sacct("1482|1482|PENDING|0:0|None\n")
    status = states.combine("1482", queued, accounted)
    assert status.state is JobState.CANCELLED and "DependencyNeverSatisfied" in status.message
    # once it really ended, sacct's record (with its reason) wins over squeue's leftover line
    ended = states.combine("1482", states.parse_squeue("1482|CANCELLED|None\n"),
                           states.parse_sacct("1482|1482|CANCELLED by 1002|0:0|DependencyNeverSatisfied\n"))
    assert ended.state is JobState.CANCELLED and ended.message == "DependencyNeverSatisfied"


def test_array_job_is_the_worst_of_its_elements():
    from nemorun_core.executors.base import JobState
    from nemorun_core.executors.slurm import states

    accounted = states.parse_sacct("101|100_0|COMPLETED|0:0|None\n102|100_1|FAILED|3:0|None\n")
    assert states.combine("100", {}, accounted).state is JobState.FAILED
    assert states.combine("100", states.parse_squeue("100_2|RUNNING|None\n"),
                          states.parse_sacct("101|100_0|COMPLETED|0:0|None\n")).state is JobState.RUNNING
    assert states.parse_exit("0:9") == 137 and states.status_of("OUT_OF_MEMORY").state is JobState.FAILED


def test_an_array_has_ended_only_when_every_element_is_accounted():
    from nemorun_core.executors.base import JobState
    from nemorun_core.executors.slurm import states

    assert states.array_elements("0-9%2") == set(range(10)) and states.array_elements("1,3,8-10:2") == {1, 3, 8, 10}
    early = states.parse_sacct("1521|1521|COMPLETED|0:0|None\n")  # seen on slurm 22.05 before the split
    assert states.combine("1521", {}, early, "0-2").state is JobState.RUNNING
    full = states.parse_sacct("1522|1521_0|COMPLETED|0:0|None\n1523|1521_1|FAILED|1:0|None\n"
                              "1521|1521_2|COMPLETED|0:0|None\n")
    assert states.combine("1521", {}, full, "0-2").state is JobState.FAILED
