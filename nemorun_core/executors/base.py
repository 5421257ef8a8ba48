"""The job contract that every executor implements.

The experiment layer, ``run.run`` and both orchestrator packages talk to backends only through this module:

* :class:`JobState` - the six states, with ``is_terminal``; each backend maps its native states with one dict.
* :class:`JobStatus` - a state plus the backend's native state, a message and the exit code when known.
* :class:`JobHandle` - a frozen, versioned, JSON-serializable value that is all one needs (with the executor's
  serialized config) to find a job again from another process, after a crash, or from an orchestrator.
* :class:`Job` - what is submitted: a name, a stable key, the command to run and where its files live.
* :class:`SubmitRequest` - the pure result of ``dryrun``: exactly what ``submit`` would send.
* :class:`Capability` - the optional abilities an executor declares; the core refuses what needs a missing one.
* :class:`Executor` - the contract: every method and attribute the core and the orchestrators use on an executor,
  with its semantics. Nothing else is called on an executor (no attribute probes), so a backend that implements
  this class, declares its capabilities and passes ``tests/contract`` works everywhere.
"""

from __future__ import annotations

import abc
import contextvars
import dataclasses
import enum
import json
import os
import signal
import threading
import time
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from nemorun_core.credentials import CredentialSlot
from nemorun_core.errors import ExecutorError
from nemorun_core.executors.fields import check_env_vars  # noqa: F401 - its home before fields.py
from nemorun_core.executors.fields import CheckedInit
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.executors.outage import Outage
from nemorun_core.packaging.base import packages_code

HANDLE_VERSION = 1

# Set by the experiment scheduler while it submits one experiment's jobs: executors may do per-batch work once
# (package and upload code) instead of once per job. None outside a batch.
SUBMISSION_BATCH: contextvars.ContextVar[str | None] = contextvars.ContextVar("nemorun_submission_batch",
                                                                              default=None)


class Capability(str, enum.Enum):
    """An optional ability of an executor, declared in its ``capabilities``.

    What the core needs of a capability it asks with :meth:`Executor.supports` or :meth:`Executor.require`; a
    backend without it gets a clear refusal (or the core's fallback, where it has one), never a silent wrong result.
    """

    LOGS = "logs"                #: ``logs`` gives the job's output
    CANCEL = "cancel"            #: ``cancel`` stops a running job
    DETACH = "detach"            #: jobs outlive the process that submitted them
    STATUS_MANY = "status_many"  #: ``status_many`` answers for many jobs in one backend call
    WAIT = "wait"                #: ``wait_any`` is woken by the backend (no polling delay)
    FIND = "find"                #: ``find`` re-attaches to a job by its key: retries and restarts never resubmit
    FETCH_FILES = "fetch_files"  #: ``fetch_file`` reads the job's files (its result, metrics, status)
    DEPENDENCIES = "dependencies"  #: ``Job.depends_on`` is enforced by the backend (Slurm ``--dependency``)
    REQUEUE = "requeue"          #: the backend may requeue a job by itself (Slurm ``--requeue``)

    def __str__(self) -> str:
        return self.value


class CapabilityError(ExecutorError):
    """The executor lacks a capability that the operation needs."""


class JobState(str, enum.Enum):
    """The state of a job, common to every backend."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job's state.

    Attributes:
        state: the common state.
        native: the backend's own state string (``"COMPLETED"``, ``"exited"``, ...), kept for people and debugging.
        message: why the job is in this state, when the backend says (``"OOM killed"``, ``"DependencyNeverSatisfied"``).
        exit_code: the exit status when the job has ended and the backend knows it.
    """

    state: JobState
    native: str = ""
    message: str = ""
    exit_code: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "native": self.native, "message": self.message, "exit_code": self.exit_code}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobStatus":
        return cls(JobState(data["state"]), data.get("native", ""), data.get("message", ""), data.get("exit_code"))


