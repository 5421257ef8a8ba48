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
