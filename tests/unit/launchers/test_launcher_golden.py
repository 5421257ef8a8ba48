"""What Torchrun and FaultTolerance render, per executor (golden files), and their ``wrap`` rules.

Regenerate the golden files after an intended change with ``NEMORUN_UPDATE_GOLDEN=1 pytest tests/unit/launchers``
and review the diff.

ft_launcher (nvidia-resiliency-ext) is not installed here and none of these commands was run. Instead
``_ft_launcher_parser`` declares the options ft_launcher documents (its torchrun part and the fault-tolerance
options, in both spellings) and the rendered commands, after the shell has expanded them, must parse with it and
carry the configured values.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job
from nemorun_core.launchers import resolve_launcher
from nemorun_core.launchers.fault_tolerance import FT_LAUNCHER_MODULE

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")

LAUNCHERS = {
    "torchrun": run.Torchrun,
    "fault_tolerance": run.FaultTolerance,
}


def _job(name: str = "train") -> Job:
    payload = json.dumps({"version": 1, "name": name, "kind": "partial", "task": {"_target_": "m:f"}})
    return Job(name, f"exp_20260101_000000/{name}/0", ["python", "-m", "nemorun_core.runner", "/local/store/" + name],
               "/local/store/" + name, files={"task.json": payload})


def _local_text(launcher) -> str:
    text = run.LocalExecutor(ntasks_per_node=2, launcher=launcher).dryrun(_job()).text
    # the submitting interpreter and the working directory (the default cwd, absolute) differ from machine to machine
    return text.replace(sys.executable, "<python>").replace(os.getcwd(), "/submitting-cwd")


def _slurm_text(launcher) -> str:
    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/runs"), nodes=2, ntasks_per_node=4,
                           launcher=launcher)
    return ex.dryrun(_job()).text


def _docker_text(launcher) -> str:
    import nemorun_core

    ex = run.DockerExecutor(container_image="nvcr.io/nvidia/pytorch:24.05-py3", num_gpus=2, ntasks_per_node=2,
                            launcher=launcher, network="none")
    # where nemorun is mounted from depends on the machine
    return ex.dryrun(_job()).text.replace(os.path.dirname(nemorun_core.__file__), "<nemorun_core>")


RENDERERS = {"local": (_local_text, "launch.sh"), "slurm": (_slurm_text, "sbatch"), "docker": (_docker_text, "json")}


def _check_golden(name: str, text: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("NEMORUN_UPDATE_GOLDEN") == "1":
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{name}: rendering changed; see the module docstring to update"


@pytest.mark.parametrize("executor", sorted(RENDERERS))
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_golden(launcher, executor):
    render, suffix = RENDERERS[executor]
    text = render(LAUNCHERS[launcher]())
    _check_golden(f"{launcher}_{executor}.{suffix}", text)
    if executor == "docker":
        containers = json.loads(text)["containers"]
        assert len(containers) == 1, "one container per node runs the launcher, which starts the workers"
        assert "--nproc-per-node=2" in containers[0]["command"]
        return
    shell = "sh" if executor == "local" else "bash"
    assert subprocess.run([shell, "-n"], input=text, text=True).returncode == 0, "not valid shell"


# -- wrap ---------------------------------------------------------------------------------------------------------------

MODULE_ARGV = ["/venv/bin/python", "-m", "pkg.train", "--lr", "3e-4"]
SCRIPT_ARGV = ["/venv/bin/python", "/code/train.py", "--lr", "3e-4"]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_wrap_module_and_script(launcher):
    lc = LAUNCHERS[launcher]()
    mod = lc.wrap(MODULE_ARGV, nodes=1, nproc_per_node=2, node_rank=0, master_addr="127.0.0.1")
    assert mod[0] == "/venv/bin/python" and mod[-4:] == ["--module", "pkg.train", "--lr", "3e-4"]
    assert "-m" not in mod[3:], "the program's -m becomes the launcher's --module"
    script = lc.wrap(SCRIPT_ARGV, nodes=1, nproc_per_node=2, node_rank=0, master_addr="127.0.0.1")
    assert script[-3:] == ["/code/train.py", "--lr", "3e-4"] and "--module" not in script


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_wrap_standalone_vs_multi_node(launcher):
    lc = LAUNCHERS[launcher]()
    one = lc.wrap(SCRIPT_ARGV, nodes=1, nproc_per_node=8, node_rank=0, master_addr="127.0.0.1")
    assert "--standalone" in one and "--nproc-per-node=8" in one
    assert not [a for a in one if a.startswith(("--nnodes", "--node-rank", "--rdzv-"))]
    many = lc.wrap(SCRIPT_ARGV, nodes=4, nproc_per_node=8, node_rank=2, master_addr="10.0.0.1")
    assert "--standalone" not in many
    for arg in ("--nnodes=4", "--node-rank=2", "--rdzv-backend=c10d", "--rdzv-endpoint=10.0.0.1:29500"):
        assert arg in many


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_wrap_passes_shell_expressions_through(launcher):
    cmd = LAUNCHERS[launcher]().wrap(SCRIPT_ARGV, nodes=2, nproc_per_node=4, node_rank="$SLURM_NODEID",
                                     master_addr="$NEMORUN_HEAD_NODE")
    assert "--node-rank=$SLURM_NODEID" in cmd and "--rdzv-endpoint=$NEMORUN_HEAD_NODE:29500" in cmd


def test_fault_tolerance_shares_torchrun_arguments():
    """Everything but the module and the fault-tolerance options is Torchrun's own rendering."""
    ft = run.FaultTolerance(max_restarts=5, monitor_interval=2, log_dir="/logs", rdzv_port=29600,
                            extra_args=["--ft-cfg-path=/cfg/ft.yaml"])
    tr = run.Torchrun(max_restarts=5, monitor_interval=2, log_dir="/logs", rdzv_port=29600,
                      extra_args=[*ft.fault_tolerance_args(), "--ft-cfg-path=/cfg/ft.yaml"])
    kwargs = dict(nodes=2, nproc_per_node=4, node_rank=1, master_addr="node0")
    ft_cmd, tr_cmd = ft.wrap(MODULE_ARGV, **kwargs), tr.wrap(MODULE_ARGV, **kwargs)
    assert ft_cmd[:3] == ["/venv/bin/python", "-m", FT_LAUNCHER_MODULE]
    assert ft_cmd[3:] == tr_cmd[3:]


