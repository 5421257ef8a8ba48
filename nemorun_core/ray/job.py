"""``RayJob``: one command run as a Ray job, on its own cluster or on an existing one.

    job = RayJob(name="train", executor=run.LocalExecutor())        # its own cluster, started by start()
    job = RayJob(name="train", cluster=cluster)                     # an existing RayCluster
    job.start(command="python train.py", workdir="./project", runtime_env_yaml="runtime_env.yaml")
    job.logs(follow=True)
    job.stop()

Submission goes through :class:`~nemorun_core.executors.ray.RayExecutor` (the same request, submission id and
re-attach as an experiment task on Ray). The job's stable key is ``ray-<cluster>/<name>/<attempt>``: ``start`` in a
restarted script re-attaches to the job of that name while it runs instead of submitting it twice, and a new attempt
starts only once the previous one has ended. What the job has become is kept under
``$NEMORUN_HOME/ray/<cluster>/jobs/<name>``, so ``status()``, ``logs()`` and ``stop()`` work from any process.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Callable, Optional, Sequence

from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job, JobHandle, JobStatus
from nemorun_core.executors.files import write_atomic
from nemorun_core.ray.backend import state_dir
from nemorun_core.ray.cluster import RayCluster, check_commands

_LATEST = "latest.json"


def load_runtime_env(path: Any) -> dict[str, Any]:
    """The mapping of a runtime environment YAML file (Ray's ``runtime_env``).

    Raises:
        ConfigError: the file does not exist, is not YAML, or is not a mapping (naming the field and the fix).
    """
    import yaml

    where = "RayJob.start.runtime_env_yaml"
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ConfigError(f"{path!r} is not a file; pass the path of a YAML file of Ray's runtime_env (e.g. "
                          "'runtime_env.yaml' with 'pip: [numpy]')", path=where)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{os.fspath(path)!r} is not valid YAML{at}: {getattr(exc, 'problem', exc)}; fix the file",
                          path=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{os.fspath(path)!r} holds a {type(data).__name__}, not a mapping of runtime_env fields "
                          "(pip:, env_vars:, working_dir:, ...)", path=where)
    return data


@dataclasses.dataclass(kw_only=True)
class RayJob:
    """A command run as a Ray job.

    Args:
        name: the job's name (letters, digits, ``_.-``); with the cluster's name, its stable key.
        executor: where its own cluster runs (``run.LocalExecutor()``), or a ``run.RayExecutor`` naming the
            cluster (``RayExecutor(address=...)``).
        cluster: an existing :class:`RayCluster` to run on instead of a cluster of its own.
    """

    name: str
    executor: Any = None
    cluster: Optional[RayCluster] = None

    def __post_init__(self) -> None:
        from nemorun_core.ray.cluster import _NAME

        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"{self.name!r} is not a job name: use letters, digits, '_', '.', '-', e.g. "
                              "'distributed-training'", path="RayJob.name")
        if (self.executor is None) == (self.cluster is None):
            raise ConfigError("give executor= (where the job's own cluster runs, e.g. run.LocalExecutor()) or "
                              "cluster= (an existing RayCluster), one of the two", path="RayJob.executor")
        if self.cluster is not None and not isinstance(self.cluster, RayCluster):
            raise ConfigError(f"must be a RayCluster, got {type(self.cluster).__name__}", path="RayJob.cluster")

    # -- what it runs on --------------------------------------------------------------------------------------------
    def _ray_executor(self, runtime_env: Optional[dict[str, Any]] = None) -> Any:
        from nemorun_core.executors.ray import RayExecutor

        if isinstance(self.executor, RayExecutor):
            base = self.executor
            merged = {**(base.runtime_env or {}), **(runtime_env or {})}
            return dataclasses.replace(base, runtime_env=merged or None)
        return RayExecutor(cluster=self._cluster(), runtime_env=runtime_env or None)

    def _cluster(self) -> RayCluster:
        from nemorun_core.executors.ray import RayExecutor

        if self.cluster is not None:
            return self.cluster
        if isinstance(self.executor, RayExecutor):
            return self.executor.cluster or RayCluster(name=self.name, address=self.executor.address)
        return RayCluster(name=self.name, executor=self.executor)

    @property
    def owns_cluster(self) -> bool:
        """Whether the job started its cluster itself (``executor=`` a placement): ``stop()`` stops it too."""
        from nemorun_core.executors.ray import RayExecutor

        return self.cluster is None and not isinstance(self.executor, RayExecutor)

    def _dir(self) -> str:
        return os.path.join(state_dir(self._cluster().name), "jobs", self.name)

    def _key(self, attempt: int) -> str:
        return f"ray-{self._cluster().name}/{self.name}/{attempt}"

    def _latest(self) -> Optional[JobHandle]:
        try:
            with open(os.path.join(self._dir(), _LATEST)) as f:
                return JobHandle.from_json(f.read())
        except FileNotFoundError:
            return None

    # -- life -------------------------------------------------------------------------------------------------------
    def start(self, command: str, workdir: Optional[str] = None, runtime_env_yaml: Optional[str] = None,
              pre_ray_start_commands: Optional[Sequence[str]] = None, dryrun: bool = False) -> Any:
        """Submit ``command`` (a shell command line) as a Ray job; return its handle (with ``dryrun``: the text of
        what would run, printed too, and nothing is started).

        Args:
            workdir: a local directory Ray uploads to the cluster; the command runs in it.
            runtime_env_yaml: a YAML file of Ray's runtime environment (``pip:``, ``env_vars:``...).
            pre_ray_start_commands: commands run before ``ray start`` on the nodes of the job's own cluster (when
                it starts it; a cluster already running has run its own).

        Raises:
            ConfigError: a bad argument, before anything is started.
        """
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"must be a shell command line, e.g. 'python train.py', got {command!r}",
                              path="RayJob.start.command")
        commands = check_commands(pre_ray_start_commands, "RayJob.start.pre_ray_start_commands")
        runtime_env = load_runtime_env(runtime_env_yaml) if runtime_env_yaml is not None else {}
        if workdir is not None:
            if not isinstance(workdir, (str, os.PathLike)) or not os.path.isdir(workdir):
                raise ConfigError(f"{workdir!r} is not a directory here; pass the local directory of the job's "
                                  "code (Ray uploads it to the cluster)", path="RayJob.start.workdir")
            runtime_env["working_dir"] = os.path.abspath(workdir)
        cluster = self._cluster()
        executor = self._ray_executor(runtime_env)
        latest = self._latest()
        attempt = 0 if latest is None else int(latest.key.rsplit("/", 1)[1])
        job = self._job(command, attempt, workdir is None)
        if dryrun:
            parts = []
            if executor.address is None and cluster.dashboard_url() is None:
                parts.append(cluster.backend().render_start(commands))
            parts.append(executor.dryrun(job).text)
            text = "\n".join(parts)
            print(text, end="")
            return text
        if executor.dashboard() is None:
            cluster.start(pre_ray_start_commands=commands)
        address = executor.dashboard()
        existing = executor.find(job.key, job.job_dir)
        if existing is not None:
            if not executor.status(existing).is_terminal:
                return existing  # still running: re-attach, never submit twice
            job = self._job(command, attempt + 1, workdir is None)
            handle = executor.submit(job)
        else:
            handle = executor.send(job, address)  # just looked: no second lookup
        os.makedirs(self._dir(), exist_ok=True)
        write_atomic(os.path.join(self._dir(), _LATEST), handle.to_json())
        return handle

    def _job(self, command: str, attempt: int, run_in_job_dir: bool) -> Job:
        job_dir = os.path.join(self._dir(), str(attempt))
        # With a workdir, Ray runs the command in the uploaded copy: no `cd` of ours.
        return Job(self.name, self._key(attempt), ["/bin/sh", "-c", command], job_dir,
                   cwd=None if run_in_job_dir else ".")

    def _handle(self) -> JobHandle:
        handle = self._latest()
        if handle is None:
            raise ConfigError(f"the Ray job {self.name!r} was never started (call start(command=...) first)",
                              path="RayJob.name")
        return handle

    def status(self) -> JobStatus:
        """The job's state (``FAILED`` with Ray's driver exit code and the log's last lines in its message)."""
        return self._ray_executor().status(self._handle())

    def logs(self, follow: bool = True, offset: int = 0, emit: Callable[[str], Any] = print) -> int:
        """Hand the job's log lines from ``offset`` to ``emit`` (default: print); with ``follow``, until the job
        has ended. Returns the offset after the last line."""
        for line in self._ray_executor().logs(self._handle(), follow=follow, offset=offset):
            emit(line)
            offset += 1
        if emit is print:
            sys.stdout.flush()
        return offset

    def stop(self) -> None:
        """Stop the job (Ray's ``stop_job``; it ends ``CANCELLED``), and the job's own cluster if it started one.
        Idempotent."""
        handle = self._latest()
        if handle is not None and self._cluster().dashboard_url() is not None:
            self._ray_executor().cancel(handle)
        if self.owns_cluster:
            self._cluster().stop()
