"""What both orchestrators (``nemorun_prefect``, ``nemorun_airflow``) do with a job, written once.

An orchestrator task runs one nemorun job exactly once, however often the orchestrator retries, restarts or clears
it. The pieces it needs, and nothing Prefect- or Airflow-specific:

* the job directory scheme: ``<home>/<orchestrator>/<scope>/<task>[/attempt-N]`` for a :class:`JobKey`
  (:func:`job_dir`, :func:`task_dir`, :func:`scope_dir`); each orchestrator makes its own scope (``prefect-<flow
  run id>``, ``airflow-<dag>-<run>-<hash>``);
* attach-or-submit by key (:func:`attach_or_submit`, :func:`find_attempt`): re-attach to a job that runs or
  succeeded, submit a fresh attempt only after a failure, and record the job before submitting it, so that a crash
  between the backend accepting the job and the record being written is still found by key;
* cancel-and-wait (:func:`cancel_and_wait`, :func:`cancel_all`): cancel, then wait up to a grace for a terminal
  state, and say what happened;
* result summaries (:func:`job_summary`): what an orchestrator returns or pushes for a job (state, exit code, job id,
  key, log location, duration, value or where it is), the metrics a job logged (:func:`job_metrics`), and which
  job log lines look like error output (:class:`ErrorLines`, for their log level);
* scrubbing (:func:`known_secrets`, :func:`scrub`): secret values out of error text and summaries. Job log lines
  are redacted by :func:`nemorun_core.executors.base.follow_log` itself.

Only what :class:`~nemorun_core.executors.base.Executor` declares is called on an executor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from nemorun_core.errors import JobFailedError
from nemorun_core.executors.base import Capability, Executor, JobHandle, JobState, JobStatus
from nemorun_core.executors.jobkey import JobKey
from nemorun_core.experiment.tasks import TaskSpec, check_task, make_job
from nemorun_core.jobfiles import JobFiles

# -- the job directory scheme --------------------------------------------------------------------------------------


def scope_dir(home: str, orchestrator: str, scope: str) -> str:
    """``<home>/<orchestrator>/<scope>``: the directory of one orchestrator run's jobs (a flow run, a DAG run)."""
    return os.path.join(home, orchestrator, JobKey(scope, "x").scope)


def task_dir(home: str, orchestrator: str, key: JobKey | str) -> str:
    """``<home>/<orchestrator>/<scope>/<task>``: where every attempt of the key's task keeps its files."""
    key = _key(key)
    return os.path.join(home, orchestrator, key.scope, key.task)


def job_dir(home: str, orchestrator: str, key: JobKey | str) -> str:
    """``<home>/<orchestrator>/<scope>/<task>[/attempt-N]``: the job directory of ``key``.

    Attempt 0 keeps the task's plain directory; later attempts sit beside its files (``attempt-1``...), so a retry
    never overwrites the logs of the job it replaces.
    """
    key = _key(key)
    base = task_dir(home, orchestrator, key)
    return os.path.join(base, key.attempt_dir) if key.attempt_dir else base


def _key(key: JobKey | str) -> JobKey:
    return key if isinstance(key, JobKey) else JobKey.parse(key)


# -- attach or submit ----------------------------------------------------------------------------------------------


def reusable(status: JobStatus) -> bool:
    """Whether a job found again should be followed rather than replaced: it is pending, running or succeeded.

    A failed or cancelled job is replaced by a fresh attempt (what a retry is for). So is an UNKNOWN one: the backend
    no longer knows it (its record expired, its files were removed), and following it would never end.
    """
    return status.state is JobState.SUCCEEDED or not (status.is_terminal or status.state is JobState.UNKNOWN)


