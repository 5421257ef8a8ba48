"""The Docker executor: containers on a local Docker engine, labelled for re-attachment, images never pulled."""

from nemorun_core.executors.docker.executor import DockerExecutor
from nemorun_core.executors.docker.image import DockerImagePackager

__all__ = ["DockerExecutor", "DockerImagePackager"]
