"""``DockerExecutor``: run a job as one or more containers on a Docker engine.

``dryrun`` returns the exact ``containers.create`` arguments (JSON, sorted keys): ``prepare`` decides the image and
the code (checking, packaging, building at submission; without any engine call or write for ``dryrun``, where a
built image's tag and a package's digest are declared placeholders), the pure ``render`` makes the request, and
``submit`` creates the containers from that request's own text, kept in the job directory as ``request.json``.
Secrets are never among them: they
are copied into each container as files between create and start and loaded by its command (``secret_files``), so
``docker inspect`` and a kept failed container do not show them; ``dryrun`` lists their names only. A job is
``nodes * ntasks_per_node`` containers (one per node with a launcher such as torchrun), each labelled with the job's
key, name and rank: the labels are how ``find`` re-attaches from any process and how ``status_many`` reads every job
with one container list. The engine must see this machine's files: the job directory is bind-mounted at the same
path, nemorun itself read-only under ``/opt/nemorun/lib``, the task's code either by its host paths (read-only) or,
with a packager, as an extracted archive at ``/workspace/code`` (or baked into an image by ``DockerImagePackager``).

Images are never pulled: a missing image is an error before anything is created. Containers use network ``host``
or ``none`` only (see ``spec.NETWORK_RULE``). An engine that does not answer is a ``BackendUnavailableError`` naming
it, from every call (``engine.reaching``); a job whose containers the engine stopped while it shut down is FAILED
with that said, not a generic failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, ClassVar, Iterator, Mapping, Optional, Sequence

from nemorun_core.errors import BackendUnavailableError, ConfigError, ExecutorError, SubmissionError
from nemorun_core.executors.base import (
    Executor,
    Job,
    JobHandle,
    JobState,
    JobStatus,
    Capability,
    LocalJobFiles,
    SubmitRequest,
)
from nemorun_core.executors import ranks
from nemorun_core.executors.docker import engine
from nemorun_core.executors.docker import logfile
from nemorun_core.executors.docker import secret_files
from nemorun_core.executors.docker import spec as S
from nemorun_core.executors.docker import states
from nemorun_core.executors.docker.image import extract_code, require_image
from nemorun_core.executors.docker.spec import to_sdk_kwargs
from nemorun_core.executors.files import read_json, rewrite_payload, write_atomic
from nemorun_core.executors.lines import check_offsets
from nemorun_core.jobfiles import JobFiles
from nemorun_core.packaging.base import check_packager, packages_code

HANDLE_FILE, CANCEL_FILE, LOG_FILE = JobFiles.HANDLE, JobFiles.CANCEL, JobFiles.LOG
OUTCOME_FILE = "docker_outcome.json"  # the containers' final states, kept when cleanup removes them
FIRST_FAILURE_FILE = "docker_first_failure.json"  # the rank that failed first, when the others had to be stopped


def _share_with_container_user(user: str, uid: int, gid: int, paths: list[Optional[str]]) -> None:
    """Hand the job directory (and the packaged code) to the user the container runs as, when that is not us.

    The store is private to its user (0700/0600), so a container that runs as another uid (``user="1000"``, an
    image whose USER is not root) could not read its task or write its results. As root, nemorun gives it the
    directories (``chown``, the owner keeps them private); as anyone else it cannot, and says what to pass instead.
    """
    if uid in (0, os.geteuid()):  # root in the container reads the mount as root does on the host
        return
    if os.geteuid() != 0:
        raise SubmissionError(
            f"the container runs as uid {uid} (DockerExecutor.user or the image's USER {user!r}), which cannot use "
            f"this job's private directory; run it as yourself: DockerExecutor(user=\"{os.getuid()}:{os.getgid()}\")")
    for top in filter(None, paths):
        os.chown(top, uid, gid)
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


# What a dry plan shows for what only submission can know (SubmitRequest.placeholders).
CODE_IMAGE_PLACEHOLDER = "nemorun-code:<built at submission>"
DIGEST_PLACEHOLDER = "<package digest>"


@dataclasses.dataclass(frozen=True)
class DockerPlan:
    """What :meth:`DockerExecutor.prepare` decided for one job: all its request depends on beyond the job and the
    executor's settings.

    Attributes:
        image: the image the containers run (the executor's, or the tag a ``DockerImagePackager`` built).
        code_dir: the host directory of the extracted code package (mounted at ``code_target``), or None.
        code_target: where packaged code is in the containers (``spec.CODE_DIR`` or the image packager's
            workdir), or None when the code is mounted from its host paths.
        mounts: the task's host import directories mounted read-only (those that exist), or None when packaged.
        files: the job's files as written into the job directory (``task.json`` with the containers' import path).
        placeholders: tokens a dry plan shows for what only submission can know, with what replaces them.
        master_port: the rendezvous port of a job of several containers without a launcher (``MASTER_PORT``, see
            ``executors/ranks.py``); None for other jobs, and where a plan does not say, the job's preferred port.
    """

    image: str
    code_dir: Optional[str]
    code_target: Optional[str]
    mounts: Optional[tuple[str, ...]]
    files: tuple[tuple[str, str], ...]
    placeholders: tuple[tuple[str, str], ...] = ()
    master_port: Optional[int] = None


@dataclasses.dataclass(kw_only=True)
class DockerExecutor(LocalJobFiles, Executor):
    """Run tasks in Docker containers.

    Args:
        container_image: the image (``"nvidia/pytorch:24.05-py3"``); it must already be on the engine (``docker
            pull`` / ``docker load``): nemorun never pulls.
        num_gpus: GPUs per container: None/0 (none), an int, or ``"all"`` (``-1``, NeMo Run's spelling, is the
            same); becomes a ``DeviceRequest``.
        volumes: ``["/host/path:/container/path[:ro]"]`` bind mounts (absolute host paths).
        ports: ``[8080]``, ``["8080:8080"]``, ``[(8080, 8080)]`` or ``{8080: 8080}``. With ``network="host"`` the
            container uses this machine's ports directly, so a port can only be published as itself.
        env_vars: the containers' environment (values are strings).
        runtime, shm_size, ulimits, ipc_mode, user: as ``docker run`` (``ulimits={"nofile": (65536, 65536)}``).
        network: ``"host"`` (default) or ``"none"``; other networks are refused.
        packager: None or the pass-through ``run.Packager()`` (the task's code is mounted read-only from its host
            paths, beside ``volumes``), a packager (its archive is extracted into
            ``$NEMORUN_HOME/docker-code/<digest>`` and mounted at ``/workspace/code``) or a ``DockerImagePackager``
            (the code is built into an image, which the containers run).
        extra_args, additional_kwargs: more ``containers.create`` arguments (``{"mem_limit": "4g", "cpu_quota":
            50000}``), checked against an allowed set; ``additional_kwargs`` is NeMo Run's name of the same setting.
        privileged: run the containers privileged (``docker run --privileged``: every device, no confinement).
        healthcheck: the containers' health check, as the Docker SDK takes it: ``{"test": ["CMD", "true"],
            "interval": 10**10}`` (durations in nanoseconds); the container's health is in ``docker ps``.
        nodes, ntasks_per_node: containers per job (each with the rank environment of ``executors/ranks.py``:
            ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``...); with a launcher, one
            container per node runs the launcher with ``ntasks_per_node`` processes.
        launcher: ``None``, ``"torchrun"`` or ``run.Torchrun(...)``.
        python: the interpreter in the image that runs Python tasks.
        cleanup: when finished containers are removed: ``"on_success"`` (failed ones are kept for inspection),
            ``"always"`` or ``"never"``. Logs are copied into the job directory first.
        cancel_grace_s: seconds between SIGTERM and SIGKILL when the job is cancelled.
        docker_host: the engine's address (``unix:///run/docker.sock``, ``tcp://...``); default ``$DOCKER_HOST``,
            else the SDK's default socket. The engine must run on this machine (the job directory is bind-mounted).
    """

    container_image: str
    num_gpus: Optional[Any] = None
    volumes: list[str] = dataclasses.field(default_factory=list)
    ports: Any = None
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    runtime: Optional[str] = None
    shm_size: Optional[Any] = None
    ulimits: Any = None
    ipc_mode: Optional[str] = None
    network: str = "host"
    user: Optional[str] = None
    packager: Any = None
    extra_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    additional_kwargs: Optional[dict[str, Any]] = None
    privileged: bool = False
    healthcheck: dict[str, Any] = dataclasses.field(default_factory=dict)
    nodes: int = 1
    ntasks_per_node: int = 1
    launcher: Any = None
    python: str = "python3"
    cleanup: str = "on_success"
    cancel_grace_s: float = 10.0
    docker_host: Optional[str] = None

    backend: ClassVar[str] = "docker"
    #: The example a missing argument's error shows (see ``fields.check_init_args``).
    arg_examples: ClassVar[dict[str, str]] = {"container_image": "'python:3.11-slim'"}
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOGS, Capability.CANCEL, Capability.DETACH, Capability.STATUS_MANY, Capability.FIND,
         Capability.FETCH_FILES})

    def __post_init__(self) -> None:
        if self.num_gpus == -1 and not isinstance(self.num_gpus, bool):
            self.num_gpus = "all"  # NeMo Run's "all GPUs"
        if self.additional_kwargs is not None:
            if self.extra_args and self.extra_args != self.additional_kwargs:
                raise ConfigError("extra_args and additional_kwargs are one setting and disagree; give one",
                                  path="DockerExecutor.additional_kwargs")
            if not isinstance(self.additional_kwargs, Mapping):
                raise ConfigError(f"must be a dict of containers.create arguments, got {self.additional_kwargs!r}",
                                  path="DockerExecutor.additional_kwargs")
            self.extra_args, self.additional_kwargs = dict(self.additional_kwargs), None
        self.check()

    def check(self) -> None:
        """Reject bad settings before anything is created; each error names the field and the fix."""
        S.check_fields(self)
        check_packager(self.packager, "DockerExecutor.packager")

    def info(self) -> str:
        """``"DockerExecutor on <engine address>"`` (NeMo Run's method)."""
        return f"{type(self).__qualname__} on {self.host() or 'the default Docker engine'}"

    # -- rendering (pure) -------------------------------------------------------------------------------------------
    def host(self) -> str:
        """The engine's address ("" for the SDK's default socket). Read at call time, never cached."""
        return self.docker_host or os.environ.get("DOCKER_HOST") or ""

    def batch_key(self) -> tuple[str, str]:
        return (self.backend, self.host())

    @property
    def nodes_and_tasks(self) -> tuple[int, int]:
        return self.nodes, self.ntasks_per_node

    def _image_packager(self) -> Any:
        from nemorun_core.executors.docker.image import DockerImagePackager

        return self.packager if isinstance(self.packager, DockerImagePackager) else None

    # -- prepare (I/O) and render (pure): what dryrun shows is what submit sends ---------------------------------
    def prepare(self, job: Job, *, dry: bool = False) -> "DockerPlan":
        """Decide the image and the code the containers get, and the task's import path in them.

        Without ``dry`` (for :meth:`submit`) this checks the image is on the engine, packages the code and
        extracts it (or builds a ``DockerImagePackager`` image): blocking engine calls and file writes. With
        ``dry`` (for :meth:`dryrun`) it makes the same decisions with no engine call and no write: what only
        that work can tell (the built image's tag, the package's digest) is a declared placeholder. Both modes
        read which of the task's import directories exist here, since only those can be bind-mounted.

        A job of several containers (no launcher) gets its rendezvous port here: with ``network="host"`` the
        containers share this machine's ports, so submission takes one free now (the job's preferred port unless
        it is taken); a dry plan, and ``network="none"`` (nothing else can be on a container's own loopback), use
        the preferred port.

        Raises:
            ConfigError: a bad setting.
            SubmissionError: (not ``dry``) the image is missing, or the code could not be packaged or built.
        """
        from nemorun_core.home import default_home

        self.check()
        image_packager = self._image_packager()
        client = None if dry else engine.client(self.host())
        placeholders: dict[str, str] = {}
        code_dir = mounts = code_target = None
        if image_packager is not None:
            if dry:
                image = CODE_IMAGE_PLACEHOLDER
                placeholders[image] = "the tag of the image DockerImagePackager builds from the code at submission"
            else:
                image = image_packager.build(client, os.getcwd(), os.path.join(default_home(), "packages"))
            code_target = image_packager.workdir
            sys_path = [code_target]
        else:
            image = self.container_image
            if client is not None:
                require_image(client, image)
            if packages_code(self.packager):  # None or the pass-through run.Packager(): the host's code, mounted
                if dry:
                    code_dir = os.path.join(default_home(), "docker-code", DIGEST_PLACEHOLDER)
                    placeholders[DIGEST_PLACEHOLDER] = "the content digest of the code package built at submission"
                else:
                    code_dir = extract_code(self.packager, default_home())
                code_target = S.CODE_DIR
                sys_path = [code_target]
            else:
                # Only directories that exist can be bind-mounted; the others could not be imported from anyway.
                sys_path = [p for p in _payload_sys_path(job) or [] if os.path.isdir(p)]
                mounts = tuple(sys_path)
        files = dict(job.files)
        if JobFiles.TASK in files:
            files[JobFiles.TASK] = rewrite_payload(files[JobFiles.TASK], sys_path)
        return DockerPlan(image=image, code_dir=code_dir, code_target=code_target, mounts=mounts,
                          files=tuple(sorted(files.items())), placeholders=tuple(sorted(placeholders.items())),
                          master_port=self._master_port(job, dry))

    def _master_port(self, job: Job, dry: bool) -> Optional[int]:
        """The plan's rendezvous port (see :meth:`prepare`); None when the containers need none."""
        from nemorun_core.launchers import resolve_launcher

        if resolve_launcher(self.launcher) is not None or not ranks.is_distributed(self.nodes, self.ntasks_per_node):
            return None
        preferred = ranks.preferred_port(job.key)
        return preferred if dry or self.network != "host" else ranks.free_port(preferred)

    def specs(self, job: Job, plan: "DockerPlan") -> list[dict[str, Any]]:
        """The ``containers.create`` arguments of every container of ``job`` under ``plan``, rank order. Pure;
        secrets are not in them (see ``secret_files``)."""
        return S.render_specs(self, job, image=plan.image, nemorun_src=_nemorun_src(),
                              sys_path=list(plan.mounts) if plan.mounts is not None else None,
                              code_dir=plan.code_dir, code_target=plan.code_target, port=plan.master_port)

    def render(self, job: Job, plan: "DockerPlan") -> SubmitRequest:
        """The job's request: the containers' specs as JSON (sorted keys), kept in the job directory as
        ``JobFiles.REQUEST``, plus the job's files (``task.json`` with its import path in the containers). Pure."""
        specs = self.specs(job, plan)
        secret_names = sorted(S.secret_env(self, job))
        return SubmitRequest(self.backend, S.dump(specs, secret_names), files=dict(plan.files),
                             meta={"image": plan.image, "containers": [s["name"] for s in specs],
                                   "env": sorted([*specs[0]["environment"], *secret_names]),
                                   "docker_host": self.host()},
                             sent_as=JobFiles.REQUEST, placeholders=dict(plan.placeholders))

    def dryrun(self, job: Job) -> SubmitRequest:
        """Exactly what :meth:`submit` sends: ``render(job, prepare(job, dry=True))``. No engine call, no write."""
        return self.render(job, self.prepare(job, dry=True))

    # -- the contract -----------------------------------------------------------------------------------------------
    def submit(self, job: Job) -> JobHandle:
        """Create and start the job's containers; blocks until the engine started them (not until they end).

        The containers are created from the specs in the text of ``render(job, prepare(job))`` (what
        :meth:`dryrun` shows), which is kept in the job directory as ``JobFiles.REQUEST`` first.

        Idempotent by ``job.key``: containers labelled with the key (or the job directory's handle) are returned
        instead of creating more; two racing submissions collide on the containers' names and the second re-attaches.

        Raises:
            SubmissionError: the image is missing (nothing is created), the code could not be packaged, or a
                container could not be created or started (those created are removed).
            engine.EngineUnavailableAtSubmitError: (a SubmissionError and a BackendUnavailableError) the engine
                does not answer; checked before anything is written or created.
        """
        self.check()
        if not os.path.isabs(job.job_dir):
            raise SubmissionError(f"job directory {job.job_dir!r} must be an absolute path (it is bind-mounted)")
        host = self.host()
        with engine.reaching(host, f"submitting job {job.name!r}", submitting=True):
            existing = self.find(job.key, job.job_dir)
            if existing is not None:
                return existing
            client = engine.client(host)
            plan = self.prepare(job)
            request = self.render(job, plan)
            os.makedirs(job.job_dir, exist_ok=True)
            for name, content in request.files.items():
                write_atomic(os.path.join(job.job_dir, name), content)
            # Left by an earlier attempt in the same directory: they would decide this attempt's status.
            for stale in (CANCEL_FILE, OUTCOME_FILE, FIRST_FAILURE_FILE):
                _remove(os.path.join(job.job_dir, stale))
            write_atomic(os.path.join(job.job_dir, request.sent_as), request.text)
            specs = json.loads(request.text)["containers"]  # the request's own text: no second rendering
            handle = self._create_and_start(client, job, specs, plan.code_dir)
        write_atomic(os.path.join(job.job_dir, HANDLE_FILE), handle.to_json())
        return handle

    def status_calls(self, n: int) -> int:
        """One container list per engine for any number of running jobs (failed containers add an inspect each)."""
        return 1 if n > 0 else 0

    def _create_and_start(self, client: Any, job: Job, specs: list[dict[str, Any]],
                          code_dir: Optional[str] = None) -> JobHandle:
        """Create every container, give each its secret files, start them; on any failure remove those created
        (a job is all its containers or none) and raise."""
        from docker.errors import APIError, DockerException

        secrets = S.secret_env(self, job)
        in_volume = secret_files.needs_volume(self.extra_args)
        created: list[Any] = []
        try:
            for one in specs:
                created.append(client.containers.create(**to_sdk_kwargs(one)))
                if len(created) == 1:  # every container of a job runs the same image as the same user
                    user, uid, gid = secret_files.container_user(client.api, created[0].id)
                    _share_with_container_user(user, uid, gid, [job.job_dir, code_dir])
                secret_files.deliver(client.api, created[-1].id, secrets, uid, gid, in_volume=in_volume)
            for container in created:
                container.start()
        except BaseException as exc:
            for container in created:
                try:
                    container.remove(force=True, v=True)
                except Exception:  # noqa: BLE001 - the engine may be gone: the first error is the one to report
                    pass
            if isinstance(exc, APIError) and exc.status_code == 409:
                # A container of this job already exists: another submission won the race.
                again = self.find(job.key, job.job_dir)
                if again is not None:
                    return again
            if isinstance(exc, DockerException) and not engine.is_unreachable(exc):
                raise SubmissionError(f"could not start the containers of job {job.name!r}: "
                                      f"{_explain(exc)}") from None
            raise
        ids = [c.id for c in created]
        return JobHandle.create(self.backend, ids[0], job.key, job.job_dir, containers=",".join(ids),
                                docker_host=self.host())

    def find(self, key: str, job_dir: str) -> JobHandle | None:
        """The job submitted under ``key``: its containers (by label), else the job directory's handle (the
        containers may have been removed by the cleanup policy). One engine call."""
        host = self.host()
        summaries = engine.list_labelled(host, f"{S.LABEL_KEY}={key}")
        if summaries:
            summaries.sort(key=_rank)
            ids = [s["Id"] for s in summaries]
            job_dir = (summaries[0].get("Labels") or {}).get(S.LABEL_JOB_DIR) or job_dir
            return JobHandle.create(self.backend, ids[0], key, job_dir, containers=",".join(ids), docker_host=host)
        data = read_json(os.path.join(job_dir, HANDLE_FILE)) if job_dir else None
        if data and data.get("key") == key and data.get("backend") == self.backend:
            return JobHandle.from_dict(data)
        return None

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        """One container list per engine for all ``handles`` (plus an inspect of each failed container, for its
        OOM flag). A job whose containers are gone is read from its files. Terminal jobs get their logs copied into
        the job directory and their containers removed as ``cleanup`` says.

        Raises:
            BackendUnavailableError: an engine does not answer (its jobs may still run: a follower retries this).
        """
        out: dict[JobHandle, JobStatus] = {}
        by_host: dict[str, list[JobHandle]] = {}
        for h in handles:
            by_host.setdefault(h.extra("docker_host") or self.host(), []).append(h)
        for host, group in by_host.items():
            try:
                summaries = engine.list_labelled(host, S.LABEL_KEY)
            except BackendUnavailableError:
                raise
            except ExecutorError as exc:  # the engine answered but refused: say so per job
                for h in group:
                    out[h] = JobStatus(JobState.UNKNOWN, "", str(exc))
                continue
            by_key: dict[str, list[dict[str, Any]]] = {}
            for s in summaries:
                by_key.setdefault((s.get("Labels") or {}).get(S.LABEL_KEY, ""), []).append(s)
            for h in group:
                out[h] = self._job_status(host, h, sorted(by_key.get(h.key, []), key=_rank))
        return out

    def _job_status(self, host: str, handle: JobHandle, summaries: list[dict[str, Any]]) -> JobStatus:
        if not summaries or any(states.native_of(s) == "removing" for s in summaries):
            return _status_from_files(handle, host)
        cancelled = os.path.exists(os.path.join(handle.job_dir, CANCEL_FILE))
        runner = read_json(os.path.join(handle.job_dir, JobFiles.STATUS)) or {}
        engine_start = engine.EngineStart(host)
        parts, details = [], []
        for s in summaries:
            native, code = states.native_of(s), states.exit_code_of(s)
            oom, error, by_engine = False, "", False
            if native == "dead" or (native == "exited" and code != 0):
                info = engine.inspect(host, s["Id"])
                state = info.get("State") or {}
                oom, error = bool(state.get("OOMKilled")), str(state.get("Error") or "")
                code = state.get("ExitCode", code)
                by_engine = (not cancelled and not oom and states.killed_by_signal(code)
                             and not (runner.get("traceback") and _rank(s) == 0)
                             and states.stopped_by_engine(code, state.get("FinishedAt"), engine_start.get()))
            rank0 = _rank(s) == 0
            parts.append(states.container_status(native, code, oom_killed=oom, error=error, cancelled=cancelled,
                                                 runner_error=runner.get("error") if rank0 else None,
                                                 stopped_by_engine=by_engine))
            details.append({"id": s["Id"], "rank": _rank(s), "native": native, "exit_code": code, "oom_killed": oom})
        status = states.combine(parts)
        live = [d["id"] for d, p in zip(details, parts) if not p.is_terminal]
        first_failure = os.path.join(handle.job_dir, FIRST_FAILURE_FILE)
        if status.state is JobState.FAILED and live:
            # One rank failed: the others cannot complete (a distributed job waits for its peers), so they are
            # stopped, and the job stays RUNNING until every container has ended (then logs are kept, cleanup runs).
            # The first failure is kept: it, not the peers' SIGKILL, is the job's outcome.
            if not os.path.exists(first_failure):
                write_atomic(first_failure, json.dumps(status.to_dict()))
            engine.stop_in_background(engine.client(host), live, int(round(self.cancel_grace_s)))
            return JobStatus(JobState.RUNNING, "stopping", f"{status.message}; stopping the other containers")
        if status.state is JobState.FAILED:
            first = read_json(first_failure)
            if first:
                status = JobStatus.from_dict(first)
        if status.is_terminal:
            self._finish(host, handle, status, details)
        return status

    def _finish(self, host: str, handle: JobHandle, status: JobStatus, details: list[dict[str, Any]]) -> None:
        """Keep the outcome and logs in the job directory, then remove the containers as ``cleanup`` says."""
        from docker.errors import DockerException

        client = engine.client(host)
        outcome_path = os.path.join(handle.job_dir, OUTCOME_FILE)
        with engine.reaching(host, f"saving the logs of job {handle.key!r}"):
            if not os.path.exists(outcome_path):
                for d in details:
                    name = LOG_FILE if d["rank"] == 0 else f"log.rank{d['rank']}.out"
                    try:
                        data = client.api.logs(d["id"], stdout=True, stderr=True)
                    except DockerException as exc:
                        if engine.is_unreachable(exc):
                            raise
                        continue
                    write_atomic(os.path.join(handle.job_dir, name), data)
                write_atomic(outcome_path, json.dumps({"status": status.to_dict(), "containers": details}))
            if self.cleanup == "always" or (self.cleanup == "on_success" and status.state is JobState.SUCCEEDED):
                for d in details:
                    try:
                        # v=True: the anonymous volume of a read-only container's secret files goes with it.
                        client.api.remove_container(d["id"], v=True)
                    except DockerException as exc:
                        if engine.is_unreachable(exc):
                            raise
                        # removed meanwhile by another poller: the outcome file is already there

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        """Status and new log lines of many jobs per round, in a number of engine calls that does not grow with them.

        The states come from :meth:`status_many` (one container list per engine); the lines of a running job from
        the engine's own log file on this machine, from where the last round stopped (``logfile``): no engine call
        per job. A job that just ended costs what it always did, once (its logs are saved into the job directory,
        its containers cleaned up), and its lines then come from ``log.out``. Where the engine's log file cannot be
        read here, each running job's log is asked of the engine, as the contract's default does.

        Offsets are line numbers (the next line to return). A last line without its newline is held back while the
        job runs (it may still grow) and returned once the job is terminal. A job gets at most
        ``logfile.POLL_MAX_LINES`` lines and ``logfile.POLL_MAX_BYTES`` bytes per round (poll again from the new
        offset: a terminal job's log is complete once a round returns fewer); a single longer line comes cut, with a
        note. An unknown job is ``UNKNOWN`` with no lines. Non-blocking beyond the engine calls; idempotent.

        Raises:
            ExecutorError: an offset is not an int >= 0.
            BackendUnavailableError: an engine does not answer (its jobs may still run: a follower retries this).
        """
        check_offsets(offsets)
        if not offsets:
            return {}
        statuses = self.status_many(list(offsets))
        return {h: (statuses[h], self._new_lines(h, off, statuses[h])) for h, off in offsets.items()}

    def _new_lines(self, handle: JobHandle, offset: int, status: JobStatus) -> list[str]:
        """One round's lines of ``handle`` from ``offset`` (see :meth:`poll_many`)."""
        reader = self._engine_logs()
        saved = os.path.join(handle.job_dir, LOG_FILE)
        if os.path.exists(os.path.join(handle.job_dir, OUTCOME_FILE)):
            reader.drop_container(handle.job_id)
            return reader.saved_lines(saved, offset, capped=True)
        if status.state is JobState.PENDING or (status.state is JobState.UNKNOWN and not status.native):
            return []  # created but not started, or no container and no outcome: nothing was logged yet
        terminal = status.is_terminal
        host = handle.extra("docker_host") or self.host()
        lines = reader.engine_lines(self._log_root(host), handle.job_id, offset, final=terminal)
        if lines is not None:
            return lines
        return self._api_lines(host, handle, offset, final=terminal)

    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        """Rank 0's output (stdout and stderr) from line ``offset``, lines split at ``\\n`` only.

        Read from the engine's log file on this machine where it can be (only what follows the last read of the
        same log: no engine call, no re-read), else from the engine; once the job ended and its log was saved,
        from ``log.out`` in the job directory. With ``follow``, streams from the engine until the container exits.
        """
        reader = self._engine_logs()
        path = os.path.join(handle.job_dir, LOG_FILE)
        if os.path.exists(os.path.join(handle.job_dir, OUTCOME_FILE)):
            yield from reader.saved_lines(path, offset)  # finished and saved: the file is the complete log
            return
        from docker.errors import DockerException

        host = handle.extra("docker_host") or self.host()
        try:
            with engine.reaching(host, f"reading the log of job {handle.key!r}"):
                if not follow:
                    lines = reader.engine_lines(self._log_root(host), handle.job_id, offset, final=True,
                                                capped=False)
                    yield from lines if lines is not None else self._api_lines(host, handle, offset, final=True)
                    return
                yield from engine.follow_lines(engine.client(host), handle.job_id, offset)
                return
        except DockerException:
            pass  # the container is gone (removed by cleanup): its log was copied into the job directory
        yield from reader.saved_lines(path, offset)

    def _api_lines(self, host: str, handle: JobHandle, offset: int, *, final: bool) -> list[str]:
        """The lines from ``offset`` of rank 0's whole log, asked of the engine (where its log file is not
        readable here). Without ``final`` an unterminated last line is held back."""
        from docker.errors import DockerException

        with engine.reaching(host, f"reading the log of job {handle.key!r}"):
            try:
                data = engine.client(host).api.logs(handle.job_id, stdout=True, stderr=True)
            except DockerException as exc:
                if engine.is_unreachable(exc) or final:
                    raise
                return []  # gone meanwhile: the next round reads the saved log
        lines, _ = logfile.advance(iter([(data, len(data))]), logfile.Cursor(), offset, final=final,
                                   max_lines=None, max_bytes=None)
        return lines

    def _engine_logs(self) -> logfile.EngineLogs:
        """This executor's log cursors and engine directories (made on first use; copies get their own)."""
        reader = self.__dict__.get("_logfile")
        if reader is None:
            reader = self.__dict__.setdefault("_logfile", logfile.EngineLogs())
        return reader

    def _log_root(self, host: str) -> Optional[str]:
        """Where the engine at ``host`` keeps its containers' log files, if they can be read here (one ``info``
        call per engine and process)."""
        from docker.errors import DockerException

        def ask() -> dict[str, Any]:
            with engine.reaching(host, "asking the Docker engine where it keeps its logs"):
                try:
                    return engine.client(host).info()
                except DockerException as exc:
                    if engine.is_unreachable(exc):
                        raise
                    return {}

        root = self._engine_logs().root(host, ask)
        if root is not None and not os.access(root, os.R_OK | os.X_OK):
            return None
        return root

    def cancel(self, handle: JobHandle) -> None:
        """Stop every container of the job. Idempotent; a finished or unknown job is left alone.

        Non-blocking: SIGTERM is sent at once (one engine call per container); the escalation to SIGKILL after
        ``cancel_grace_s`` is the engine's own ``stop``, requested from a daemon thread, so this call returns
        immediately. (A task that is PID 1 in its container and installs no SIGTERM handler ignores the TERM and is
        killed at the end of the grace period; ``extra_args={"init": True}`` puts an init process in front.)
        """
        from docker.errors import DockerException

        host = handle.extra("docker_host") or self.host()
        summaries = engine.list_labelled(host, f"{S.LABEL_KEY}={handle.key}")  # an engine that does not answer: raised, not ignored
        live = [s["Id"] for s in summaries if states.native_of(s) in ("created", "running", "restarting", "paused")]
        if not live:
            return
        try:
            write_atomic(os.path.join(handle.job_dir, CANCEL_FILE), json.dumps({"requested_at": time.time()}))
        except OSError:
            pass
        client = engine.client(host)
        with engine.reaching(host, f"cancelling job {handle.key!r}"):
            for cid in live:
                try:
                    client.api.kill(cid, signal="SIGTERM")
                except DockerException as exc:
                    if engine.is_unreachable(exc):
                        raise
                    # not running (created, or just exited): stop below handles it
        engine.stop_in_background(client, live, int(max(0, round(self.cancel_grace_s))))

    def log_location(self, handle: JobHandle) -> str:
        path = os.path.join(handle.job_dir, LOG_FILE)
        if os.path.exists(path):
            return path
        return f"docker logs {handle.job_id[:12]} (copied to {path} when the job ends)"

    def log_tail(self, handle: JobHandle, lines: int = 20) -> list[str]:
        from collections import deque

        return list(deque(self.logs(handle), maxlen=lines))


# -- engine access ---------------------------------------------------------------------------------------------------
# -- helpers -----------------------------------------------------------------------------------------------------------
def _rank(summary: dict[str, Any]) -> int:
    try:
        return int((summary.get("Labels") or {}).get(S.LABEL_RANK, 0))
    except ValueError:
        return 0


def _status_from_files(handle: JobHandle, host: str) -> JobStatus:
    saved = read_json(os.path.join(handle.job_dir, OUTCOME_FILE))
    if saved and saved.get("status"):
        return JobStatus.from_dict(saved["status"])
    runner = read_json(os.path.join(handle.job_dir, JobFiles.STATUS))
    cancelled = os.path.exists(os.path.join(handle.job_dir, CANCEL_FILE))
    if runner and runner.get("exit_code") == 0:
        return JobStatus(JobState.SUCCEEDED, "removed", f"the container is gone; {JobFiles.STATUS} says it succeeded", 0)
    if runner:
        code = runner.get("exit_code")
        if cancelled:
            return JobStatus(JobState.CANCELLED, "removed", "cancelled", code)
        return JobStatus(JobState.FAILED, "removed", runner.get("error") or states.describe_exit(int(code or 1)), code)
    return JobStatus(JobState.UNKNOWN, "", f"no container labelled {S.LABEL_KEY}={handle.key} on the Docker engine "
                                           f"at {host or 'the default socket'}, and no outcome in {handle.job_dir}")


def _payload_sys_path(job: Job) -> list[str] | None:
    text = job.files.get(JobFiles.TASK)
    if not text:
        return None
    try:
        return [p for p in json.loads(text).get("sys_path", []) if isinstance(p, str)]
    except (json.JSONDecodeError, AttributeError):
        return None


def _nemorun_src() -> str:
    import nemorun_core

    return os.path.dirname(os.path.abspath(nemorun_core.__file__))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _explain(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)

