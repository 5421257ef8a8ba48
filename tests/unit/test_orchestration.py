"""nemorun_core.orchestration with the Local executor, for real: the job directory scheme, attach-or-submit by key
(record before submission, re-attach, resubmit only after a failure, refusal without FIND), cancel-and-wait, result
summaries and scrubbing."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

import nemorun_core as run
from nemorun_core import orchestration
from nemorun_core.executors.base import Capability, CapabilityError, JobHandle, JobState
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.experiment.tasks import TaskSpec, normalize_task
from tests.integration import _tasks

pytestmark = pytest.mark.local

SECRET = "tok-orchestration-0123456789"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _spec(task, executor=None, name: str = "t") -> TaskSpec:
    return TaskSpec(name, normalize_task(task, {}), executor or run.LocalExecutor(cancel_grace_s=1.0, fork_server=False), [])


def _wait(executor, handle, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    status = executor.status(handle)
    while not status.is_terminal and time.monotonic() < deadline:
        executor.wait_any([handle], 0.2)
        status = executor.status(handle)
    return status


def test_job_directory_scheme(tmp_path) -> None:
    home = str(tmp_path)
    key = JobKey("prefect-abc", "train")
    assert orchestration.scope_dir(home, "prefect", "prefect-abc") == os.path.join(home, "prefect", "prefect-abc")
    assert orchestration.task_dir(home, "prefect", key) == os.path.join(home, "prefect", "prefect-abc", "train")
    assert orchestration.job_dir(home, "prefect", key) == orchestration.task_dir(home, "prefect", key)
    assert orchestration.job_dir(home, "airflow", "s/train/2") == os.path.join(home, "airflow", "s", "train",
                                                                               "attempt-2")
    with pytest.raises(Exception, match="is not a job key"):
        orchestration.job_dir(home, "prefect", "no-slashes")


def test_attach_or_submit_records_before_submitting_then_reattaches(tmp_path) -> None:
    spec = _spec(run.Partial(_tasks.sleep_forever, child=False))
    records: list[tuple[str, JobHandle | None, bool]] = []
    key = JobKey("unit-scope", "t")

    def dir_of(k: JobKey) -> str:
        return orchestration.job_dir(str(tmp_path), "unit", k)

    def record(k: JobKey, handle: JobHandle | None) -> None:
        # When the record before the submission is written, no job exists yet under the key.
        records.append((str(k), handle, spec.executor.find(str(k), dir_of(k)) is not None))

    first = orchestration.attach_or_submit(spec, key, dir_of, record=record)
    try:
        assert first.submitted and first.reason == "submitted" and first.key == key
        assert records == [(str(key), None, False), (str(key), first.handle, True)]
        assert first.handle.job_dir == dir_of(key)

        # A second try (a crash, a retry): the running job is found by key, nothing is submitted.
        again = orchestration.attach_or_submit(spec, key, dir_of)
        assert (again.reason, again.handle, again.status.state) == ("found", first.handle, JobState.RUNNING)
        # With the handle the orchestrator kept: the same, without asking the backend by key.
        kept = orchestration.attach_or_submit(spec, key, dir_of, remembered=first.handle)
        assert kept.reason == "remembered" and kept.handle == first.handle
    finally:
        report = orchestration.cancel_and_wait(spec.executor, first.handle, grace=30)
    assert report.requested and report.stopped and report.state is JobState.CANCELLED, report
    assert "cancelled, now CANCELLED" in report.describe()

    # Cancelled: the next try submits attempt 1 into its own directory.
    fresh = orchestration.attach_or_submit(spec, key, dir_of)
    try:
        assert fresh.submitted and fresh.key == key.next_attempt()
        assert fresh.handle.job_dir == os.path.join(dir_of(key), "attempt-1")
    finally:
        orchestration.cancel_and_wait(spec.executor, fresh.handle, grace=30)


def test_a_succeeded_job_is_not_run_again_and_its_summary_holds_the_value(tmp_path) -> None:
    executor = run.LocalExecutor(env_vars={"API_TOKEN": SECRET})
    spec = _spec(run.Partial(_tasks.echo_env, names=["API_TOKEN"]), executor)

    def dir_of(k: JobKey) -> str:
        return orchestration.job_dir(str(tmp_path), "unit", k)

    key = JobKey("unit-scope", "echo")
    first = orchestration.attach_or_submit(spec, key, dir_of)
    status = _wait(executor, first.handle)
    assert status.state is JobState.SUCCEEDED
    again = orchestration.attach_or_submit(spec, key, dir_of)
    assert not again.submitted and again.status.state is JobState.SUCCEEDED and again.handle == first.handle

    secrets = orchestration.known_secrets(executor, spec.task)
    assert secrets == [SECRET]
    summary = orchestration.job_summary("echo", spec.kind, executor, first.handle, status, value_limit=1000,
                                        secrets=secrets)
    assert summary["result"] == {"API_TOKEN": "<redacted>"}  # the job returned the token: scrubbed
    assert (summary["state"], summary["exit_code"], summary["key"]) == ("SUCCEEDED", 0, str(key))
    assert summary["job_id"] == first.handle.job_id and summary["handle"] == first.handle.to_dict()
    assert summary["log"].endswith("log.out") and 0 <= summary["duration"] < 60
    small = orchestration.job_summary("echo", spec.kind, executor, first.handle, status, value_limit=3)
    assert "result" not in small and "more than the limit of 3 bytes" in small["result_note"]
    assert "result" not in orchestration.job_summary("echo", spec.kind, executor, first.handle, status)

    report = orchestration.cancel_and_wait(executor, first.handle, grace=5)
    assert not report.requested and report.state is JobState.SUCCEEDED and "had already ended" in report.describe()


def test_a_failed_job_is_replaced_and_its_error_is_scrubbed(tmp_path) -> None:
    executor = run.LocalExecutor()
    spec = _spec(run.Partial(_tasks.fail, message=f"bad token {SECRET}"), executor, name="bad")

    def dir_of(k: JobKey) -> str:
        return orchestration.job_dir(str(tmp_path), "unit", k)

    first = orchestration.attach_or_submit(spec, JobKey("unit-scope", "bad"), dir_of)
    status = _wait(executor, first.handle)
    assert status.state is JobState.FAILED
    error = orchestration.job_error(dataclasses.replace(spec, handle=first.handle), status, [SECRET])
    assert "job 'bad' failed with exit status 1" in str(error) and "bad token <redacted>" in str(error)
    assert SECRET not in str(error) and not any(SECRET in line for line in error.log_tail)

    second = orchestration.attach_or_submit(spec, JobKey("unit-scope", "bad"), dir_of, remembered=first.handle)
    assert second.submitted and second.key.attempt == 1
    _wait(executor, second.handle)


def test_executors_that_cannot_find_jobs_are_refused(tmp_path) -> None:
    @dataclasses.dataclass(kw_only=True)
    class NoFind(run.LocalExecutor):
        capabilities = run.LocalExecutor.capabilities - {Capability.FIND}

    spec = _spec(run.Partial(_tasks.add, a=1), NoFind())
    with pytest.raises(CapabilityError, match="'find' capability.*launch a second one"):
        orchestration.attach_or_submit(spec, JobKey("unit-scope", "t"), lambda k: str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x"), "nothing was written or submitted"


def test_cancel_all_reports_each_job_and_an_unreachable_one(tmp_path) -> None:
    executor = run.LocalExecutor(cancel_grace_s=1.0, fork_server=False)
    spec = _spec(run.Partial(_tasks.sleep_forever, child=False), executor)
    attached = orchestration.attach_or_submit(spec, JobKey("unit-scope", "s"),
                                              lambda k: orchestration.job_dir(str(tmp_path), "unit", k))

    @dataclasses.dataclass(kw_only=True)
    class Unreachable(run.LocalExecutor):
        def status_many(self, handles):
            raise ConnectionError("injected: unreachable")

    ghost = JobHandle.create("local", "1", "unit-scope/ghost/0", str(tmp_path / "ghost"))
    reports = orchestration.cancel_all([(Unreachable(), ghost), (executor, attached.handle)], grace=30)
    assert reports[0].state is JobState.UNKNOWN and "injected: unreachable" in reports[0].error
    assert reports[1].state is JobState.CANCELLED and reports[1].error is None


def test_scrub_walks_plain_data() -> None:
    data = {"a": [f"x {SECRET} y", {"b": SECRET}], "n": 3}
    assert orchestration.scrub(data, [SECRET]) == {"a": ["x <redacted> y", {"b": "<redacted>"}], "n": 3}
    assert orchestration.scrub("plain", []) == "plain"
    assert orchestration.known_secrets(overrides=[f"model.api_key={SECRET}", "lr=3"]) == [SECRET]
