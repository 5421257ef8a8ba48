"""SlurmExecutor.poll_many on the project's real Slurm cluster: status and new log lines of many jobs per round,
in exactly one remote command per round (what an Airflow trigger polling many jobs relies on).

Services: scripts/services/sshd.sh and scripts/services/slurm.sh (started by scripts/test.sh).
"""

from __future__ import annotations

import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.errors import ExecutorError
from nemorun_core.executors.base import Job, JobHandle, JobState
from nemorun_core.executors.slurm import remote
from nemorun_core.tunnel._ssh_pool import ssh_stats
from tests.integration import services

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]


@pytest.fixture
def executor():
    ssh = services.ssh()
    cluster = services.slurm()
    tunnel = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                           known_hosts=ssh.known_hosts, job_dir=cluster.job_dir)
    ex = run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                           python=cluster.python, time="00:05:00")
    submitted: list[JobHandle] = []
    ex.submitted = submitted  # what the test started, cancelled at the end whatever happens
    yield ex
    for handle in submitted:
        ex.cancel(handle)


def _submit(ex, name: str, script: str) -> JobHandle:
    handle = ex.submit(Job(name, f"pollmany-{uuid.uuid4().hex[:10]}/{name}/0", ["bash", "-c", script],
                           "/nonexistent-local"))
    ex.submitted.append(handle)
    return handle


def _poll(ex, offsets: dict[JobHandle, int]):
    """One poll_many round; asserts it cost exactly one remote command."""
    before = ssh_stats(ex.tunnel.address).commands_run
    answer = ex.poll_many(offsets)
    assert ssh_stats(ex.tunnel.address).commands_run - before == 1, "poll_many must be ONE remote command"
    assert set(answer) == set(offsets)
    return answer


def _follow(ex, handles: list[JobHandle], timeout: float = 120, until=lambda st: st.is_terminal,
            offsets: dict[JobHandle, int] | None = None):
    """Poll like a trigger does (offsets advance by the lines received) until ``until`` holds for every job and a
    round brings no new line. Returns (lines per job, last statuses, rounds)."""
    offsets = dict(offsets or {h: 0 for h in handles})
    lines: dict[JobHandle, list[str]] = {h: [] for h in handles}
    rounds = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = _poll(ex, offsets)
        rounds += 1
        for h, (_status, new) in answer.items():
            lines[h] += new
            offsets[h] += len(new)
        statuses = {h: st for h, (st, _new) in answer.items()}
        if all(until(st) for st in statuses.values()) and not any(new for _st, new in answer.values()):
            return lines, statuses, rounds
        time.sleep(0.3)
    raise AssertionError(f"jobs did not get there within {timeout} s: {statuses}")


def test_three_jobs_lines_arrive_once_in_order_and_states_match_status_many(executor):
    slow = _submit(executor, "slow", "for i in $(seq 1 8); do echo \"slow $i\"; sleep 0.4; done")
    odd = _submit(executor, "odd", r"""
        echo "__NEMORUN_JOB__"; echo "__NEMORUN_SACCT__"; echo '$(rm -rf ~) `x` "q" \n'
        printf 'tab\there\n\xff\xfe not utf-8\n'
        sleep 1; printf 'no newline at the end'; exit 3""")
    quick = _submit(executor, "quick", "seq 1 5 | sed 's/^/quick /'")
    handles = [slow, odd, quick]

    lines, statuses, rounds = _follow(executor, handles)

    assert rounds >= 3, "the jobs were followed over several rounds"
    assert lines[slow] == [f"slow {i}" for i in range(1, 9)]
    assert lines[quick] == [f"quick {i}" for i in range(1, 6)]
    assert lines[odd][:5] == ["__NEMORUN_JOB__", "__NEMORUN_SACCT__", '$(rm -rf ~) `x` "q" \\n', "tab\there",
                              "\ufffd\ufffd not utf-8"]
    # the unfinished line was held back while the job ran, so srun's own message completes it in one piece
    assert lines[odd][5].startswith("no newline at the endsrun: error:") and len(lines[odd]) == 6
    assert statuses[slow].state is JobState.SUCCEEDED and statuses[quick].state is JobState.SUCCEEDED
    assert statuses[odd].state is JobState.FAILED and statuses[odd].exit_code == 3
    # the same answer as status_many, and each complete log is what logs() reads
    by_status_many = executor.status_many(handles)
    for h in handles:
        assert (statuses[h].state, statuses[h].exit_code) == (by_status_many[h].state, by_status_many[h].exit_code)
        assert lines[h] == list(executor.logs(h))
        assert list(executor.logs(h, follow=True)) == lines[h], "following an ended job reads its log once"
    # a terminal job polled again from its end: same state, nothing new
    again = _poll(executor, {h: len(lines[h]) for h in handles})
    assert all(new == [] and again[h][0].state is statuses[h].state for h, (_st, new) in again.items())