@dataclasses.dataclass(frozen=True)
class JobHandle:
    """Everything needed to find a submitted job again.

    A handle holds no process-local state: serialize it with :meth:`to_json`, store it anywhere (the experiment
    store, XCom, a Prefect result), and :meth:`from_json` it in another process to ask the same executor about the
    job. ``extras`` holds the few backend strings needed to reach the job (host, remote job dir, namespace).

    Attributes:
        backend: the executor's backend name (``"local"``, ``"slurm"``, ...).
        job_id: the backend's id for the job (a pid, a Slurm job id, a container id).
        key: the job's stable key (experiment id / task name / attempt), also written into the backend's metadata.
        job_dir: where the job's files (logs, status, result) live, on the machine that runs it.
        extras: backend-specific strings, sorted for a stable JSON form.
    """

    backend: str
    job_id: str
    key: str
    job_dir: str = ""
    extras: tuple[tuple[str, str], ...] = ()
    version: int = HANDLE_VERSION

    @classmethod
    def create(cls, backend: str, job_id: str, key: str, job_dir: str = "", **extras: str) -> "JobHandle":
        return cls(backend, str(job_id), key, str(job_dir), tuple(sorted((k, str(v)) for k, v in extras.items())))

    def extra(self, name: str, default: str | None = None) -> str | None:
        return dict(self.extras).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "backend": self.backend,
            "job_id": self.job_id,
            "key": self.key,
            "job_dir": self.job_dir,
            "extras": dict(self.extras),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobHandle":
        """Read a handle written by :meth:`to_dict`, checking every field's type.

        A handle comes back from files and orchestrator state that may be damaged, so a wrong shape is one
        ExecutorError naming the field, never a raw TypeError/AttributeError deep inside a backend call.

        Raises:
            ExecutorError: not a mapping, a field missing or of the wrong type, or a version newer than this nemorun.
        """
        if not isinstance(data, Mapping):
            raise ExecutorError(f"a job handle must be a JSON object, got {_shown(data)}")
        version = data.get("version", 0)
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ExecutorError(f"job handle field 'version' must be an integer, got {_shown(version)}")
        if version > HANDLE_VERSION:
            raise ExecutorError(
                f"job handle version {version} is newer than this nemorun understands ({HANDLE_VERSION}); "
                "upgrade nemorun where the handle is read"
            )
        fields = {name: _handle_field(data, name) for name in ("backend", "job_id", "key", "job_dir")}
        extras = data.get("extras", {})
        if not isinstance(extras, Mapping):
            raise ExecutorError(f"job handle field 'extras' must be an object of strings, got {_shown(extras)}")
        for name, value in extras.items():
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ExecutorError(f"job handle field 'extras.{name}' must be a string, got {_shown(value)}")
        return cls.create(fields["backend"], fields["job_id"], fields["key"], fields["job_dir"], **extras)

    @classmethod
    def from_json(cls, text: str) -> "JobHandle":
        """Read a handle written by :meth:`to_json`. Raises ExecutorError for text that is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExecutorError(f"a job handle must be JSON; invalid at line {exc.lineno}, column {exc.colno}: "
                                f"{exc.msg}") from None
        except (TypeError, UnicodeDecodeError):
            raise ExecutorError(f"a job handle must be JSON text, got {_shown(text)}") from None
        return cls.from_dict(data)


def _shown(value: Any) -> str:
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 80 else text[:77] + "..."


def _handle_field(data: Mapping[str, Any], name: str) -> str:
    """A handle's string field; ``job_dir`` may be absent, and a job id may be a number (a pid)."""
    if name not in data:
        if name == "job_dir":
            return ""
        present = ", ".join(map(str, data)) or "none"
        raise ExecutorError(f"job handle is missing the field {name!r} (it has: {present})")
    value = data[name]
    if isinstance(value, str) and (value or name in ("key", "job_dir")):
        return value
    if name == "job_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    must = "a string" if name in ("key", "job_dir") else "a non-empty string"
    raise ExecutorError(f"job handle field {name!r} must be {must}, got {_shown(value)}")


@dataclasses.dataclass(frozen=True)
class SubmitRequest:
    """What ``submit`` sends for one job: ``dryrun`` returns it, and ``submit`` sends this very value.

    Executors build it in two steps, so the two cannot drift: a ``prepare(job, dry=...)`` step makes every
    decision that needs I/O (packaging and uploading code, the remote home, building an image, checking the file
    system) and returns them as a small frozen plan; in dry mode it computes the same decisions without side
    effects. Then one pure ``render(job, plan) -> SubmitRequest`` makes the request, and ``dryrun`` is
    ``render(job, prepare(job, dry=True))`` while ``submit`` sends the ``text`` of ``render(job, prepare(job))``
    (no second rendering path) and keeps it in the job directory as ``sent_as``, where ``fetch_file`` reads it.

    Attributes:
        backend: the executor's backend name.
        text: the exact payload in its native form (a launch script, an sbatch script, a container spec).
        files: other files the job directory will hold, by relative name (the serialized task, for instance).
        meta: structured facts about the request, for tests and orchestrators (command, env var names, resources).
        sent_as: the name (in :class:`~nemorun_core.jobfiles.JobFiles` or the backend's own) under which submission
            keeps ``text`` in the job directory, so ``fetch_file(handle, sent_as)`` gives the request actually sent;
            "" when the backend keeps none.
        placeholders: values only submission can know (a package's content digest, a built image's tag, a remote
            home directory), which a dry plan shows as these tokens: token -> what submission puts there. Empty
            when ``text`` is exactly what would be sent.
    """

    backend: str
    text: str
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sent_as: str = ""
    placeholders: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass
