"""The helpers every executor shares: line splitting (``lines``), the rank environment (``ranks``), install once per
digest (``install``), the settings checks (``fields``) and the interpreter token (``base.PYTHON``)."""

from __future__ import annotations

import os
import subprocess

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors import install, ranks
from nemorun_core.executors.base import PYTHON, Job, resolve_argv, runner_command
from nemorun_core.executors.fields import (check_arg_list, check_count, check_env_vars, check_interpreter,
                                           check_seconds, check_word)
from nemorun_core.executors.lines import LineBuffer, cut_note, split_complete


# -- lines -------------------------------------------------------------------------------------------------------------
def test_a_partial_line_is_held_until_its_newline_arrives():
    buffer = LineBuffer()
    assert buffer.feed(b"one\ntw") == [b"one"]
    assert buffer.final() == [b"tw"] and buffer.pending == b"tw", "final() leaves the buffer as it was"
    assert buffer.feed(b"o\r\n\nthree") == [b"two\r", b""], "split at \\n only: a \\r stays in its line"
    assert buffer.feed(b"") == [] and buffer.final() == [b"three"]


def test_an_endless_line_is_cut_once_and_its_rest_is_not_a_line():
    buffer = LineBuffer(max_bytes=4)
    assert buffer.feed(b"abcdefg") == [b"abcd" + cut_note(4).encode()]
    assert buffer.skipping and buffer.final() == []
    assert buffer.feed(b"hij\nok\n") == [b"ok"]
    resumed = LineBuffer(b"ab", False, max_bytes=4)  # state kept between reads (a cursor) resumes the line
    assert resumed.feed(b"c\n") == [b"abc"]


@pytest.mark.parametrize("chunk, final, cap, expected", [
    (b"a\nb", False, None, ["a"]),
    (b"a\nb", True, None, ["a", "b"]),
    ("a\nb\n", True, None, ["a", "b"]),
    (b"\xff\n", False, None, ["\ufffd"]),
    (b"xxxxxx", False, 6, ["xxxxxx" + cut_note(6)]),
    (b"", True, None, []),
])
def test_split_complete(chunk, final, cap, expected):
    assert split_complete(chunk, final=final, max_bytes=cap) == expected


def test_poll_offsets_must_be_line_numbers():
    from nemorun_core.errors import ExecutorError
    from nemorun_core.executors.base import JobHandle
    from nemorun_core.executors.lines import check_offsets

    handle = JobHandle.create("local", "123", "e/t/0", "/j")
    check_offsets({handle: 0})
    for bad in (-1, True, "3"):
        with pytest.raises(ExecutorError, match=r"job 123 \(e/t/0\) must be a line number >= 0"):
            check_offsets({handle: bad})


def test_the_slurm_round_never_takes_a_capped_chunks_last_piece_for_a_line():
    from nemorun_core.executors.slurm import remote

    cap = remote.POLL_MAX_BYTES
    assert remote._new_lines(b"a\nb", terminal=True) == ["a", "b"]
    assert remote._new_lines(b"a\n" + b"b" * (cap - 2), terminal=True) == ["a"], "truncated by the cap: held"
    assert remote._new_lines(b"b" * cap, terminal=False) == ["b" * cap + cut_note(cap)]