def test_running_job_partial_line_is_held_back_and_cancel_is_seen(executor):
    # The script writes the unfinished line into log.out itself (srun would buffer it until its newline).
    job = _submit(executor, "live", "echo one; echo two; sleep 1; printf half >> log.out; sleep 2; "
                                    "echo ' done' >> log.out; sleep 300")
    log_path = f"{job.job_dir}/log.out"
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while not (executor.tunnel.read_bytes(log_path) or b"").endswith(b"half") and time.monotonic() < deadline:
        lines += _poll(executor, {job: len(lines)})[job][1]
        time.sleep(0.2)
    status, new = _poll(executor, {job: len(lines)})[job]
    lines += new
    assert status.state is JobState.RUNNING and lines == ["one", "two"], "'half' waits for its newline"
    while len(lines) < 3 and time.monotonic() < deadline:
        lines += _poll(executor, {job: len(lines)})[job][1]
        time.sleep(0.2)
    assert lines == ["one", "two", "half done"]
    executor.cancel(job)
    _lines, statuses, _ = _follow(executor, [job], offsets={job: len(lines)})
    assert statuses[job].state is JobState.CANCELLED
    assert any("CANCELLED" in line for line in _lines[job]), _lines  # Slurm's own note, read after the end


def test_failed_python_task_carries_its_error_and_unknown_jobs_are_unknown(executor):
    failed = _submit(executor, "pyfail", f"{executor.python} -c \"import json; "
                     "json.dump({'error': 'ValueError: lr must be > 0'}, open('status.json', 'w')); "
                     "raise SystemExit(1)\"")
    ghost = JobHandle.create("slurm", "999999990", "ghost/ghost/0", "/home/nowhere/ghost",
                             address=executor.tunnel.address)
    _lines, statuses, _ = _follow(executor, [failed, ghost], until=lambda st: st.is_terminal or not st.native)
    assert statuses[failed].state is JobState.FAILED and statuses[failed].message == "ValueError: lr must be > 0"
    assert statuses[ghost].state is JobState.UNKNOWN and _lines[ghost] == []
    assert list(executor.logs(ghost)) == [], "a job with no log has no lines (not one empty line)"
    with pytest.raises(ExecutorError, match="offset of job 999999990.*-1"):
        executor.poll_many({ghost: -1})
    assert executor.poll_many({}) == {}


def test_huge_logs_come_in_capped_rounds(executor):
    extra = 1234
    lines_job = _submit(executor, "many", f"seq 1 {remote.POLL_MAX_LINES + extra}")
    long_line = _submit(executor, "wide", f"head -c {remote.POLL_MAX_BYTES + 1000} /dev/zero | tr '\\0' x; "
                                          "echo; echo after")
    handles = [lines_job, long_line]
    _follow(executor, handles, until=lambda st: st.is_terminal, offsets={h: 10**9 for h in handles})

    first = _poll(executor, {h: 0 for h in handles})
    assert len(first[lines_job][1]) == remote.POLL_MAX_LINES
    assert first[lines_job][1][-1] == str(remote.POLL_MAX_LINES)
    wide = first[long_line][1]
    assert len(wide) == 1 and wide[0].startswith("x" * 1000) and "line cut by nemorun" in wide[0]
    assert len(wide[0]) < remote.POLL_MAX_BYTES + 200

    second = _poll(executor, {lines_job: remote.POLL_MAX_LINES, long_line: 1})
    assert second[lines_job][1] == [str(i) for i in range(remote.POLL_MAX_LINES + 1, remote.POLL_MAX_LINES + extra + 1)]
    assert second[long_line][1] == ["after"]