class Job:
    """One unit of work handed to an executor.

    Attributes:
        name: the task's name within its experiment (also used in file names; validated).
        key: the stable key, ``"<experiment id>/<task name>/<attempt>"``; the backend records it so a second submit
            of the same key finds the first job instead of starting another.
        command: the argv that runs one process of the task (the launcher may wrap it).
        job_dir: where the job's files live on the machine that runs it.
        env: extra environment variables for the task (secrets included: executors pass them to the process but never
            write them into files they render).
        files: files to write into the job dir before starting (relative name -> text), e.g. the serialized task.
        launcher: optional launcher (Torchrun, ...) that turns ``command`` into a distributed command.
        cwd: working directory for the task, if not the executor's default.
        depends_on: jobs (of the same executor kind and cluster) that must finish first, for executors with the
            ``dependencies`` capability (Slurm: ``--dependency``); the experiment layer waits itself otherwise.
    """

    name: str
    key: str
    command: list[str]
    job_dir: str
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    launcher: Any = None
    cwd: str | None = None
    depends_on: list[JobHandle] = dataclasses.field(default_factory=list)

    @property
    def job_key(self) -> JobKey:
        """The key's parts (scope, task, attempt); ExecutorError for a key not of the form ``scope/task/attempt``."""
        return JobKey.parse(self.key)


