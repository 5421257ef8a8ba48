"""SlurmExecutor refuses, before anything is submitted, every value that could break its script (issue 10 items 5
and 13): full matches everywhere (``$`` in ``re.match`` also matches before a final newline), argument lists and
interpreters that could only fail inside the job, and launcher arguments that must stay data."""

from __future__ import annotations

import subprocess

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job


def _tunnel():
    return run.LocalTunnel(job_dir="/scratch/alice/runs")


def _job(command=None, name="t", key="exp/t/0"):
    return Job(name, key, command or ["bash", "/local/store/t/script.sh"], "/local/store/t")


@pytest.mark.parametrize("kwargs, field", [
    ({"partition": "debug\n"}, "partition"),
    ({"account": "acct\n"}, "account"),
    ({"qos": "high\n"}, "qos"),
    ({"constraint": "a100\n"}, "constraint"),
    ({"container_image": "img:1\n"}, "container_image"),
    ({"array": "0-9\n"}, "array"),
    ({"time": "01:00:00\n"}, "time"),
    ({"mem": "64G\n"}, "mem"),
    ({"additional_parameters": {"requeue\n": "x"}}, "additional_parameters"),
    ({"additional_parameters": {"requeue": "x\n"}}, "additional_parameters"),
    ({"additional_parameters": {"comment": "a\n#SBATCH --nodes=1"}}, "additional_parameters"),
    ({"heterogeneous": [run.SlurmResources(partition="cpu\n")]}, "heterogeneous[0].partition"),
    ({"heterogeneous": [run.SlurmResources(constraint="x\n")]}, "heterogeneous[0].constraint"),
    ({"env_vars": {"NAME\n": "x"}}, "env_vars"),
    ({"env_vars": {"A": "x\0y"}}, "env_vars"),
])
def test_a_trailing_newline_or_nul_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        run.SlurmExecutor(tunnel=_tunnel(), **kwargs)
    assert field in str(info.value)


def test_fields_changed_after_construction_are_checked_by_dryrun():
    ex = run.SlurmExecutor(tunnel=_tunnel(), partition="debug")
    ex.partition = "debug\n"
    with pytest.raises(ConfigError, match="partition"):
        ex.dryrun(_job())


def test_a_task_env_with_a_bad_name_or_nul_is_refused_naming_the_variable():
    ex = run.SlurmExecutor(tunnel=_tunnel())
    job = _job()
    job.env = {"TOKEN": "a\0b"}
    with pytest.raises(ConfigError, match="TOKEN"):
        ex.dryrun(job)
    job.env = {"X; touch /tmp/p": "1"}
    with pytest.raises(ConfigError, match="env_vars"):
        ex.dryrun(job)


@pytest.mark.parametrize("value, hint", [
    ("--mpi=pmix", "list of strings"),
    (["--mpi=pmix", 3], "item 1"),
    (["--export=A\nB"], "newline"),
    (None, "list of strings"),
])
def test_srun_args_must_be_a_list_of_one_line_strings(value, hint):
    with pytest.raises(ConfigError) as info:
        run.SlurmExecutor(tunnel=_tunnel(), srun_args=value)
    assert "srun_args" in str(info.value) and hint in str(info.value)


def test_container_mounts_are_checked_like_srun_args():
    with pytest.raises(ConfigError, match="container_mounts"):
        run.SlurmExecutor(tunnel=_tunnel(), container_image="img", container_mounts="/data:/data")


@pytest.mark.parametrize("python", ["", "  ", "python3 -u", "~/venv/bin/python", "/opt/py\nthon", "py\0", 3,
                                    "bin/python", "$(which python)"])
def test_python_that_cannot_start_is_refused(python):
    with pytest.raises(ConfigError) as info:
        run.SlurmExecutor(tunnel=_tunnel(), python=python)
    assert "SlurmExecutor.python" in str(info.value)


@pytest.mark.parametrize("python", ["python3", "python3.11", "/opt/venv/bin/python", "/opt/my env/bin/python"])
def test_python_as_a_command_name_or_absolute_path_is_accepted(python):
    ex = run.SlurmExecutor(tunnel=_tunnel(), python=python)
    assert ex.python == python


def test_launcher_arguments_stay_data_while_node_variables_expand(tmp_path):
    """With torchrun, the command goes through ``bash -c`` on every node: only nemorun's own per-node variables
    may expand there; a ``$(...)`` or quote in the user's arguments is passed through literally."""
    marker = tmp_path / "pwned"
    hostile = f'$(touch {marker}) `touch {marker}` "q" \'s\' $HOME'
    ex = run.SlurmExecutor(tunnel=_tunnel(), nodes=2, launcher=run.Torchrun())
    inner_line = next(line for line in ex.dryrun(_job(["python", "train.py", hostile])).text.splitlines()
                      if line.startswith("srun "))
    inner = inner_line.split(" bash -c ", 1)[1]
    # run the per-node command with python3 replaced by a recorder of its arguments
    probe = "python3() { printf '%s\\n' \"$@\"; }; eval " + inner
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                         env={"SLURM_NODEID": "1", "NEMORUN_HEAD_NODE": "10.0.0.7", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    assert hostile in args and "--node-rank=1" in args and "--rdzv-endpoint=10.0.0.7:29500" in args
    assert not marker.exists()


def test_a_name_cannot_break_a_comment_line_and_a_key_with_a_newline_is_refused():
    from nemorun_core.errors import SubmissionError

    ex = run.SlurmExecutor(tunnel=_tunnel())
    text = ex.dryrun(_job(name="t\ntouch /tmp/pwned")).text
    assert "\ntouch /tmp/pwned" not in text and "# nemorun Slurm job t\\ntouch /tmp/pwned\n" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    with pytest.raises(SubmissionError, match="newline"):
        ex.dryrun(_job(key="exp/t/0\nid"))


def test_job_files_without_a_tunnel_live_under_nemorun_home(tmp_path, monkeypatch):
    # Without a tunnel the cluster is this machine: its job files go under $NEMORUN_HOME, read when the executor is
    # made (not ~/.nemorun, not a value cached at import).
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    ex = run.SlurmExecutor(account="a", partition="p")
    assert ex.tunnel.job_dir == str(tmp_path / "home" / "slurm-jobs")
