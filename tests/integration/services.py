"""Where the integration tests find the project's real services: the NEMORUN_TEST_* variables that
`scripts/services/*.sh env` prints and `scripts/test.sh` exports.

A missing variable is an error, not a skip: CI must fail when a service was not started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SSHService:
    """The OpenSSH server of scripts/services/sshd.sh."""

    host: str
    port: int
    user: str
    key: str  # private key authorized for `user`
    bad_key: str  # private key NOT authorized: login must be refused
    known_hosts: str  # the server's real host key
    wrong_known_hosts: str  # another key for the same host names: strict checking must refuse


@dataclass(frozen=True)
class SlurmService:
    """The Slurm cluster of scripts/services/slurm.sh, reached over `ssh()` as its user."""

    partition: str
    account: str
    job_dir: str  # a directory in the cluster user's home for job files
    python: str  # a python the cluster user can run, with the project installed


@dataclass(frozen=True)
class DockerService:
    """The Docker engine of scripts/services/docker.sh: its own socket, no bridge network, local images only.

    Containers must run with `--network none` or `--network host` (network_mode "none"/"host"); images are
    never pulled (`--pull never`): there is no registry.
    """

    host: str  # DOCKER_HOST value, unix://.../docker.sock
    busybox: str  # image: static busybox, /bin/sh and the applets, nothing else
    python: str  # image: Debian 12 minbase with python3 (3.11)


def _load(cls: type, prefix: str, script: str):
    """Build ``cls`` from ``NEMORUN_TEST_<PREFIX>_<FIELD>`` variables (one per field, in upper case)."""
    names = {f.name: f"NEMORUN_TEST_{prefix}_{f.name.upper()}" for f in fields(cls)}
    missing = [n for n in names.values() if not os.environ.get(n)]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not set: the test service is not running. "
            f"Run `bash scripts/services/{script} start` and `eval \"$(bash scripts/services/{script} env)\"`, "
            "or run the tests through `bash scripts/test.sh`, which does both."
        )
    types = {f.name: f.type for f in fields(cls)}
    return cls(**{k: int(os.environ[v]) if types[k] in (int, "int") else os.environ[v] for k, v in names.items()})


def ssh() -> SSHService:
    """The SSH test server. Raises RuntimeError (naming the script to run) when it was not set up."""
    return _load(SSHService, "SSH", "sshd.sh")


def slurm() -> SlurmService:
    """The Slurm test cluster. Raises RuntimeError (naming the script to run) when it was not set up."""
    return _load(SlurmService, "SLURM", "slurm.sh")


def docker() -> DockerService:
    """The Docker test engine. Raises RuntimeError (naming the script to run) when it was not set up."""
    return _load(DockerService, "DOCKER", "docker.sh")


@dataclass(frozen=True)
class RayService:
    """The Ray head of scripts/services/ray.sh: in a loopback-only network namespace, its dashboard (Jobs API)
    bridged to host 127.0.0.1. Shared by the whole test run: tests submit jobs, never stop it."""

    address: str  # http://127.0.0.1:PORT, the dashboard through the bridge
    netns: str  # the namespace's name (`ip netns pids NAME` lists the head's processes)
    python: str  # the interpreter on the raylet's PATH (jobs' `python`), with nemorun installed


def ray() -> RayService:
    """The Ray test head. Raises RuntimeError (naming the script to run) when it was not set up."""
    return _load(RayService, "RAY", "ray.sh")