class Executor(abc.ABC, metaclass=CheckedInit):
    """Base class of executors: where and how a job runs; the whole job contract.

    Subclasses are dataclasses whose fields are the user's settings (so they serialize like any config) and implement
    the abstract methods below (a missing one fails when the executor is created, not mid-experiment). They declare
    their optional abilities in ``capabilities`` and the credentials they take in ``credential_slots``. Every other
    method has a safe default; the core and both orchestrators call nothing that is not declared here.

    Semantics common to every method: a handle is only ever one this executor type returned (possibly in another
    process, after a JSON round trip); an unknown job (its record expired, never existed) is ``JobState.UNKNOWN``,
    never an exception; a backend that cannot be reached raises ``BackendUnavailableError`` (retried by the core).
    """

    #: The backend's name, as in the registry and in every handle this executor returns.
    backend: ClassVar[str] = ""
    #: What this executor can do beyond the required contract (see :class:`Capability`).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: The credentials it takes, by slot (see :mod:`nemorun_core.credentials`).
    credential_slots: ClassVar[tuple[CredentialSlot, ...]] = ()

    #: A launcher (``run.Torchrun()``...) that wraps each job's command, or None. Subclasses that support launchers
    #: declare it as a dataclass field; the core reads it when it makes a job.
    launcher: Any = None
    #: The directory a task's relative paths (a ``run.Script`` file) are read from on the machine that submits,
    #: or None for the submitting process's working directory.
    working_dir: str | None = None

    # -- the required contract ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def dryrun(self, job: Job) -> SubmitRequest:
        """Render exactly what :meth:`submit` would send. Pure: no backend call, no file written, no clock, no
        randomness (reading local files, e.g. to know which import directories exist, is allowed). Raises
        ConfigError for a setting that :meth:`submit` would refuse.

        Implemented as ``render(job, prepare(job, dry=True))`` (see :class:`SubmitRequest`): the same render as
        :meth:`submit`, given the same decisions made without side effects; what only submission can know is a
        declared placeholder (``SubmitRequest.placeholders``)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> JobHandle:
        """Start the job and return its handle. Blocks only until the backend accepted the job.

        Sends the text of ``render(job, prepare(job))``, the request :meth:`dryrun` shows, and keeps it in the job
        directory under ``SubmitRequest.sent_as``.

        Idempotent by ``job.key`` where the executor has :attr:`Capability.FIND`: if a job with that key already
        exists it is returned. Raises :class:`~nemorun_core.errors.SubmissionError` if nothing could be started
        (and leaves nothing behind).
        """

    @abc.abstractmethod
    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        """Status of every handle (each key present in the result); one backend call where the executor has
        :attr:`Capability.STATUS_MANY`. Non-blocking beyond that call; an unknown job is ``UNKNOWN``.

        The core only passes handles of executors with equal :meth:`batch_key` in one call."""

    @abc.abstractmethod
    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        """Yield the job's log lines starting at line ``offset`` (0-based), without trailing newlines.

        Without ``follow``: the lines written so far (a partial last line is held back until it ends or the job
        does). With ``follow`` the iterator keeps yielding new lines until the job is terminal and its log is
        drained (blocking). An unknown job yields nothing.
        """

    @abc.abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Ask the backend to stop the job. Idempotent and non-blocking: it returns once the request is made, not
        when the job has stopped; cancelling a finished or unknown job does nothing."""

    # -- declared with defaults -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Reject bad settings, naming the field and the fix (``ConfigError``), before anything is submitted.
        Pure and idempotent; called when a task is added and again at submission. The default accepts all."""

    def status_calls(self, n: int) -> int:
        """How many backend calls one :meth:`status_many` of ``n`` running jobs of this executor costs: the claim
        that ``tests/contract`` measures (HTTP requests to an engine, remote commands through a tunnel) and that a
        poller can budget. Pure. A backend call is a request to a service; reading local files and ``/proc`` is not
        one. The default claims one call for all jobs with :attr:`Capability.STATUS_MANY`, else one per job."""
        if n <= 0:
            return 0
        return 1 if self.supports(Capability.STATUS_MANY) else n

    def batch_key(self) -> Any:
        """A hashable value equal for executors that one :meth:`status_many` / :meth:`poll_many` call may serve
        together (the same engine, the same cluster login). Pure.

        The default is this very object, so two executors are never batched unless a backend says they reach
        the same endpoint; backends override it with ``(backend, endpoint)``.
        """
        return (self.backend, id(self))

    def warm_up(self) -> None:
        """Prepare, in the background, for submissions soon to come (start a fork server, open a connection).
        Non-blocking and idempotent; a failure here is only reported when a submission fails. Default: nothing."""

    def status(self, handle: JobHandle) -> JobStatus:
        """Return the job's current status. Non-blocking beyond one backend call; an unknown job is ``UNKNOWN``."""
        return self.status_many([handle])[handle]

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        """Status and new log lines (from each handle's line offset) of many jobs: what a poller needs per round.

        The status is read before the log, so a terminal job's lines are complete unless the executor capped the round
        (a backend may return at most so many lines per round: poll again from the new offset). The default makes one
        :meth:`status_many` call and one :meth:`logs` call per job; executors that reach their jobs remotely override
        it to answer in a single backend round trip.
        """
        statuses = self.status_many(list(offsets))
        return {h: (statuses[h], list(self.logs(h, offset=off))) for h, off in offsets.items()}

    def find(self, key: str, job_dir: str) -> JobHandle | None:
        """Return the handle of an existing job submitted with ``key`` (whatever its state), or None when there is
        none. Used to re-attach, never to resubmit; idempotent, one backend call.

        Only executors with :attr:`Capability.FIND` implement it; the default raises :class:`CapabilityError`
        (an orchestrator's retry must not resubmit a job it cannot find).
        """
        raise CapabilityError(self._lacks(Capability.FIND, "cannot find a job by its key, so a retry or a restart "
                                          "could not re-attach to a job already running"))

    def wait_any(self, handles: Sequence[JobHandle], timeout: float) -> None:
        """Block until one of ``handles`` may have changed state or ``timeout`` seconds pass.

        The default sleeps; executors that can be woken by the backend (a pidfd, a watch) override it and declare
        :attr:`Capability.WAIT`, so that waiting costs no polling delay.
        """
        time.sleep(timeout)

    def log_location(self, handle: JobHandle) -> str | None:
        """Where a person finds the job's log (a path, or a command), for messages; None when the backend has none."""
        return None

    def job_url(self, handle: JobHandle) -> str | None:
        """A web page of the backend's own UI for the job (a Ray dashboard, a cluster portal), for links in the
        orchestrators' UIs; None (the default) when the backend has none. Pure: no backend call."""
        return None

    def log_tail(self, handle: JobHandle, lines: int = 20) -> list[str]:
        """The last ``lines`` lines of the job's log, for failure messages. Blocking (one read); [] when there is
        no log. The default reads the whole log through :meth:`logs`; backends override it to read only the end."""
        if not self.supports(Capability.LOGS):
            return []
        tail: list[str] = []
        for line in self.logs(handle):
            tail.append(line)
            if len(tail) > lines:
                del tail[0]
        return tail

    def fetch_file(self, handle: JobHandle, name: str) -> bytes | None:
        """Return the bytes of file ``name`` (a name in :class:`~nemorun_core.jobfiles.JobFiles`) from the job's
        directory, or None if it does not exist. Blocking, one read.

        Only executors with :attr:`Capability.FETCH_FILES` implement it; the default raises
        :class:`CapabilityError` (a task's return value could not be read back).
        """
        raise CapabilityError(self._lacks(Capability.FETCH_FILES, "cannot read a job's files, so a task's return "
                                          "value, metrics and final status cannot be read back"))

    def with_credentials(self, credentials: Mapping[str, Any]) -> "Executor":
        """A copy of this executor with the given credentials (slot name -> credential value) in their fields.

        Orchestrators call it with what they resolved from their own credential stores. A slot that this
        executor does not declare is refused naming the slots it has.

        Raises:
            ConfigError: an unknown slot, or a credential of another kind than the slot's.
        """
        from nemorun_core.credentials import apply_credentials

        return apply_credentials(self, credentials)

    # -- helpers shared by executors --------------------------------------------------------------------------------
    def supports(self, capability: Capability | str) -> bool:
        """Whether this executor declares ``capability`` (a :class:`Capability` or its value)."""
        try:
            wanted = Capability(capability)
        except ValueError:
            known = ", ".join(c.value for c in Capability)
            raise ExecutorError(f"{capability!r} is not a capability; the capabilities are: {known}") from None
        return wanted in self.capabilities

    def require(self, capability: Capability, why: str) -> None:
        """Raise :class:`CapabilityError` unless this executor has ``capability``; ``why`` says what needs it."""
        if not self.supports(capability):
            raise CapabilityError(self._lacks(capability, why))

    def _lacks(self, capability: Capability, consequence: str) -> str:
        name = type(self).__name__
        return (f"{name} (backend {self.backend!r}) does not have the {capability.value!r} capability: it "
                f"{consequence}; use an executor that declares it (see docs/backends.md)")

    @property
    def nodes_and_tasks(self) -> tuple[int, int]:
        """(nodes, processes per node) this executor starts for one job. Default: one process on one node;
        multi-process backends override it."""
        return 1, 1

    # -- NeMo Run's methods, for code written against it (the core uses nodes_and_tasks) ----------------------------
    def nnodes(self) -> int:
        """The nodes of one job (``nodes_and_tasks[0]``)."""
        return self.nodes_and_tasks[0]

    def nproc_per_node(self) -> int:
        """The processes per node of one job (``nodes_and_tasks[1]``; with a launcher, its workers per node)."""
        return self.nodes_and_tasks[1]

    def info(self) -> str:
        """A one-line description of where this executor runs jobs (executors name their host or cluster)."""
        return type(self).__qualname__

    def clone(self) -> "Executor":
        """A deep copy: plugins mutate the copy attached to one task, never the user's object."""
        import copy

        return copy.deepcopy(self)


