"""Bad input to RayCluster / RayJob: each a ConfigError naming the field and the fix, and nothing started."""

from __future__ import annotations

import os
import socket

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.run.ray import RayCluster, RayJob


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    yield
    assert not os.path.exists(tmp_path / "home" / "ray" / "c" / "state.json"), "a cluster was started"


def test_a_cluster_with_neither_sizes_nor_an_executor():
    with pytest.raises(ConfigError) as info:
        RayCluster(name="c")
    assert info.value.path == "RayCluster.executor"
    assert "executor=" in str(info.value) and "num_nodes=" in str(info.value)


@pytest.mark.parametrize("kwargs, path, words", [
    ({"num_nodes": 0}, "RayCluster.num_nodes", "int >= 1, got 0"),
    ({"num_nodes": True}, "RayCluster.num_nodes", "int >= 1"),
    ({"gpus_per_node": -1}, "RayCluster.gpus_per_node", "int >= 0"),
    ({"memory_per_node": "lots"}, "RayCluster.memory_per_node", "'64GB'"),
    ({"memory_per_node": "64 parsecs"}, "RayCluster.memory_per_node", "not a memory size"),
    ({"name": "no spaces", "num_nodes": 1}, "RayCluster.name", "research-cluster"),
    ({"executor": run.LocalExecutor(), "address": "http://127.0.0.1:8265"}, "RayCluster.address", "not both"),
])
def test_bad_sizes_name_the_field_and_the_fix(kwargs, path, words):
    with pytest.raises(ConfigError) as info:
        RayCluster(**{"name": "c", **kwargs})
    assert info.value.path == path and words in str(info.value)


def test_memory_sizes_are_read_as_people_write_them():
    assert RayCluster(name="c", memory_per_node="64GB").size.memory_bytes == 64 * 10**9
    assert RayCluster(name="c", memory_per_node="512MiB").size.memory_bytes == 512 * 2**20
    assert RayCluster(name="c", memory_per_node=2**30).size.memory_bytes == 2**30


def test_a_local_cluster_is_one_node():
    cluster = RayCluster(name="c", executor=run.LocalExecutor(), num_nodes=4)
    with pytest.raises(ConfigError) as info:
        cluster.start(timeout=5)
    assert info.value.path == "RayCluster.num_nodes" and "num_nodes=1" in str(info.value)


def test_port_forward_to_a_port_in_use():
    cluster = RayCluster(name="c", address="http://127.0.0.1:1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            cluster.port_forward(port=port, target_port=8265)
    assert info.value.path == "RayCluster.port_forward.port"
    assert f"127.0.0.1:{port} is in use" in str(info.value) and "pick a free port, e.g. port=" in str(info.value)


def test_pre_ray_start_commands_must_be_a_list():
    cluster = RayCluster(name="c", executor=run.LocalExecutor())
    with pytest.raises(ConfigError) as info:
        cluster.start(pre_ray_start_commands="pip install x")
    assert info.value.path == "RayCluster.start.pre_ray_start_commands"


def test_runtime_env_yaml_missing_or_not_yaml(tmp_path):
    job = RayJob(name="j", executor=run.LocalExecutor())
    with pytest.raises(ConfigError) as info:
        job.start(command="echo hi", runtime_env_yaml=str(tmp_path / "nope.yaml"))
    assert info.value.path == "RayJob.start.runtime_env_yaml" and "is not a file" in str(info.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("pip: [numpy\nenv_vars: {A: 1}\n")
    with pytest.raises(ConfigError) as info:
        job.start(command="echo hi", runtime_env_yaml=str(broken))
    assert info.value.path == "RayJob.start.runtime_env_yaml" and "not valid YAML at line" in str(info.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- numpy\n")
    with pytest.raises(ConfigError, match="not a mapping of runtime_env fields"):
        job.start(command="echo hi", runtime_env_yaml=str(listed))


def test_workdir_missing(tmp_path):
    job = RayJob(name="j", executor=run.LocalExecutor())
    with pytest.raises(ConfigError) as info:
        job.start(command="echo hi", workdir=str(tmp_path / "absent"))
    assert info.value.path == "RayJob.start.workdir" and "is not a directory" in str(info.value)


def test_a_job_needs_somewhere_to_run():
    with pytest.raises(ConfigError) as info:
        RayJob(name="j")
    assert info.value.path == "RayJob.executor"
    with pytest.raises(ConfigError):
        run.RayExecutor()
    with pytest.raises(ConfigError, match="RayExecutor.num_cpus"):
        run.RayExecutor(address="http://127.0.0.1:8265", num_cpus=-1)


def test_an_executor_that_cannot_run_a_cluster_says_which_can():
    cluster = RayCluster(name="c", executor=run.DockerExecutor(container_image="python:3.11-slim"))
    with pytest.raises(ConfigError) as info:
        cluster.start(dryrun=True)
    assert info.value.path == "RayCluster.executor" and "local" in str(info.value)
