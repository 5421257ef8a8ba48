"""DockerExecutor.poll_many and logs() at scale, on the project's real Docker engine: the engine calls of a poll
round do not grow with the number of jobs, and the lines a poller gets are exactly the job's log, once, in order.

Engine calls are counted on the wire: every request of the Docker SDK client the executor uses goes through its
``APIClient.send`` (a ``requests.Session``), which the tests wrap with a counter (the calls still reach the engine).
"""

from __future__ import annotations

import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.executors.base import Executor, Job, JobState
from nemorun_core.executors.docker import engine as docker_engine
from tests.integration import services

pytestmark = pytest.mark.docker

# A line a second for as long as the test needs (cancelled at the end).
TICKER = 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 1; done'


@pytest.fixture(scope="module")
def svc():
    return services.docker()


@pytest.fixture
def jobs(svc, tmp_path):
    """Submit busybox shell jobs; every container they made is removed afterwards."""
    tag = f"p{uuid.uuid4().hex[:10]}"
    made: list = []

    def submit(ex: run.DockerExecutor, body: str, name: str):
        job_dir = tmp_path / name
        job_dir.mkdir()
        handle = ex.submit(Job(name, f"{tag}/{name}/0", ["/bin/sh", "-c", body], str(job_dir)))
        made.append(handle)
        return handle

    yield submit
    import docker

    client = docker.DockerClient(base_url=svc.host)
    for c in client.containers.list(all=True, filters={"label": "nemorun.key"}):
        if c.labels.get("nemorun.key", "").startswith(tag):
            c.remove(force=True)
    client.close()


def engine_calls(host: str):
    """Count the HTTP requests the executor's Docker client sends to the engine at ``host``."""
    return docker_engine.counting_requests(host)