class LocalJobFiles:
    """For executors whose job directories are on this machine (local processes, local containers)."""

    def fetch_file(self, handle: JobHandle, name: str) -> bytes | None:
        try:
            with open(os.path.join(handle.job_dir, name), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            return None


# The token for "the executor's Python interpreter" in a Job's command: the experiment layer writes it, and each
# executor puts its own interpreter there (``resolve_argv``), the submitting one, the image's or the cluster's.
PYTHON = "python"
RUNNER_MODULE = "nemorun_core.runner"


def runner_command(job_dir: str) -> list[str]:
    """The command of a Python task: the runner, run by the executor's interpreter, on the job directory."""
    return [PYTHON, "-m", RUNNER_MODULE, job_dir]


def resolve_argv(command: Sequence[str], python: str) -> list[str]:
    """``command`` with each :data:`PYTHON` token replaced by the interpreter ``python``."""
    return [python if arg == PYTHON else arg for arg in command]


def follow_log(executor: Executor, handle: JobHandle, emit: Callable[[str], Any], *, offset: int = 0,
               poll: float = 1.0, stop: Callable[[], bool] | None = None,
               outage_timeout: float | None = None, secrets: Sequence[str] = ()) -> tuple[JobStatus, int]:
    """Hand each new log line of a job to ``emit`` until the job is terminal; return its last status and the offset.

    Every line is redacted before ``emit`` sees it: the secret values of ``executor`` (secret-named or
    ``run.Secret`` environment values, key material) and the extra ``secrets`` the caller knows of (for example
    values its overrides brought in) are replaced by ``<redacted>``, so an orchestrator's run log never shows them.

    What an orchestrator does while it waits on a job in its worker: one :meth:`Executor.poll_many` round at a time
    (status, then the lines from ``offset``), :meth:`Executor.wait_any` between rounds (woken early by backends that
    can), and, once the job is terminal, whatever a capped round left of its log. ``stop`` is asked between rounds:
    when it says so, the status returned is the last one read (not terminal) and the job is left running.

    A backend that cannot be reached (``BackendUnavailableError``: a cut SSH session, a restarting sshd) is retried
    with backoff for up to ``outage_timeout`` seconds (default ``$NEMORUN_OUTAGE_TIMEOUT`` or 300): the job keeps
    running meanwhile, and every line still arrives once, in order, because each round starts at the offset of the
    last line emitted.

    Raises:
        OutageError: the backend stayed unreachable past the limit; the message names the job and how to re-attach.
    """
    outage = Outage(outage_timeout, describe=lambda: f"{handle.backend} job {handle.job_id} (key {handle.key})",
                    reattach=lambda: f"`follow_log(executor, JobHandle.from_json(<its handle>), emit, "
                                     f"offset={offset})`")

    known = sorted({*executor_secrets(executor), *secrets}, key=len, reverse=True)

    def show(line: str) -> None:
        from nemorun_core.secrets import redact_text

        emit(redact_text(line, known) if known else line)

    def drain() -> None:
        nonlocal offset
        for line in executor.logs(handle, offset=offset):
            show(line)
            offset += 1

    while True:
        status, lines = outage.call(lambda: executor.poll_many({handle: offset})[handle])
        for line in lines:
            show(line)
        offset += len(lines)
        if status.is_terminal:
            outage.call(drain)
            return status, offset
        if stop is not None and stop():
            return status, offset
        outage.call(lambda: executor.wait_any([handle], poll))


def executor_secrets(executor: Executor) -> list[str]:
    """The secret values an executor holds (what :func:`nemorun_core.secrets.redact` would replace in its config),
    longest first: for scrubbing job output and error text."""
    from nemorun_core.config import serialize
    from nemorun_core.secrets import secret_values

    return secret_values(serialize.encode(executor, payload=True))


# Packages built in the current submission batch (see SUBMISSION_BATCH), so the jobs of one experiment package the
# code once whatever their backend. Only the latest batch is kept.
_BATCH_PACKAGES: dict[tuple, Any] = {}
_BATCH_PACKAGES_LOCK = threading.Lock()


def package_code(packager: Any, output_dir: str, base_dir: str | None = None) -> Any:
    """Package the code under ``base_dir`` (default: the working directory) into ``output_dir``, once per batch.

    Inside a submission batch (``SUBMISSION_BATCH`` set) the same packager, base and output directories give the
    package built first, whichever executor asks; outside one, every call packages (the code may have changed).
    Blocking; raises whatever the packager raises (``PackagingError`` with the fix). None for the pass-through
    ``run.Packager()``, which packages nothing (callers check ``packaging.base.packages_code`` first).
    """
    if not packages_code(packager):
        return None
    batch = SUBMISSION_BATCH.get()
    base_dir = base_dir or os.getcwd()
    key = (batch, repr(packager), base_dir, output_dir)
    if batch is not None:
        with _BATCH_PACKAGES_LOCK:
            package = _BATCH_PACKAGES.get(key)
        if package is not None:
            return package
    os.makedirs(output_dir, exist_ok=True)
    package = packager.package(base_dir, output_dir)
    if batch is not None:
        with _BATCH_PACKAGES_LOCK:
            for stale in [k for k in _BATCH_PACKAGES if k[0] != batch]:
                del _BATCH_PACKAGES[stale]
            _BATCH_PACKAGES[key] = package
    return package


def describe_exit(code: int, not_found_hint: str = "see the log") -> str:
    """``exited with status 137 (killed by SIGKILL)``; 127 gets the caller's hint (a missing command or directory)."""
    if code > 128:
        try:
            return f"exited with status {code} (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            pass
    if code == 127:
        return f"exited with status 127 ({not_found_hint})"
    return f"exited with status {code}"