def test_fault_tolerance_options_and_legacy_spelling():
    ft = run.FaultTolerance(initial_rank_heartbeat_timeout=600, rank_heartbeat_timeout=None, log_level="DEBUG")
    assert ft.fault_tolerance_args() == [
        "--ft-workload-check-interval=5", "--ft-initial-rank-heartbeat-timeout=600",
        "--ft-rank-termination-signal=SIGKILL", "--ft-log-level=DEBUG",
    ]
    legacy = run.FaultTolerance(legacy_options=True, workload_check_interval=None, rank_termination_signal=None)
    assert legacy.fault_tolerance_args() == [
        "--ft-param-initial_rank_heartbeat_timeout=3600", "--ft-param-rank_heartbeat_timeout=2700",
        "--ft-param-log_level=INFO", "--ignore-missing-fault-tol-cfg",
    ]


@pytest.mark.parametrize("name", ["ft", "fault_tolerance", "FT"])
def test_resolve_by_name(name):
    assert isinstance(resolve_launcher(name), run.FaultTolerance)
    assert run.LocalExecutor(launcher=name).launcher == name


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"initial_rank_heartbeat_timeout": 0}, "initial_rank_heartbeat_timeout"),
        ({"rank_heartbeat_timeout": "5m"}, "rank_heartbeat_timeout"),
        ({"workload_check_interval": -1.0}, "workload_check_interval"),
        ({"workload_check_interval": True}, "workload_check_interval"),
        ({"rank_termination_signal": "KILL"}, "rank_termination_signal"),
        ({"rank_termination_signal": "SIGNOPE"}, "rank_termination_signal"),
        ({"rank_termination_signal": 9}, "rank_termination_signal"),
        ({"log_level": "info"}, "log_level"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"rdzv_port": 70000}, "rdzv_port"),
        ({"extra_args": "--foo"}, "extra_args"),
    ],
)
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError) as info:
        run.FaultTolerance(**kwargs)
    assert info.value.path == f"FaultTolerance.{field}" and "Torchrun" not in str(info.value)


# -- the rendered ft_launcher command parses with ft_launcher's documented options -----------------------------------