def find_attempt(executor: Executor, key: JobKey, dir_of: Callable[[JobKey], str]
                 ) -> tuple[JobKey, JobHandle | None, JobStatus | None]:
    """Find the job to follow among the attempts of ``key``'s task, from ``key.attempt`` on.

    Attempts are looked up with ``executor.find(str(k), dir_of(k))`` until one is :func:`reusable` (returned with
    its handle and status) or absent: ``(k, None, None)``, the attempt to submit next. So a retry after a crash
    re-attaches to a job that runs or succeeded, and resubmits only after a failure. One ``find`` and one
    ``status`` call per attempt that exists.

    Raises:
        CapabilityError: the executor cannot find jobs by key (:attr:`Capability.FIND`).
    """
    require_find(executor)
    while True:
        handle = executor.find(str(key), dir_of(key))
        if handle is None:
            return key, None, None
        status = executor.status(handle)
        if reusable(status):
            return key, handle, status
        key = key.next_attempt()


def require_find(executor: Executor) -> None:
    """Refuse an executor that cannot find a job by its key: an orchestrator's retry could launch a second job."""
    executor.require(Capability.FIND, "cannot find a job by its key, so an orchestrator's retry or restart could "
                                      "not re-attach to a job already running and would launch a second one")


@dataclasses.dataclass(frozen=True)
class Attached:
    """The job an orchestrator task follows, from :func:`attach_or_submit`.

    Attributes:
        key: the job's key.
        handle: its handle.
        status: its status when it already existed; None for a job submitted by this call.
        reason: why this job: ``"submitted"``, ``"remembered"`` (the orchestrator's own state named it) or
            ``"found"`` (found by key: a crash between submitting and recording).
    """

    key: JobKey
    handle: JobHandle
    status: JobStatus | None
    reason: str

    @property
    def submitted(self) -> bool:
        return self.status is None


#: ``record(key, handle)``: keep the job in the orchestrator's state; handle None means "about to be submitted".
Recorder = Callable[[JobKey, "JobHandle | None"], None]


def attach_or_submit(spec: TaskSpec, key: JobKey, dir_of: Callable[[JobKey], str], *,
                     remembered: JobHandle | None = None, record: Recorder | None = None,
                     log: Callable[[str], Any] | None = None) -> Attached:
    """Follow the job of ``key``'s task that can still be used, or submit a new attempt: exactly one job per task.

    1. ``remembered`` (the handle the orchestrator kept, e.g. in Airflow's task state store) is asked for its
       status: pending, running or succeeded, it is followed; otherwise the search starts at the next attempt.
    2. :func:`find_attempt` asks the backend by key, which covers what the orchestrator's state cannot know (a
       process that died between submitting and recording, an orchestrator that keeps no state).
    3. Nothing usable: the task is checked (:func:`~nemorun_core.experiment.tasks.check_task`), the job is recorded (``record(key, None)``) BEFORE it is submitted, so a crash right after
       the backend accepted it leaves a record by which the next try or a cancellation finds it; then it is
       submitted into ``dir_of(key)`` and recorded with its handle.

    Blocking: a few backend calls, and the submission itself (until the backend accepted the job).

    Args:
        spec: the task and its executor (already checked; references resolved).
        key: the key of the task's first attempt to consider (usually attempt 0).
        dir_of: the job directory of a key (:func:`job_dir` with the orchestrator's home and name).
        remembered: the handle of the job the orchestrator's own state names, if any.
        record: called as described above; exceptions propagate (a job that cannot be recorded is not submitted).
        log: gets one line per decision (re-attached, resubmitting after a failure, submitted).

    Raises:
        CapabilityError: the executor lacks :attr:`Capability.FIND` (a retry could launch a second job).
        ConfigError: the task or its executor failed validation (nothing submitted).
        SubmissionError: the backend refused the job.
    """
    executor = spec.executor
    require_find(executor)
    say = log or (lambda text: None)
    if remembered is not None:
        status = executor.status(remembered)
        if reusable(status):
            say(f"re-attaching to job {remembered.key} ({remembered.backend} {remembered.job_id}): "
                f"{status.state.value}")
            return Attached(JobKey.parse(remembered.key), remembered, status, "remembered")
        last = JobKey.parse(remembered.key)
        key = last.next_attempt() if last.attempt >= key.attempt else key
        say(f"job {remembered.key} ended {status.state.value}"
            f"{f' ({status.message})' if status.message else ''}: looking for attempt {key.attempt}")
    key, found, status = find_attempt(executor, key, dir_of)
    if found is not None:
        say(f"re-attaching to job {found.key} ({found.backend} {found.job_id}), found by its key: "
            f"{status.state.value}")
        if record is not None:
            record(key, found)
        return Attached(key, found, status, "found")
    if key.attempt:
        say(f"the earlier job of task {key.task!r} failed or was cancelled: submitting attempt {key.attempt}")
    check_task(spec)
    directory = dir_of(key)
    os.makedirs(directory, exist_ok=True)
    if record is not None:
        record(key, None)
    handle = executor.submit(make_job(spec, str(key), directory))
    if record is not None:
        record(key, handle)
    say(f"submitted job {key} ({handle.backend} {handle.job_id}), files in {handle.job_dir}")
    return Attached(key, handle, None, "submitted")


