"""``nemo_run.core.execution.docker``: :class:`nemorun_core.executors.docker.DockerExecutor`."""

from nemorun_core.executors.docker import DockerExecutor, DockerImagePackager

__all__ = ["DockerExecutor", "DockerImagePackager"]