def _ft_launcher_parser(legacy: bool) -> argparse.ArgumentParser:
    """ft_launcher's options as nvidia-resiliency-ext documents them (a declaration, not ft_launcher's own code)."""
    p = argparse.ArgumentParser(prog="ft_launcher", allow_abbrev=False, exit_on_error=False)
    p.add_argument("--nnodes", type=str, default="1:1")
    p.add_argument("--nproc-per-node", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--rdzv-backend", choices=["c10d"], default="c10d")  # ft_launcher supports only c10d
    p.add_argument("--rdzv-endpoint", default="")
    p.add_argument("--rdzv-id", default="none")
    p.add_argument("--standalone", action="store_true")
    p.add_argument("--max-restarts", type=int, default=0)
    p.add_argument("--monitor-interval", type=float, default=0.3)
    p.add_argument("--log-dir", default=None)
    p.add_argument("-m", "--module", action="store_true")
    p.add_argument("--no-python", action="store_true")
    signals = sorted(signal.Signals.__members__)
    levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    if legacy:
        p.add_argument("--fault-tol-cfg-path", default=None)
        p.add_argument("--ignore-missing-fault-tol-cfg", action="store_true")
        prefix, spell = "--ft-param-", (lambda n: n)
    else:
        p.add_argument("--ft-cfg-path", default=None)
        prefix, spell = "--ft-", (lambda n: n.replace("_", "-"))
    for name in ("workload_check_interval", "initial_rank_heartbeat_timeout", "rank_heartbeat_timeout"):
        p.add_argument(prefix + spell(name), dest=name, type=float, default=None)
    p.add_argument(prefix + spell("rank_termination_signal"), dest="rank_termination_signal", choices=signals)
    p.add_argument(prefix + spell("log_level"), dest="log_level", choices=levels)
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p


def _parse(cmd: list[str], legacy: bool) -> argparse.Namespace:
    assert cmd[1:3] == ["-m", FT_LAUNCHER_MODULE], cmd[:3]
    return _ft_launcher_parser(legacy).parse_args(cmd[3:])


def _local_command(launcher) -> list[str]:
    text = run.LocalExecutor(ntasks_per_node=2, launcher=launcher).dryrun(_job()).text
    (line,) = [ln for ln in text.splitlines() if FT_LAUNCHER_MODULE in ln]
    return shlex.split(line.removesuffix(" &"))


def _slurm_command(launcher) -> list[str]:
    """The argv ft_launcher gets on node 1: the srun line run by bash with srun and python3 replaced by recorders."""
    text = _slurm_text(launcher)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("srun ")]
    probe = ("srun() { while [ \"${1#--}\" != \"$1\" ]; do shift; done; \"$@\"; }\n"
             "python3() { printf '%s\\0' python3 \"$@\"; }\nexport -f python3\n" + line + "\n")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "SLURM_NODEID": "1", "NEMORUN_HEAD_NODE": "10.0.0.7"})
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\0")[:-1]


@pytest.mark.parametrize("legacy", [False, True])
def test_local_command_parses_as_ft_launcher(legacy):
    ft = run.FaultTolerance(legacy_options=legacy, initial_rank_heartbeat_timeout=900, rank_heartbeat_timeout=120.5,
                            rank_termination_signal="SIGTERM", log_level="DEBUG", max_restarts=2)
    args = _parse(_local_command(ft), legacy)
    assert args.standalone and args.nproc_per_node == 2 and args.max_restarts == 2 and args.module
    assert (args.initial_rank_heartbeat_timeout, args.rank_heartbeat_timeout, args.workload_check_interval) == (
        900.0, 120.5, 5.0)
    assert args.rank_termination_signal == "SIGTERM" and args.log_level == "DEBUG"
    assert args.training_script == "nemorun_core.runner" and args.training_script_args == ["/local/store/train"]


@pytest.mark.parametrize("legacy", [False, True])
def test_slurm_command_parses_as_ft_launcher_after_shell_expansion(legacy):
    args = _parse(_slurm_command(run.FaultTolerance(legacy_options=legacy)), legacy)
    assert not args.standalone and args.nnodes == "2" and args.nproc_per_node == 4 and args.node_rank == 1
    assert args.rdzv_backend == "c10d" and args.rdzv_endpoint == "10.0.0.7:29500" and args.max_restarts == 3
    assert (args.initial_rank_heartbeat_timeout, args.rank_heartbeat_timeout) == (3600.0, 2700.0)
    assert args.module and args.training_script == "nemorun_core.runner"
    assert args.training_script_args == ["/scratch/runs/exp_20260101_000000/train"]


def test_the_declared_parser_is_strict():
    """The check above means something only if a wrong spelling fails it."""
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        _ft_launcher_parser(legacy=False).parse_args(["--ft-param-log_level=INFO", "x.py"])
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        _ft_launcher_parser(legacy=True).parse_args(["--ft-log-level=INFO", "x.py"])
