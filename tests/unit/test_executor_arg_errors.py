"""Misspelled, missing and out-of-range constructor arguments of executors and SSHTunnel fail at construction
with an error naming the class, the argument and the fix."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Executor, Job, JobHandle, JobStatus, SubmitRequest
from nemorun_core.executors.docker.executor import DockerExecutor
from nemorun_core.executors.fields import MissingArgumentError, UnknownArgumentError
from nemorun_core.executors.local import LocalExecutor
from nemorun_core.executors.slurm import SlurmExecutor
from nemorun_core.tunnel.ssh import SSHTunnel


@pytest.mark.parametrize("make, text", [
    (lambda: SlurmExecutor(partiton="x"), "SlurmExecutor got an unexpected argument 'partiton'; did you mean 'partition'?"),
    (lambda: DockerExecutor(container_image="python:3.11-slim", gpus=2),
     "DockerExecutor got an unexpected argument 'gpus'; did you mean 'num_gpus'?"),
    (lambda: LocalExecutor(env={"A": "1"}), "LocalExecutor got an unexpected argument 'env'; did you mean 'env_vars'?"),
])
def test_misspelled_argument_names_class_and_suggestion(make, text):
    with pytest.raises(UnknownArgumentError) as info:
        make()
    assert str(info.value) == text
    # Both the project's ConfigError and the TypeError Python raises for an unexpected argument.
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TypeError)


def test_unknown_argument_without_close_match_lists_the_valid_ones():
    with pytest.raises(UnknownArgumentError) as info:
        LocalExecutor(zzzqqq=1)
    assert "'zzzqqq'" in str(info.value) and "env_vars" in str(info.value)
    assert info.value.name == "zzzqqq" and info.value.target == "LocalExecutor"


def test_docker_without_image_says_what_to_pass():
    with pytest.raises(MissingArgumentError) as info:
        DockerExecutor()
    assert str(info.value) == ("DockerExecutor.container_image: is required: pass it, e.g. "
                               "DockerExecutor(container_image='python:3.11-slim')")
    assert info.value.names == ["container_image"] and isinstance(info.value, TypeError)


class _ThirdParty(Executor):
    """A plugin executor that is not a dataclass: the same checks apply to it."""

    backend = "third"

    def __init__(self, host: str, *, retries: int = 1):
        self.host, self.retries = host, retries

    def dryrun(self, job: Job) -> SubmitRequest: raise NotImplementedError
    def submit(self, job: Job) -> JobHandle: raise NotImplementedError
    def status_many(self, handles: Any) -> dict[JobHandle, JobStatus]: raise NotImplementedError
    def cancel(self, handle: JobHandle) -> None: raise NotImplementedError
    def logs(self, handle: JobHandle, *a: Any, **k: Any) -> Any: raise NotImplementedError


def test_third_party_executor_is_covered_and_positional_args_still_work():
    assert _ThirdParty("h", retries=3).retries == 3
    with pytest.raises(UnknownArgumentError, match="did you mean 'retries'"):
        _ThirdParty("h", retrys=3)
    with pytest.raises(MissingArgumentError, match=r"_ThirdParty.host: is required: pass it, e.g. _ThirdParty\(host=...\)"):
        _ThirdParty(retries=3)
    # Too many positional arguments: Python's own TypeError, unchanged.
    with pytest.raises(TypeError):
        _ThirdParty("h", 3)


def test_copy_pickle_and_replace_still_construct():
    ex = DockerExecutor(container_image="python:3.11-slim")
    assert copy.deepcopy(ex) == ex
    assert pickle.loads(pickle.dumps(ex)) == ex
    assert dataclasses.replace(ex, nodes=2).nodes == 2
    with pytest.raises(UnknownArgumentError):
        dataclasses.replace(ex, node=2)


@pytest.mark.parametrize("port", [-5, 0, 65536, True, "22"])
def test_ssh_tunnel_bad_port(port):
    with pytest.raises(ConfigError) as info:
        SSHTunnel(host="h", user="u", job_dir="/j", port=port)
    assert info.value.path == "SSHTunnel.port"
    assert "1 to 65535" in str(info.value) and repr(port) in str(info.value)


@pytest.mark.parametrize("job_dir", ["rel/dir", "", "./x"])
def test_ssh_tunnel_relative_job_dir(job_dir):
    with pytest.raises(ConfigError) as info:
        SSHTunnel(host="h", user="u", job_dir=job_dir)
    assert info.value.path == "SSHTunnel.job_dir"
    assert "absolute path" in str(info.value) and "'~/nemorun'" in str(info.value)


@pytest.mark.parametrize("job_dir, port", [("/scratch/me", 22), ("~/runs", 1), ("~", 65535)])
def test_ssh_tunnel_good_values(job_dir, port):
    assert SSHTunnel(host="h", user="u", job_dir=job_dir, port=port).port == port


def test_signature_still_shows_the_constructor_parameters():
    import inspect

    params = inspect.signature(DockerExecutor).parameters
    assert "container_image" in params and params["container_image"].default is inspect.Parameter.empty
    assert list(inspect.signature(_ThirdParty).parameters) == ["host", "retries"]
