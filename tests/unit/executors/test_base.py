"""What every executor shares: the environment check, and packaging the code once per submission batch."""

from __future__ import annotations

import dataclasses

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import SUBMISSION_BATCH, package_code
from nemorun_core.packaging.base import Package, Packager


@pytest.mark.parametrize("make", [
    lambda env: run.LocalExecutor(env_vars=env),
    lambda env: run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir="/tmp/x"), env_vars=env),
    lambda env: run.DockerExecutor(container_image="python:3.11", env_vars=env),
])
@pytest.mark.parametrize("env,fragment", [
    ({"1BAD": "x"}, r"'1BAD' is not a valid environment variable name"),
    ({"N": 4}, r"value of N must be a string, got 4; write N='4'"),
    ({"N": "a\0b"}, r"value of N contains a NUL byte"),
    (["N=1"], r"must be a dict of name -> string"),
])
def test_every_executor_rejects_a_bad_environment_naming_its_field(make, env, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        make(env)
    assert info.value.path.endswith("Executor.env_vars")


@dataclasses.dataclass
class CountingPackager(Packager):
    calls: list = dataclasses.field(default_factory=list, repr=False)  # the key is the settings, as with real packagers

    def package(self, base_dir: str, output_dir: str) -> Package:
        self.calls.append((base_dir, output_dir))
        return Package(f"{output_dir}/code.tar.gz", f"digest{len(self.calls)}", 1, 10)


def test_code_is_packaged_once_per_batch_and_every_time_outside_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packager = CountingPackager()
    out = str(tmp_path / "packages")
    assert package_code(packager, out).digest == "digest1"
    assert package_code(packager, out).digest == "digest2", "outside a batch the code may have changed"
    token = SUBMISSION_BATCH.set("exp-a")
    try:
        first = package_code(packager, out)
        assert package_code(packager, out) is first and len(packager.calls) == 3
        assert package_code(packager, out, base_dir=str(tmp_path / "other")) is not first  # another tree
    finally:
        SUBMISSION_BATCH.reset(token)
    token = SUBMISSION_BATCH.set("exp-b")
    try:
        assert package_code(packager, out) is not first and len(packager.calls) == 5  # a new batch packages again
    finally:
        SUBMISSION_BATCH.reset(token)
    assert packager.calls[0] == (str(tmp_path), out) and (tmp_path / "packages").is_dir()


def test_slurm_logs_have_no_phantom_line_and_keep_blank_ones(tmp_path):
    from nemorun_core.executors.base import JobHandle

    ex = run.SlurmExecutor(tunnel=run.LocalTunnel(job_dir=str(tmp_path)))
    handle = JobHandle.create("slurm", "1", "exp/t/0", str(tmp_path / "t"))
    assert list(ex.logs(handle)) == [], "no log yet: no lines"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "log.out").write_text("a\n\nb\n")
    assert list(ex.logs(handle)) == ["a", "", "b"]
    assert list(ex.logs(handle, offset=1)) == ["", "b"]
    assert list(ex.logs(handle, offset=3)) == [], "read from the end: nothing new"
    (tmp_path / "t" / "log.out").write_text("a\n\nb\npartial")
    assert list(ex.logs(handle, offset=3)) == ["partial"], "without follow, the last line is returned as it is"