# -- cancel and wait -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CancelReport:
    """What :func:`cancel_and_wait` did to one job.

    Attributes:
        handle: the job.
        status: its last status read (``UNKNOWN`` with ``error`` set when the backend could not be reached).
        requested: whether a cancel was sent (False for a job that had already ended).
        waited: seconds spent waiting for it to end.
        error: why the job could not be cancelled or read, if so.
    """

    handle: JobHandle
    status: JobStatus
    requested: bool
    waited: float
    error: str | None = None

    @property
    def state(self) -> JobState:
        return self.status.state

    @property
    def stopped(self) -> bool:
        """Whether the job is known to have ended."""
        return self.status.is_terminal

    def describe(self) -> str:
        what = f"job {self.handle.key} ({self.handle.backend} {self.handle.job_id})"
        if self.error:
            return f"{what}: could not be cancelled: {self.error}"
        if not self.requested:
            return f"{what}: had already ended {self.state.value}"
        if self.stopped:
            return f"{what}: cancelled, now {self.state.value} (after {self.waited:.1f} s)"
        return f"{what}: cancel requested, still {self.state.value} after {self.waited:.1f} s"


def cancel_and_wait(executor: Executor, handle: JobHandle, grace: float = 60.0) -> CancelReport:
    """Cancel the job and wait up to ``grace`` seconds for a terminal state. Idempotent: a job that has ended keeps
    its state (no cancel is sent). Backend errors are reported in the result, never raised."""
    return cancel_all([(executor, handle)], grace)[0]


def cancel_all(jobs: Sequence[tuple[Executor, JobHandle]], grace: float = 60.0, *,
               poll: float = 0.2) -> list[CancelReport]:
    """Cancel every job first, then wait for them together, up to ``grace`` seconds in all; one report per job,
    in order. A job that cannot be reached does not keep the others running: its report carries the error."""
    started = time.monotonic()
    deadline = started + grace
    live: list[tuple[int, Executor, JobHandle, bool]] = []
    reports: dict[int, CancelReport] = {}
    for i, (executor, handle) in enumerate(jobs):
        try:
            status = executor.status(handle)
            requested = not status.is_terminal
            if requested:
                executor.cancel(handle)
            live.append((i, executor, handle, requested))
        except Exception as exc:  # one unreachable backend must not keep the other jobs running
            reports[i] = CancelReport(handle, JobStatus(JobState.UNKNOWN), False, 0.0, _error(exc))
    for i, executor, handle, requested in live:
        try:
            status = executor.status(handle)
            while not status.is_terminal and time.monotonic() < deadline:
                executor.wait_any([handle], poll)
                status = executor.status(handle)
            reports[i] = CancelReport(handle, status, requested, time.monotonic() - started)
        except Exception as exc:
            reports[i] = CancelReport(handle, JobStatus(JobState.UNKNOWN), requested, time.monotonic() - started,
                                      _error(exc))
    return [reports[i] for i in range(len(jobs))]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- result summaries ----------------------------------------------------------------------------------------------