# -- ranks -------------------------------------------------------------------------------------------------------------
def test_literal_rank_environment():
    envs = ranks.process_envs(2, 2, "10.0.0.1", 29555)
    assert [e["RANK"] for e in envs] == ["0", "1", "2", "3"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1"]
    assert [e["NODE_RANK"] for e in envs] == [e["GROUP_RANK"] for e in envs] == ["0", "0", "1", "1"]
    assert all(set(e) == set(ranks.PROCESS_VARS) for e in envs)
    assert {(e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"], e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs} == {
        ("4", "2", "10.0.0.1", "29555")}
    assert ranks.process_envs(1, 1, ranks.LOOPBACK, None) == [{}], "one process: nothing to rendezvous with"
    with pytest.raises(ValueError, match="port"):
        ranks.process_envs(1, 2, ranks.LOOPBACK, None)
    assert ranks.node_env(1, 2) == {"NODE_RANK": "1", "GROUP_RANK": "1", "NEMORUN_NODE_RANK": "1"}
    assert ranks.node_env(0, 1) == {}


@pytest.mark.parametrize("groups, per_node", [([(2, 2)], ["2", "2"]), ([(1, 1), (2, 3)], ["1", "3", "3"])])
def test_slurm_task_environment_evaluates_to_the_literal_one(groups, per_node):
    """The shell expressions, run as a task would with Slurm's own variables, give what rank_env gives."""
    prelude = ranks.exports(ranks.slurm_task_env(groups))
    procid = 0
    for node, local_world in enumerate(per_node):
        for local in range(int(local_world)):
            env = {"PATH": os.environ["PATH"], "SLURM_PROCID": str(procid), "SLURM_LOCALID": str(local),
                   "SLURM_NODEID": str(node), "SLURM_NTASKS": str(sum(n * t for n, t in groups)),
                   "SLURM_JOB_ID": "1234", "NEMORUN_HEAD_NODE": "node1"}
            out = subprocess.run(["sh", "-c", prelude + '; env'], capture_output=True, text=True, env=env, check=True)
            seen = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            got = {k: seen[k] for k in ranks.PROCESS_VARS}
            assert got["LOCAL_WORLD_SIZE"] == local_world and got["MASTER_PORT"] == str(29500 + 1234 % 10000)
            assert got["MASTER_ADDR"] == "node1" and got["RANK"] == got["NEMORUN_RANK"] == str(procid)
            assert (got["LOCAL_RANK"], got["NODE_RANK"], got["GROUP_RANK"]) == (str(local), str(node), str(node))
            procid += 1


def test_slurm_runs_each_task_through_the_rank_prelude_with_its_argv_as_data(tmp_path):
    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/runs"), ntasks_per_node=2)
    hostile = f"a'; touch {tmp_path}/pwned; echo '$RANK"
    task = ["sh", "-c", 'printf "%s|" "$RANK" "$MASTER_PORT" "$MASTER_ADDR" "$0" "$1"', "$RANK", hostile]
    line, head = ex.run_command(Job("t", "e/t/0", task, "/local"), "/scratch/runs/e/t")
    assert head, "the ranks need the first node's address"
    # srun replaced by what it does on a node: run the command with the task's SLURM_* variables
    probe = ("srun() { SLURM_PROCID=1 SLURM_LOCALID=1 SLURM_NODEID=0 SLURM_NTASKS=2 SLURM_JOB_ID=7 "
             "NEMORUN_HEAD_NODE=n1 \"$@\"; }\n" + line)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out == f"1|29507|n1|$RANK|{hostile}|", "rank values from Slurm's; the task's arguments stay data"
    assert not (tmp_path / "pwned").exists()
    single = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/scratch/runs"))
    assert single.run_command(Job("t", "e/t/0", [PYTHON], "/l"), "/r") == ("srun python3", False)


def test_the_preferred_port_is_stable_and_free_port_avoids_a_taken_one():
    import socket

    assert ranks.preferred_port("a/b/0") == ranks.preferred_port("a/b/0")
    assert ranks.PORT_BASE <= ranks.preferred_port("x") < ranks.PORT_BASE + ranks.PORT_SPAN
    with socket.socket() as s:
        s.bind((ranks.LOOPBACK, 0))
        s.listen()
        taken = s.getsockname()[1]
        assert ranks.free_port(taken) != taken


# -- install once per digest -------------------------------------------------------------------------------------------
def test_install_once_fills_once_and_never_shows_a_partial_directory(tmp_path):
    calls = []

    def fill(tmp: str) -> None:
        calls.append(tmp)
        assert not os.path.exists(install.target_dir(str(tmp_path), "abc")), "filled under a temporary name"
        os.makedirs(tmp)
        (open(os.path.join(tmp, "f"), "w")).close()

    target = install.install_once(str(tmp_path), "abc", fill)
    assert target == str(tmp_path / "abc") and os.path.isfile(tmp_path / "abc" / "f")
    assert install.install_once(str(tmp_path), "abc", fill) == target and len(calls) == 1, "installed once"
    assert sorted(os.listdir(tmp_path)) == ["abc"], "no temporary left behind"

    def broken(tmp: str) -> None:
        os.makedirs(tmp)
        raise RuntimeError("bad archive")

    with pytest.raises(RuntimeError):
        install.install_once(str(tmp_path), "def", broken)
    assert sorted(os.listdir(tmp_path)) == ["abc"], "a failed install leaves nothing"


def test_install_once_lost_race_uses_the_winners_copy(tmp_path):
    def racing(tmp: str) -> None:
        os.makedirs(tmp_path / "abc" / "theirs")  # another process finished first
        os.makedirs(os.path.join(tmp, "mine"))

    assert install.install_once(str(tmp_path), "abc", racing) == str(tmp_path / "abc")
    assert os.listdir(tmp_path / "abc") == ["theirs"] and os.listdir(tmp_path) == ["abc"]


def test_install_command_follows_the_same_rules_in_a_shell(tmp_path):
    target = install.target_dir(str(tmp_path), "d1")
    for content in ("first", "second"):
        tmp = install.staging_dir(target)
        command = install.install_command(target, tmp, f'echo {content} > "$tmp/f"')
        subprocess.run(["sh", "-c", command], check=True)
    assert (tmp_path / "d1" / "f").read_text() == "first\n", "the installed directory is never replaced"
    assert os.listdir(tmp_path) == ["d1"] and oct((tmp_path / "d1").stat().st_mode & 0o777) == "0o700"


# -- fields ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check, value, fragment", [
    (lambda v: check_count(v, "X.n"), 0, "must be an int >= 1, got 0"),
    (lambda v: check_count(v, "X.n"), True, "must be an int >= 1, got True"),
    (lambda v: check_count(v, "X.n", minimum=0), -1, "must be an int >= 0"),
    (lambda v: check_seconds(v, "X.s", what="a number of seconds"), -1, "must be a number of seconds >= 0"),
    (lambda v: check_word(v, "X.w", __import__("re").compile("[a-z]+"), "{value} is not a word"), "a\n", "'a\\n'"),
    (lambda v: check_arg_list(v, "X.args"), "--a --b", "write ['--a', '--b']"),
    (lambda v: check_interpreter(v, "X.python"), "~/venv/bin/python", "'~' is not expanded"),
    (lambda v: check_env_vars(v, "X.env"), {"1A": "x"}, "not a valid environment variable name"),
    (lambda v: check_env_vars(v, "X.env"), {"A": 1}, "write A='1'"),
])
def test_field_checks_name_the_field_and_the_fix(check, value, fragment):
    with pytest.raises(ConfigError) as info:
        check(value)
    assert fragment in str(info.value) and "X." in str(info.value)