def test_follow_log_reads_rounds_then_drains_a_capped_final_round(tmp_path) -> None:
    """follow_log: one poll_many per round, wait_any between rounds, the rest of a capped log once terminal, and
    ``stop`` leaves a running job with its last status."""
    from nemorun_core.executors.base import JobHandle, JobState, JobStatus, follow_log

    from nemorun_core.executors.base import Executor

    class Scripted(Executor):
        dryrun = submit = status_many = cancel = None  # not used by follow_log

        def __init__(self, rounds, log):
            self.rounds, self.log, self.polls, self.waits = list(rounds), log, 0, 0

        def poll_many(self, offsets):
            (handle, offset), = offsets.items()
            state, upto = self.rounds.pop(0)
            self.polls += 1
            return {handle: (JobStatus(state), self.log[offset:upto])}

        def logs(self, handle, *, follow=False, offset=0):
            return iter(self.log[offset:])

        def wait_any(self, handles, timeout):
            self.waits += 1

    handle = JobHandle.create("test", "1", "k/t/0", str(tmp_path))
    log = [f"line {i}" for i in range(6)]
    ex = Scripted([(JobState.RUNNING, 2), (JobState.RUNNING, 3), (JobState.SUCCEEDED, 4)], log)
    seen: list[str] = []
    status, offset = follow_log(ex, handle, seen.append, poll=0)
    assert status.state is JobState.SUCCEEDED and offset == 6 and seen == log  # lines 4-5: the capped rest
    assert (ex.polls, ex.waits) == (3, 2)

    ex = Scripted([(JobState.RUNNING, 1), (JobState.RUNNING, 2)], log)
    seen = []
    status, offset = follow_log(ex, handle, seen.append, offset=0, poll=0, stop=lambda: ex.polls >= 2)
    assert status.state is JobState.RUNNING and offset == 2 and seen == log[:2] and ex.waits == 1


# -- JobHandle.from_json of damaged text (issue 10, item 13) ---------------------------------------------------------
@pytest.mark.parametrize("text,fragment", [
    ("not json", r"a job handle must be JSON; invalid at line 1, column 1"),
    ("", r"a job handle must be JSON; invalid"),
    ("[1, 2]", r"a job handle must be a JSON object, got list"),
    ("null", r"a job handle must be a JSON object, got NoneType"),
    ("{}", r"job handle is missing the field 'backend'"),
    ('{"backend": "local", "key": "k"}', r"missing the field 'job_id'"),
    ('{"backend": "local", "job_id": {"a": 1}, "key": "k"}', r"field 'job_id' must be a non-empty string, got dict"),
    ('{"backend": "local", "job_id": true, "key": "k"}', r"field 'job_id' must be a non-empty string, got bool"),
    ('{"backend": 7, "job_id": "1", "key": "k"}', r"field 'backend' must be a non-empty string, got int"),
    ('{"backend": "local", "job_id": "1", "key": ["k"]}', r"field 'key' must be a string, got list"),
    ('{"backend": "local", "job_id": "1", "key": "k", "job_dir": 3}', r"field 'job_dir' must be a string, got int"),
    ('{"backend": "local", "job_id": "1", "key": "k", "extras": [1]}', r"field 'extras' must be an object"),
    ('{"backend": "local", "job_id": "1", "key": "k", "extras": {"host": {"x": 1}}}',
     r"field 'extras.host' must be a string, got dict"),
    ('{"backend": "local", "job_id": "1", "key": "k", "version": "one"}', r"field 'version' must be an integer"),
    ('{"backend": "local", "job_id": "1", "key": "k", "version": 99}', r"version 99 is newer"),
])
def test_job_handle_from_malformed_json_is_one_clear_error_naming_the_field(text, fragment):
    from nemorun_core.errors import ExecutorError
    from nemorun_core.executors.base import JobHandle

    with pytest.raises(ExecutorError, match=fragment):
        JobHandle.from_json(text)


def test_job_handle_from_json_of_a_non_string_and_good_handles_still_load(tmp_path):
    from nemorun_core.errors import ExecutorError
    from nemorun_core.executors.base import JobHandle

    with pytest.raises(ExecutorError, match="must be JSON text, got NoneType"):
        JobHandle.from_json(None)  # type: ignore[arg-type]
    handle = JobHandle.create("slurm", "12", "exp/t/0", str(tmp_path), address="u@h:22")
    assert JobHandle.from_json(handle.to_json()) == handle
    legacy = JobHandle.from_json('{"backend": "local", "job_id": 4242, "key": "e/t/0"}')  # a pid written as a number
    assert legacy.job_id == "4242" and legacy.job_dir == "" and legacy.extras == ()
