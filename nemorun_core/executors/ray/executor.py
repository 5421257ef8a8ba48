"""``RayExecutor``: run each job as a Ray job on a Ray cluster, through Ray's Jobs API (``JobSubmissionClient``).

The cluster is either ``address=`` (the dashboard of a running cluster: ``http://127.0.0.1:8265``) or ``cluster=`` a
:class:`nemorun_core.ray.RayCluster`, started at the first submission if it is not running (the spec's
``run.RayExecutor(cluster=RayCluster(num_nodes=..., ...))``). Every job is submitted with the submission id
:func:`request.submission_id` of its stable key and the key in its metadata, so a second submit of a key (a retry,
another process) finds the job instead of starting another; the status of any number of jobs is one ``list_jobs``
request; logs are Ray's driver log read by line offset; ``cancel`` is ``stop_job`` (Ray's ``STOPPED`` is
``CANCELLED``). A failed job is ``FAILED`` with Ray's ``driver_exit_code`` and message (which ends with the log's
last lines).

The job directory (the task's files, ``result.json``, ``status.json``, the request as sent) must be on a file
system that both this machine and the cluster's head see: a cluster on this machine (local Ray, the test head) or a
shared file system. ``fetch_file`` reads it here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any, ClassVar, Iterator, Optional, Sequence

from nemorun_core.errors import ConfigError, ExecutorError, SubmissionError
from nemorun_core.executors.base import (Capability, Executor, Job, JobHandle, JobState, JobStatus, LocalJobFiles,
                                         SubmitRequest, resolve_argv)
from nemorun_core.executors.files import write_atomic
from nemorun_core.executors.ray import client as C
from nemorun_core.executors.ray import request as R
from nemorun_core.executors.ray.states import state_of
from nemorun_core.jobfiles import JobFiles

#: How often ``logs(follow=True)`` asks the cluster for more.
FOLLOW_POLL_S = 0.5


@dataclasses.dataclass(kw_only=True)
class RayExecutor(LocalJobFiles, Executor):
    """Run tasks as Ray jobs on a Ray cluster.

    Args:
        cluster: a :class:`nemorun_core.ray.RayCluster` the jobs run on; started at the first submission when it
            is not running.
        address: instead of ``cluster``, the dashboard address of a running cluster (``"http://127.0.0.1:8265"``).
        env_vars: environment of the jobs (Ray's ``runtime_env.env_vars``; secret values go through a private file).
        runtime_env: Ray's runtime environment for every job (``{"pip": [...], "working_dir": "..."}``).
        num_cpus, num_gpus: what the entrypoint (driver) reserves on the cluster (Ray's ``entrypoint_num_*``).
        resources: custom resources the entrypoint reserves (``{"accelerator_type:A100": 1}``).
        python: the interpreter of Python tasks on the cluster; default: the cluster's (this interpreter for a local
            cluster, ``python`` from the raylet's PATH otherwise).
        working_dir: the directory jobs run in (on the shared file system, as the job directory); default: each
            job's directory.
    """

    cluster: Any = None
    address: Optional[str] = None
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    runtime_env: Optional[dict[str, Any]] = None
    num_cpus: float = 0
    num_gpus: float = 0
    resources: Optional[dict[str, float]] = None
    python: Optional[str] = None
    working_dir: Optional[str] = None

    backend: ClassVar[str] = "ray"
    arg_examples: ClassVar[dict[str, str]] = {"address": "'http://127.0.0.1:8265'"}
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOGS, Capability.CANCEL, Capability.DETACH, Capability.STATUS_MANY, Capability.FIND,
         Capability.FETCH_FILES})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Reject bad settings before anything is submitted; each error names the field and the fix."""
        from nemorun_core.ray.cluster import RayCluster

        if (self.cluster is None) == (self.address is None):
            raise ConfigError("give exactly one of cluster= (a RayCluster) or address= (a running cluster's "
                              "dashboard, e.g. 'http://127.0.0.1:8265')", path="RayExecutor.cluster")
        if self.cluster is not None and not isinstance(self.cluster, RayCluster):
            raise ConfigError(f"must be a RayCluster (from nemorun_core.run.ray import RayCluster), got "
                              f"{type(self.cluster).__name__}", path="RayExecutor.cluster")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ConfigError(f"must be the dashboard address, e.g. 'http://127.0.0.1:8265', got {self.address!r}",
                              path="RayExecutor.address")
        for field in ("num_cpus", "num_gpus"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"must be a number >= 0, got {value!r}", path=f"RayExecutor.{field}")
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise ConfigError(f"must be a dict (Ray's runtime_env), got {type(self.runtime_env).__name__}",
                              path="RayExecutor.runtime_env")
        if not isinstance(self.env_vars, dict) or not all(isinstance(k, str) for k in self.env_vars):
            raise ConfigError("must be a dict of variable name -> value", path="RayExecutor.env_vars")

    # -- where the cluster is ---------------------------------------------------------------------------------------
    def dashboard(self) -> Optional[str]:
        """The cluster's dashboard address, or None while a ``cluster=`` is not running. No backend call."""
        if self.address is not None:
            return C.normalize(self.address)
        return self.cluster.dashboard_url()

    def batch_key(self) -> tuple[str, str]:
        return (self.backend, self.dashboard() or f"cluster:{self.cluster.name}")

    def _python(self) -> str:
        if self.python:
            return self.python
        return self.cluster.default_python() if self.cluster is not None else "python"

    # -- rendering (pure) -------------------------------------------------------------------------------------------
    def render(self, job: Job) -> SubmitRequest:
        """The job's ``submit_job`` arguments as JSON (sorted keys), kept in the job directory as
        ``JobFiles.REQUEST``, plus the job's files. Pure."""
        plain, secret = R.split_env({**self.env_vars, **job.env})
        plain.setdefault("PYTHONUNBUFFERED", "1")
        plain["NEMORUN_JOB_KEY"] = job.key
        plain["NEMORUN_JOB_DIR"] = job.job_dir  # where log_metrics writes (nemorun_core/metrics.py)
        argv = resolve_argv(job.command, self._python())
        text = R.render(key=job.key, name=job.name, argv=argv, cwd=job.cwd or self.working_dir or job.job_dir,
                        env=plain, secret_names=sorted(secret),
                        secrets_path=os.path.join(job.job_dir, R.SECRETS_FILE),
                        runtime_env=self.runtime_env, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                        resources=self.resources)
        return SubmitRequest(self.backend, text, files=dict(job.files),
                             meta={"submission_id": R.submission_id(job.key), "address": self.dashboard() or "",
                                   "env": sorted([*plain, *secret]), "entrypoint": json.loads(text)["entrypoint"]},
                             sent_as=JobFiles.REQUEST)

    def dryrun(self, job: Job) -> SubmitRequest:
        """Exactly what :meth:`submit` sends. No cluster call, no file written."""
        self.check()
        return self.render(job)

    # -- the contract -----------------------------------------------------------------------------------------------
    def submit(self, job: Job) -> JobHandle:
        """Submit the job to the cluster (starting a ``cluster=`` that is not running first); blocks until Ray
        accepted it, not until it runs.

        Idempotent by ``job.key``: a Ray job with the key's submission id is returned instead of submitting
        another; two racing submissions collide on the id and the second re-attaches.

        Raises:
            SubmissionError: Ray refused the job (nothing was started), or the job directory is not absolute.
            BackendUnavailableError: the dashboard does not answer.
        """
        self.check()
        if self.cluster is not None and self.dashboard() is None:
            self.cluster.start()
        address = self.dashboard()
        existing = self.find(job.key, job.job_dir)
        if existing is not None:
            return existing
        return self.send(job, address)

    def send(self, job: Job, address: str) -> JobHandle:
        """Submit ``job`` to the cluster at ``address`` without looking for it first: for callers that just did
        (:meth:`submit`, ``RayJob.start``). A job of the key that appeared meanwhile is re-attached all the same
        (Ray refuses a second job with one submission id)."""
        if not os.path.isabs(job.job_dir):
            raise SubmissionError(f"job directory {job.job_dir!r} must be an absolute path (the cluster reads it)")
        request = self.render(job)
        os.makedirs(job.job_dir, exist_ok=True)
        for name, content in request.files.items():
            write_atomic(os.path.join(job.job_dir, name), content)
        for stale in (JobFiles.STATUS, JobFiles.RESULT, JobFiles.RESULT_PICKLE):
            try:
                os.unlink(os.path.join(job.job_dir, stale))
            except FileNotFoundError:
                pass
        _, secret = R.split_env({**self.env_vars, **job.env})
        if secret:
            path = os.path.join(job.job_dir, R.SECRETS_FILE)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(R.secrets_script(secret))
        write_atomic(os.path.join(job.job_dir, request.sent_as), request.text)
        kwargs = json.loads(request.text)  # the request's own text: no second rendering
        api = C.client(address)
        try:
            C.calling(address, f"submitting job {job.name!r}", lambda: api.submit_job(**kwargs))
        except ExecutorError as exc:
            if "already exists" in str(exc):
                found = self.find(job.key, job.job_dir)
                if found is not None:
                    return found
            if isinstance(exc, C.BackendUnavailableError):
                raise
            raise SubmissionError(f"Ray did not accept job {job.name!r}: {exc}") from None
        handle = self._handle(kwargs["submission_id"], job.key, job.job_dir, address)
        write_atomic(os.path.join(job.job_dir, JobFiles.HANDLE), handle.to_json())
        return handle

    def _handle(self, sid: str, key: str, job_dir: str, address: str) -> JobHandle:
        return JobHandle.create(self.backend, sid, key, job_dir, address=address)

    def find(self, key: str, job_dir: str) -> Optional[JobHandle]:
        """The job submitted with ``key`` on this executor's cluster (one ``get_job_info``), or None."""
        address = self.dashboard()
        if address is None:
            return None
        sid = R.submission_id(key)
        info = C.or_none(address, f"looking up job {sid}", lambda: C.client(address).get_job_info(sid))
        return None if info is None else self._handle(sid, key, job_dir, address)

    def status_calls(self, n: int) -> int:
        """One ``list_jobs`` per cluster for any number of jobs."""
        return 1 if n > 0 else 0

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        """One request per cluster address among ``handles`` (``list_jobs``; ``get_job_info`` for a single job); a
        job the cluster does not have is ``UNKNOWN``."""
        out: dict[JobHandle, JobStatus] = {}
        by_address: dict[str, list[JobHandle]] = {}
        for handle in handles:
            by_address.setdefault(self._address_of(handle), []).append(handle)
        for address, group in by_address.items():
            api = C.client(address)
            if len(group) == 1:
                # One job: its own record, not the cluster's whole job list (which grows with every job run there).
                sid = group[0].job_id
                one = C.or_none(address, f"reading job {sid}", lambda: api.get_job_info(sid))
                details = {sid: one} if one is not None else {}
            else:
                details = {getattr(j, "submission_id", None): j
                           for j in C.calling(address, "listing jobs", api.list_jobs)}
            for handle in group:
                out[handle] = _status(details.get(handle.job_id))
        return out

    def _address_of(self, handle: JobHandle) -> str:
        address = handle.extra("address") or self.dashboard()
        if not address:
            raise ExecutorError(f"job {handle.job_id}: its handle names no cluster address and the cluster "
                                f"{self.cluster.name!r} is not running")
        return address

    def _log_text(self, handle: JobHandle) -> Optional[str]:
        """The job's own output: Ray's driver log without the lines Ray adds to it (see :func:`own_output`)."""
        address = self._address_of(handle)
        text = C.or_none(address, f"reading the log of {handle.job_id}",
                         lambda: C.client(address).get_job_logs(handle.job_id))
        if text is None:
            return None
        entrypoint = None
        sent = self.fetch_file(handle, JobFiles.REQUEST) if handle.job_dir else None
        if sent:
            try:
                entrypoint = json.loads(sent)["entrypoint"]
            except (ValueError, KeyError, TypeError):
                entrypoint = None
        return own_output(text, handle.job_id, entrypoint)

    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        """Ray's driver log of the job from line ``offset``; with ``follow``, until the job is terminal and its log
        read to the end (one status and one log request per round). An unknown job yields nothing."""
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ExecutorError(f"logs: the offset of job {handle.job_id} must be a line number >= 0, got {offset!r}")
        return self._lines(handle, follow, offset)

    def _lines(self, handle: JobHandle, follow: bool, offset: int) -> Iterator[str]:
        while True:
            status = self.status(handle) if follow else None
            text = self._log_text(handle)
            if text is None:
                return
            lines = text.split("\n")
            partial = lines.pop()  # "" when the text ends with a newline
            if partial:
                if status is None:
                    status = self.status(handle)
                if status.is_terminal:
                    lines.append(partial)
            yield from lines[offset:]
            offset = max(offset, len(lines))
            if not follow or status is None or status.is_terminal or status.state is JobState.UNKNOWN:
                return
            time.sleep(FOLLOW_POLL_S)

    def cancel(self, handle: JobHandle) -> None:
        """``stop_job``: Ray signals the driver and returns; a finished or unknown job is left alone."""
        address = self._address_of(handle)
        C.or_none(address, f"stopping job {handle.job_id}", lambda: C.client(address).stop_job(handle.job_id))

    def log_location(self, handle: JobHandle) -> Optional[str]:
        return f"ray job logs {handle.job_id} --address {self._address_of(handle)}"

    def job_url(self, handle: JobHandle) -> Optional[str]:
        """The job's page on the Ray dashboard. Pure."""
        address = handle.extra("address") or self.dashboard()
        return f"{address}/#/jobs/{handle.job_id}" if address else None


# Ray's job manager logs into the driver log before the entrypoint starts ("Runtime env is setting up.").
_RAY_INFO = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\tINFO job_manager\.py:\d+ -- [^\n]*\n")


def own_output(text: str, submission_id: str, entrypoint: Optional[str]) -> str:
    """``text`` (Ray's driver log) without what Ray writes into it itself: its job manager's INFO lines at the
    start and the supervisor's ``Running entrypoint for job <id>: <entrypoint>`` line. Ray flushes that line from
    a buffer while the job already writes, so it can land anywhere, even inside a line the job has not ended; it is
    removed as the exact text Ray writes (the entrypoint as sent, from the job directory), so the job's lines and
    their offsets stay what the job printed."""
    while True:
        match = _RAY_INFO.match(text)
        if not match:
            break
        text = text[match.end():]
    if entrypoint is not None:
        return text.replace(f"Running entrypoint for job {submission_id}: {entrypoint}\n", "", 1)
    return re.sub(rf"Running entrypoint for job {re.escape(submission_id)}: [^\n]*\n", "", text, count=1)


def _status(details: Any) -> JobStatus:
    if details is None:
        return JobStatus(JobState.UNKNOWN, "", "the Ray cluster has no job with this submission id")
    native = str(getattr(details.status, "value", details.status))
    state = state_of(native)
    code = getattr(details, "driver_exit_code", None)
    if code is None and state is JobState.SUCCEEDED:
        code = 0
    return JobStatus(state, native, details.message or "", code)
