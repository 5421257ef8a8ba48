"""The job contract (``nemorun_core/executors/base.py``), proved for every executor against its real service.

Each test is one property of the contract; ``conftest.BACKENDS`` lists the executors that must have it (Local:
this machine's processes; Docker: the engine of scripts/services/docker.sh; Slurm: the cluster of
scripts/services/slurm.sh over the SSH server of scripts/services/sshd.sh). See README.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from nemorun_core.errors import SubmissionError
from nemorun_core.executors.base import (Capability, CapabilityError, Executor, JobState, JobStatus,
                                         SubmitRequest)
from nemorun_core.experiment.jobref import executor_config
from nemorun_core.jobfiles import JobFiles

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A job that prints lines over time, then succeeds.
LINES = 'i=1; while [ $i -le 5 ]; do echo "line $i"; i=$((i + 1)); sleep 0.3; done'
# A job that says it is ready, then runs until it is cancelled; on SIGTERM it takes 2 s to stop, well within a
# long grace period, so a cancel that waited for the job would take at least that long.
STUBBORN = "trap 'sleep 2; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
LONG = "echo ready; sleep 120"


def test_dryrun_is_pure_and_is_exactly_what_submit_sent(backend):
    ex = backend.make(env_vars={"CONTRACT_MODE": "x y", "CONTRACT_TOKEN": "s3cr3t-value-123456"})
    job = backend.job("pure", "echo $CONTRACT_MODE")
    with backend.untouched(job):
        request = ex.dryrun(job)
        again = ex.dryrun(job)
    assert isinstance(request, SubmitRequest) and request == again, "dryrun is deterministic"
    assert request.sent_as and not request.placeholders, "without a packager dryrun knows everything it sends"
    assert "s3cr3t-value-123456" not in request.text, "a secret value is never rendered"

    handle = backend.submit(ex, job)
    sent = ex.fetch_file(handle, request.sent_as)
    assert sent is not None, f"{backend.name} keeps no {request.sent_as} in the job directory"
    assert sent.decode() == request.text, "what submit sent differs from what dryrun showed"
    assert backend.terminal_state(backend.wait(ex, handle)) is JobState.SUCCEEDED
    assert backend.own(ex.logs(handle)) == ["x y"]


def test_a_handle_survives_json_into_another_process(backend):
    ex = backend.make()
    handle = backend.submit(ex, backend.job("roundtrip", "echo one; sleep 1; echo two"))
    config = json.dumps(executor_config(ex))
    code = textwrap.dedent("""
        import json, sys, time
        from nemorun_core.executors.base import JobHandle
        from nemorun_core.experiment.jobref import load_executor

        ex = load_executor(json.loads(sys.argv[1]))
        handle = JobHandle.from_json(sys.argv[2])
        deadline = time.monotonic() + 60
        while not ex.status(handle).is_terminal and time.monotonic() < deadline:
            time.sleep(0.2)
        status = ex.status(handle)
        print(json.dumps({"state": status.state.value, "exit_code": status.exit_code, "lines": list(ex.logs(handle)),
                          "found": ex.find(handle.key, handle.job_dir).job_id}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code, config, handle.to_json()], capture_output=True, text=True,
                         env=env, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    seen["lines"] = backend.own(seen["lines"])
    assert seen == {"state": "SUCCEEDED", "exit_code": 0, "lines": ["one", "two"], "found": handle.job_id}
    assert ex.status(handle).state is JobState.SUCCEEDED and backend.own(ex.logs(handle)) == ["one", "two"]


def test_find_reattaches_and_a_second_submit_starts_no_second_job(backend):
    ex = backend.make()
    job = backend.job("once", LONG)
    assert ex.find(job.key, job.job_dir) is None, "nothing is found before submission"
    handle = backend.submit(ex, job)
    backend.wait_for_line(ex, handle, "ready")
    found = ex.find(job.key, job.job_dir)
    assert found is not None and found.job_id == handle.job_id and found.key == job.key
    again = backend.submit(backend.make(), job)  # another executor object: only the backend remembers the job
    assert again.job_id == handle.job_id
    assert backend.jobs_with_key(job.key) == 1, "the second submit started a second job"
    ex.cancel(handle)


def test_cancel_is_idempotent_non_blocking_and_ends_cancelled(backend):
    ex = backend.make()
    handle = backend.submit(ex, backend.job("stubborn", STUBBORN))
    backend.wait_for_line(ex, handle, "ready")
    started = time.monotonic()
    ex.cancel(handle)
    took = time.monotonic() - started
    assert took < 1.5, f"cancel blocked for {took:.1f} s (the job takes 2 s to stop, its grace is 60 s)"
    ex.cancel(handle)  # a second cancel: no error
    assert backend.terminal_state(backend.wait(ex, handle)) is JobState.CANCELLED
    ex.cancel(handle)  # the job has ended: nothing happens
    assert ex.status(handle).state is JobState.CANCELLED

    done = backend.submit(ex, backend.job("done", "echo fine"))
    assert backend.terminal_state(backend.wait(ex, done)) is JobState.SUCCEEDED
    ex.cancel(done)  # cancelling a finished job does nothing
    assert ex.status(done).state is JobState.SUCCEEDED and backend.own(ex.logs(done)) == ["fine"]


def test_an_unknown_handle_is_unknown_and_has_no_log(backend):
    ex = backend.make()
    ghost = backend.unknown()
    assert ex.status(ghost).state is JobState.UNKNOWN
    assert ex.status_many([ghost])[ghost].state is JobState.UNKNOWN
    assert list(ex.logs(ghost)) == []
    status, lines = ex.poll_many({ghost: 0})[ghost]
    assert status.state is JobState.UNKNOWN and lines == []
    assert ex.find(ghost.key, ghost.job_dir) is None
    ex.cancel(ghost)  # cancelling an unknown job does nothing


def test_poll_many_agrees_with_logs(backend):
    ex = backend.make()
    handle = backend.submit(ex, backend.job("lines", LINES))
    lines: list[str] = []
    rounds = 0
    deadline = time.monotonic() + 90
    while True:
        status, new = ex.poll_many({handle: len(lines)})[handle]
        rounds += 1
        lines += new
        if status.is_terminal and not new:
            break
        assert time.monotonic() < deadline, f"not terminal after 90 s: {status}"
        ex.wait_any([handle], 0.2)
    assert backend.own(lines) == [f"line {i}" for i in range(1, 6)]
    assert rounds >= 2, "the job was followed over several rounds"
    assert status.state is JobState.SUCCEEDED and ex.status(handle).state is status.state
    assert list(ex.logs(handle)) == lines
    assert list(ex.logs(handle, offset=2)) == lines[2:]
    assert list(ex.logs(handle, follow=True)) == lines, "following an ended job reads its log once"


def test_status_many_costs_the_backend_calls_the_executor_claims(backend):
    ex = backend.make()
    n = 3
    handles = [backend.submit(ex, backend.job(f"many{i}", LONG)) for i in range(n)]
    for handle in handles:
        backend.wait(ex, handle, until=lambda s: s.state in (JobState.PENDING, JobState.RUNNING))
    claimed = ex.status_calls(n)
    assert isinstance(claimed, int) and claimed == ex.status_calls(n), "the claim is a pure int"
    with backend.calls() as calls:
        statuses = ex.status_many(handles)
    assert set(statuses) == set(handles)
    assert all(s.state in (JobState.PENDING, JobState.RUNNING) for s in statuses.values()), statuses
    assert calls() == claimed, f"status_many of {n} jobs made {calls()} backend calls; the executor claims {claimed}"
    if ex.supports(Capability.STATUS_MANY):
        assert claimed <= 1, "STATUS_MANY means one call for many jobs"
    with backend.calls() as calls:
        ex.status_many([])
    assert calls() == 0 == ex.status_calls(0)
    for handle in handles:
        ex.cancel(handle)


class _NoFind(Executor):
    """The smallest executor: the required contract only, so none of the optional capabilities."""

    backend = "contract-minimal"

    def dryrun(self, job):
        return SubmitRequest(self.backend, " ".join(job.command))

    def submit(self, job):
        raise SubmissionError("this executor runs nothing")

    def status_many(self, handles):
        return {h: JobStatus(JobState.UNKNOWN) for h in handles}

    def logs(self, handle, *, follow=False, offset=0):
        return iter(())

    def cancel(self, handle):
        pass


def test_capabilities_are_honest(backend):
    ex = backend.make()
    ghost = backend.unknown()
    assert ex.capabilities <= frozenset(Capability) and ex.backend == backend.name
    for capability, call in ((Capability.FIND, lambda e: e.find(ghost.key, ghost.job_dir)),
                             (Capability.FETCH_FILES, lambda e: e.fetch_file(ghost, JobFiles.STATUS))):
        if ex.supports(capability):
            assert call(ex) is None, f"{capability}: an unknown job gives None"
        else:
            with pytest.raises(CapabilityError):
                call(ex)

    minimal = _NoFind()
    assert minimal.capabilities == frozenset() and not minimal.supports(Capability.FIND)
    with pytest.raises(CapabilityError, match="find"):
        minimal.find(ghost.key, ghost.job_dir)
    with pytest.raises(CapabilityError, match="fetch_files"):
        minimal.fetch_file(ghost, JobFiles.RESULT)
    with pytest.raises(CapabilityError):
        minimal.require(Capability.FIND, "re-attach")
    # A subclass that drops FIND from a real executor's declaration loses it the same way: the core asks the
    # declaration, never the method.
    without = type(f"{type(ex).__name__}NoFind", (type(ex),),
                   {"capabilities": ex.capabilities - {Capability.FIND}, "find": Executor.find})
    clone = without(**{f.name: getattr(ex, f.name) for f in dataclasses.fields(ex) if f.init})
    with pytest.raises(CapabilityError, match="does not have the 'find' capability"):
        clone.find(ghost.key, ghost.job_dir)