def job_summary(name: str, kind: str, executor: Executor, handle: JobHandle, status: JobStatus, *,
                value_limit: int | None = None, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """What an orchestrator returns or pushes for one job, as plain JSON data with secrets scrubbed.

    Keys: ``name``, ``key``, ``backend``, ``job_id``, ``handle`` (:meth:`JobHandle.to_dict`), ``state``,
    ``exit_code``, ``log`` (the log's location), ``duration`` (seconds the task ran, from ``status.json``; None when
    unknown), ``message``; and, when ``value_limit`` is given for a job that succeeded and leaves a value (not a
    script), either ``result`` (the return value, when it is JSON of at most ``value_limit`` bytes) or
    ``result_note`` (where the value is instead). A pickled value is never unpickled here.

    Blocking: reads ``status.json`` (and ``result.json``) through ``fetch_file`` where the executor can.
    """
    summary: dict[str, Any] = {
        "name": name, "key": handle.key, "backend": handle.backend, "job_id": handle.job_id,
        "handle": handle.to_dict(), "state": status.state.value, "exit_code": status.exit_code,
        "log": executor.log_location(handle), "duration": job_duration(executor, handle),
        "message": (status.message or "")[:300],
    }
    if value_limit is not None and kind != "script" and status.state is JobState.SUCCEEDED:
        summary.update(_value(executor, handle, value_limit))
    from nemorun_core.secrets import redact

    return scrub(redact(summary), secrets)


def job_duration(executor: Executor, handle: JobHandle) -> float | None:
    """Seconds the task ran, from the runner's ``status.json``; None for scripts, jobs still running, and executors
    that cannot read job files."""
    if not executor.supports(Capability.FETCH_FILES):
        return None
    try:
        raw = executor.fetch_file(handle, JobFiles.STATUS)
        data = json.loads(raw) if raw else {}
        return round(float(data["finished_at"]) - float(data["started_at"]), 2)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _value(executor: Executor, handle: JobHandle, limit: int) -> dict[str, Any]:
    if not executor.supports(Capability.FETCH_FILES):
        return {"result_note": f"{handle.backend} jobs' files cannot be read back; the value is in {handle.job_dir}"}
    raw = executor.fetch_file(handle, JobFiles.RESULT)
    if raw is None:
        return {"result_note": f"the job left no {JobFiles.RESULT} in {handle.job_dir}"}
    data = json.loads(raw)
    if "value" not in data:
        return {"result_note": f"the return value is not JSON; it is pickled in {handle.job_dir}/"
                               f"{data.get('pickle', JobFiles.RESULT_PICKLE)}"}
    size = len(json.dumps(data["value"]))
    if size > limit:
        return {"result_note": f"the return value is {size} bytes of JSON, more than the limit of {limit} bytes; "
                               f"it is in {JobFiles(handle.job_dir).result}"}
    return {"result": data["value"]}


# -- scrubbing -----------------------------------------------------------------------------------------------------


def known_secrets(*objects: Any, overrides: Iterable[str] = ()) -> list[str]:
    """The secret values held by ``objects`` (executors, tasks: secret-named settings, ``run.Secret`` values, key
    material) and by ``path=value`` overrides whose last path part is secret-named; longest first.

    What an orchestrator scrubs from error text and summaries, and registers with its own log masker. An object
    that cannot be serialized is skipped (it has no setting names to judge by).
    """
    from nemorun_core.config import serialize
    from nemorun_core.secrets import is_secret_name, secret_values

    data: list[Any] = []
    for obj in objects:
        if obj is None:
            continue
        try:
            data.append(serialize.encode(obj, payload=True))
        except Exception:  # noqa: BLE001 - any value the serializer refuses
            pass
    for text in overrides:
        path, _, value = str(text).partition("=")
        if is_secret_name(path.rsplit(".", 1)[-1].rstrip("+-")):
            data.append({"secret": value.strip().strip("'\"")})
    return secret_values(data)


def job_error(spec: TaskSpec, status: JobStatus, secrets: Sequence[str] = (), *,
              with_tail: bool = True) -> JobFailedError:
    """The error for a job that ended FAILED or CANCELLED (state, exit status, log location, log tail), with
    ``secrets`` scrubbed from its message and log tail: what an orchestrator raises or shows for it.

    ``with_tail=False`` leaves the log tail out: for an orchestrator that already streamed every line of the job's
    log into its own run log, where the tail (a traceback) would otherwise be shown a second and third time.
    """
    from nemorun_core.experiment.experiment import job_failure

    exc = job_failure(spec, status)
    if not secrets and with_tail:
        return exc
    return JobFailedError(exc.name, exc.state, exit_code=exc.exit_code, log_path=exc.log_path,
                          log_tail=scrub(exc.log_tail, secrets) if with_tail else (),
                          message=scrub(status.message or "", secrets))


def job_metrics(executor: Executor, handle: JobHandle) -> list[dict[str, Any]]:
    """The records the job logged with ``nemorun_core.log_metrics``, oldest first ([] when it logged none or the
    executor cannot read job files). Blocking: one ``fetch_file``."""
    from nemorun_core.metrics import read_metrics

    if not executor.supports(Capability.FETCH_FILES):
        return []
    data = executor.fetch_file(handle, JobFiles.METRICS)
    return read_metrics(data.decode("utf-8", "replace")) if data else []


class ErrorLines:
    """Tells which lines of a job's log look like error output, for the log level an orchestrator gives them.

    Executors merge a job's stdout and stderr into one log, so the stream a line came from is not known; this
    guesses from the text: the lines of a Python traceback (from ``Traceback (most recent call last):`` to the
    exception line), and lines naming an error or warning (``ValueError: ...``, ``ERROR ...``, ``error: ...``,
    ``UserWarning: ...``). Everything else (a task's ordinary prints and progress) is not. One instance per log:
    it remembers whether it is inside a traceback. ``guess(line)`` is True for an error-looking line.
    """

    _ERROR = re.compile(r"\b(?:[A-Z]\w*(?:Error|Exception|Warning)\b|(?:ERROR|CRITICAL|FATAL|WARNING)\b|"
                        r"(?i:error|fatal):)")

    def __init__(self) -> None:
        self._in_traceback = False

    def __call__(self, line: str) -> bool:
        if line.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            return True
        if self._in_traceback:
            if not line or line[0].isspace() or line.startswith(("During handling", "The above exception")):
                return True
            self._in_traceback = False  # the exception line ends the traceback
            return True
        return bool(self._ERROR.search(line))


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (text, or plain data of dicts, lists and strings) with every one of ``secrets`` replaced by
    ``<redacted>``: for error messages and summaries that may quote a job's output or a failing setting."""
    from nemorun_core.secrets import redact_text

    if not secrets:
        return value
    if isinstance(value, str):
        return redact_text(value, list(secrets))
    if isinstance(value, Mapping):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value



def location_url(location: str | None) -> str | None:
    """A URL for a location an executor names (``log_location``, ``job_url``), for the orchestrators' links: an
    http(s) or file URL as it is, an absolute local path as a ``file://`` URL (quoted); None for anything else (a
    remote path such as ``user@host:/path``, a command such as ``docker logs ...``), which is shown as text."""
    import urllib.parse

    if not location:
        return None
    if re.match(r"(https?|file)://", location):
        return location
    if os.path.isabs(location) and "\n" not in location:
        return "file://" + urllib.parse.quote(location)
    return None

__all__ = ["Attached", "CancelReport", "ErrorLines", "Recorder", "attach_or_submit", "cancel_all", "cancel_and_wait",
           "find_attempt", "job_dir", "job_duration", "job_error", "job_metrics", "job_summary", "known_secrets",
           "location_url", "require_find", "reusable", "scope_dir", "scrub", "task_dir"]
