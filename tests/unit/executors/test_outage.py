"""The bounded outage retry of followers (nemorun_core.executors.outage): limits, backoff, what is retried."""

from __future__ import annotations

import pytest

from nemorun_core.errors import BackendUnavailableError, ConfigError, ExecutorError
from nemorun_core.executors.outage import DEFAULT_OUTAGE_S, MAX_BACKOFF_S, Outage, OutageError, outage_limit


def test_limit_from_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv("NEMORUN_OUTAGE_TIMEOUT", raising=False)
    assert outage_limit() == DEFAULT_OUTAGE_S == 300
    monkeypatch.setenv("NEMORUN_OUTAGE_TIMEOUT", "7.5")
    assert outage_limit() == 7.5 and outage_limit(2) == 2.0
    monkeypatch.setenv("NEMORUN_OUTAGE_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"\$NEMORUN_OUTAGE_TIMEOUT='soon' is not a number"):
        outage_limit()
    with pytest.raises(ConfigError, match="outage_timeout must be a number of seconds >= 0"):
        outage_limit(-1)


def test_retries_with_capped_exponential_backoff_until_it_answers():
    waits: list[float] = []
    outage = Outage(1000, sleep=waits.append)
    answers = iter([BackendUnavailableError("down")] * 7 + ["up"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert outage.call(call) == "up"
    assert waits == [0.5, 1.0, 2.0, 4.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert not outage.ongoing


def test_gives_up_past_the_limit_naming_the_job_and_how_to_reattach(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("nemorun_core.executors.outage.time.monotonic", lambda: clock[0])

    def sleep(seconds):
        clock[0] += seconds

    outage = Outage(3, sleep=sleep, describe=lambda: "slurm job 42 (key e/t/0)",
                    reattach="`nemorun experiment logs e t -f`")

    def down():
        raise BackendUnavailableError("cannot connect to login:22")

    with pytest.raises(OutageError) as info:
        outage.call(down)
    msg = str(info.value)
    assert clock[0] == 3.0  # waited exactly the limit, not more
    assert "slurm job 42 (key e/t/0) is, as far as we know, still running" in msg
    assert "re-attach with `nemorun experiment logs e t -f`" in msg and "cannot connect to login:22" in msg
    assert isinstance(info.value, BackendUnavailableError) and info.value.limit == 3


def test_other_errors_are_raised_at_once():
    outage = Outage(100, sleep=lambda s: pytest.fail("must not wait"))

    def refused():
        raise ExecutorError("authentication refused")

    with pytest.raises(ExecutorError, match="authentication refused"):
        outage.call(refused)


def test_follow_log_rides_out_an_outage_without_losing_or_repeating_lines(monkeypatch):
    from nemorun_core.executors.base import JobHandle, JobState, JobStatus, follow_log

    monkeypatch.setattr("nemorun_core.executors.outage.FIRST_BACKOFF_S", 0.01)
    log = [f"line {i}" for i in range(6)]
    handle = JobHandle.create("fake", "1", "e/t/0")

    class Flaky:
        rounds = 0

        def poll_many(self, offsets):
            self.rounds += 1
            if self.rounds in (2, 3):
                raise BackendUnavailableError("session cut")
            offset = offsets[handle]
            lines = log[offset:offset + 2]
            state = JobState.SUCCEEDED if offset + len(lines) >= len(log) else JobState.RUNNING
            return {handle: (JobStatus(state), lines)}

        def logs(self, h, offset=0):
            return iter(log[offset:])

        def wait_any(self, handles, timeout):
            pass

    seen: list[str] = []
    status, offset = follow_log(Flaky(), handle, seen.append, poll=0, outage_timeout=60)
    assert seen == log and offset == len(log) and status.state is JobState.SUCCEEDED