def wait_running(ex, handles, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = ex.status_many(handles)
        if all(s.state is JobState.RUNNING for s in states.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"not all running after {timeout} s: {ex.status_many(handles)}")


def wait_lines(ex, handles, at_least: int, timeout: float = 120):
    """Until every job printed ``at_least`` lines (read through logs(), outside any counted round)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(len(list(ex.logs(h))) >= at_least for h in handles):
            return
        time.sleep(0.5)
    raise AssertionError(f"the jobs did not print {at_least} lines in {timeout} s")


def test_a_poll_round_of_20_running_jobs_costs_the_engine_calls_of_a_round_of_2(svc, jobs):
    ex = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none", cancel_grace_s=1)
    handles = [jobs(ex, TICKER, f"tick{i}") for i in range(20)]
    try:
        wait_running(ex, handles)
        wait_lines(ex, handles, 2)
        ex.poll_many({h: 0 for h in handles})  # the first round also asks where the engine keeps its logs
        with engine_calls(svc.host) as two:
            small = ex.poll_many({h: 0 for h in handles[:2]})
        with engine_calls(svc.host) as twenty:
            big = ex.poll_many({h: 0 for h in handles})
        # What a round cost before: the contract's default (status_many + logs per job), each log read through the
        # engine's API (an executor that does not read the engine's log files).
        before = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none")
        before._engine_logs().pin_root(svc.host, None)
        with engine_calls(svc.host) as generic:
            Executor.poll_many(before, {h: 0 for h in handles})
        with engine_calls(svc.host) as one_log:
            lines = list(ex.logs(handles[0], offset=1))
    finally:
        for h in handles:
            ex.cancel(h)
    assert twenty["n"] == two["n"] == 1, f"2 jobs: {two['n']} calls, 20 jobs: {twenty['n']} (one container list)"
    assert generic["n"] >= 2 * len(handles), f"the generic default made {generic['n']} calls"
    assert one_log["n"] == 0, "logs() of a running job reads the engine's log file, not the engine"
    for answer in (small, big):
        for status, got in answer.values():
            assert status.state is JobState.RUNNING
            assert got[:2] == ["tick 0", "tick 1"], got
    assert lines[0] == "tick 1"


def test_poll_many_agrees_with_logs_line_for_line(svc, jobs):
    """Jobs that print while running, a partial last line held back until the job ends, a line with a carriage
    return (split at newlines only, while running and once saved), jobs that end: each line arrives once, in order,
    and the lines are exactly what logs() gives afterwards (from the saved log.out)."""
    ex = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none", cleanup="always")
    bodies = {
        "partial": 'echo one; sleep 1; printf "two-"; sleep 2; echo "and a half"; sleep 1; printf "no newline"',
        "progress": 'for i in 1 2 3; do printf "step %s\\r" "$i"; sleep 1; done; echo done; sleep 1; echo "out 2" >&2',
        "quick": 'echo only',
        "burst": 'i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done; sleep 1; echo last',
    }
    handles = {name: jobs(ex, body, name) for name, body in bodies.items()}
    got = {h: [] for h in handles.values()}
    offsets = {h: 0 for h in handles.values()}
    seen_running_partial = False
    deadline = time.time() + 180
    while offsets:
        assert time.time() < deadline, f"jobs still running: {ex.status_many(list(offsets))}"
        for handle, (status, lines) in ex.poll_many(offsets).items():
            got[handle] += lines
            offsets[handle] += len(lines)
            if handle is handles["partial"] and not status.is_terminal and got[handle] == ["one"]:
                seen_running_partial = True  # "two-" was printed without its newline: not a line yet
            if status.is_terminal:
                assert status.state is JobState.SUCCEEDED, status
                del offsets[handle]
        time.sleep(0.3)
    expected = {
        "partial": ["one", "two-and a half", "no newline"],
        "progress": ["step 1\rstep 2\rstep 3\rdone", "out 2"],
        "quick": ["only"],
        "burst": [f"line {i}" for i in range(300)] + ["last"],
    }
    for name, handle in handles.items():
        assert got[handle] == expected[name], name
        assert list(ex.logs(handle)) == expected[name], f"{name}: logs() after the end"
        assert list(ex.logs(handle, offset=1)) == expected[name][1:]
    assert seen_running_partial, "the partial line was never seen held back while the job ran"


def test_a_new_poller_resumes_from_any_offset_and_a_running_job_holds_back_its_partial_line(svc, jobs):
    """A poller in another process has no cursor: it finds the offset from the file's start (still no engine call
    per job). The engine keeps a line back until its newline, except past 16 KiB, which it logs in pieces: such an
    unterminated last line of a running job is held back by poll_many (it still grows) but shown by logs()."""
    ex = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none", cancel_grace_s=1)
    handle = jobs(ex, "echo a; echo b; echo c; head -c 20000 /dev/zero | tr '\\0' x; sleep 600", "holder")
    try:
        deadline = time.time() + 120
        while len(list(ex.logs(handle))) < 4:
            assert time.time() < deadline, list(ex.logs(handle))
            time.sleep(0.3)
        assert set(list(ex.logs(handle))[3]) == {"x"}
        fresh = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none")
        fresh.poll_many({handle: 0})
        with engine_calls(svc.host) as calls:
            status, lines = fresh.poll_many({handle: 2})[handle]
            again = fresh.poll_many({handle: 3})[handle][1]
        assert status.state is JobState.RUNNING and lines == ["c"], (status, lines)
        assert again == [], "the partial line of a running job is held back"
        assert calls["n"] == 2, "one container list per round, nothing per job"
    finally:
        ex.cancel(handle)


def test_without_the_engines_log_files_poll_many_asks_the_engine_and_agrees(svc, jobs):
    """Where the engine's log directory cannot be read here (a non-root user, an engine in a VM), the same lines come
    from the engine's API: the partial line is held back the same way."""
    ex = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host, network="none", cancel_grace_s=1)
    ex._engine_logs().pin_root(svc.host, None)
    handle = jobs(ex, "echo a; head -c 20000 /dev/zero | tr '\\0' b; sleep 600", "api")
    try:
        deadline = time.time() + 120
        while len(list(ex.logs(handle))) < 2:
            assert time.time() < deadline, list(ex.logs(handle))
            time.sleep(0.3)
        status, lines = ex.poll_many({handle: 0})[handle]
        assert status.state is JobState.RUNNING and lines == ["a"]
    finally:
        ex.cancel(handle)
    deadline = time.time() + 120
    while not (status := ex.poll_many({handle: 1})[handle][0]).is_terminal:
        assert time.time() < deadline
        time.sleep(0.3)
    last = ex.poll_many({handle: 1})[handle][1]
    assert len(last) == 1 and set(last[0]) == {"b"}, "once terminal the last line comes"


def test_bad_offsets_and_empty_rounds(svc):
    from nemorun_core.errors import ExecutorError
    from nemorun_core.executors.base import JobHandle

    ex = run.DockerExecutor(container_image=svc.busybox, docker_host=svc.host)
    ghost = JobHandle.create("docker", "0" * 64, "nobody/task/0", "/nonexistent/job", containers="0" * 64,
                             docker_host=svc.host)
    assert ex.poll_many({}) == {}
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ExecutorError, match="must be a line number"):
            ex.poll_many({ghost: bad})
    status, lines = ex.poll_many({ghost: 0})[ghost]
    assert status.state is JobState.UNKNOWN and lines == []
    traversal = JobHandle.create("docker", "../../etc", "nobody/task/0", "/nonexistent/job", docker_host=svc.host)
    assert ex.poll_many({traversal: 0})[traversal][1] == []
