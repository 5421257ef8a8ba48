"""Where the integration tests find the project's real services: the NEMORUN_TEST_* variables that
`scripts/services/*.sh env` prints and `scripts/test.sh` exports.

A missing variable is an error, not a skip: CI must fail when a service was not started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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


def _require(names: list[str], script: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not set: the test service is not running. "
            f"Run `bash scripts/services/{script} start` and `eval \"$(bash scripts/services/{script} env)\"`, "
            "or run the tests through `bash scripts/test.sh`, which does both."
        )
    return {n: os.environ[n] for n in names}


def ssh() -> SSHService:
    """The SSH test server. Raises RuntimeError (naming the script to run) when it was not set up."""
    e = _require(
        [
            "NEMORUN_TEST_SSH_HOST",
            "NEMORUN_TEST_SSH_PORT",
            "NEMORUN_TEST_SSH_USER",
            "NEMORUN_TEST_SSH_KEY",
            "NEMORUN_TEST_SSH_BAD_KEY",
            "NEMORUN_TEST_SSH_KNOWN_HOSTS",
            "NEMORUN_TEST_SSH_WRONG_KNOWN_HOSTS",
        ],
        "sshd.sh",
    )
    return SSHService(
        host=e["NEMORUN_TEST_SSH_HOST"],
        port=int(e["NEMORUN_TEST_SSH_PORT"]),
        user=e["NEMORUN_TEST_SSH_USER"],
        key=e["NEMORUN_TEST_SSH_KEY"],
        bad_key=e["NEMORUN_TEST_SSH_BAD_KEY"],
        known_hosts=e["NEMORUN_TEST_SSH_KNOWN_HOSTS"],
        wrong_known_hosts=e["NEMORUN_TEST_SSH_WRONG_KNOWN_HOSTS"],
    )


def slurm() -> SlurmService:
    """The Slurm test cluster. Raises RuntimeError (naming the script to run) when it was not set up."""
    e = _require(
        [
            "NEMORUN_TEST_SLURM_PARTITION",
            "NEMORUN_TEST_SLURM_ACCOUNT",
            "NEMORUN_TEST_SLURM_JOB_DIR",
            "NEMORUN_TEST_SLURM_PYTHON",
        ],
        "slurm.sh",
    )
    return SlurmService(
        partition=e["NEMORUN_TEST_SLURM_PARTITION"],
        account=e["NEMORUN_TEST_SLURM_ACCOUNT"],
        job_dir=e["NEMORUN_TEST_SLURM_JOB_DIR"],
        python=e["NEMORUN_TEST_SLURM_PYTHON"],
    )


def docker() -> DockerService:
    """The Docker test engine. Raises RuntimeError (naming the script to run) when it was not set up."""
    e = _require(
        [
            "NEMORUN_TEST_DOCKER_HOST",
            "NEMORUN_TEST_DOCKER_BUSYBOX",
            "NEMORUN_TEST_DOCKER_PYTHON",
        ],
        "docker.sh",
    )
    return DockerService(
        host=e["NEMORUN_TEST_DOCKER_HOST"],
        busybox=e["NEMORUN_TEST_DOCKER_BUSYBOX"],
        python=e["NEMORUN_TEST_DOCKER_PYTHON"],
    )