def test_field_checks_accept_good_values():
    check_count(3, "X.n")
    check_seconds(0, "X.s")
    check_word(None, "X.w", __import__("re").compile("x"), "{value}")
    check_arg_list(["--a", "b c"], "X.args")
    check_interpreter("/opt/venv/bin/python", "X.python")
    check_interpreter("python3", "X.python")
    check_env_vars({"A_1": "x y"}, "X.env")


def test_every_executor_uses_the_shared_checks():
    with pytest.raises(ConfigError, match="LocalExecutor.ntasks_per_node.*int >= 1"):
        run.LocalExecutor(ntasks_per_node=0)
    with pytest.raises(ConfigError, match="DockerExecutor.nodes.*int >= 1"):
        run.DockerExecutor(container_image="busybox", nodes=0)
    with pytest.raises(ConfigError, match="SlurmExecutor.retries.*int >= 0"):
        run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/x"), retries=-1)
    with pytest.raises(ConfigError, match="SlurmExecutor.python.*neither an absolute path"):
        run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/x"), python="venv/bin/python")


# -- the interpreter token -----------------------------------------------------------------------------------------
def test_the_python_token_is_resolved_by_each_executor():
    assert runner_command("/j") == [PYTHON, "-m", "nemorun_core.runner", "/j"]
    assert resolve_argv([PYTHON, "x.py", "python3"], "/usr/bin/python3") == ["/usr/bin/python3", "x.py", "python3"]
    job = Job("t", "e/t/0", runner_command("/jobs/t"), "/jobs/t")
    assert run.LocalExecutor(python="/opt/py").dryrun(job).meta["argv"][0] == "/opt/py"
    assert run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/x"), python="/cluster/py").run_command(
        job, "/x/e/t")[0].startswith("srun /cluster/py -m nemorun_core.runner")
