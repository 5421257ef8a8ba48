"""The job directory, defined once: the names of the files a job leaves there and where each one is.

Every job has one directory (local, on a cluster's shared file system, or bind-mounted into containers)::

    task.json       the serialized task the runner builds and calls (written at submission)
    launch.sh       the local supervisor script (Local executor)
    request.json    the request a backend sent when it is not a script (Docker: the containers' specs)
    log.out         the job's combined output
    handle.json     the job's handle, for re-attaching
    launcher.json   the supervisor's record of every rank's exit code
    status.json     the runner's exit code, timing and error
    result.json     the task's return value (or its repr and the name of ``result.pkl``)
    result.pkl      a return value that is not JSON, cloudpickled
    metrics.jsonl   what the task reported with ``nemorun_core.log_metrics``
    cancel          a marker: cancellation was requested, so an ending job is CANCELLED, not FAILED

The runner, every executor, the results reader, the store and both orchestrators read these names from here, and
remote shell snippets (Slurm) build their paths from them too, so the layout cannot drift between writer and reader.

A bottom module with no imports beyond ``posixpath``: every job process imports it (through the runner), so it must
not pay for ``typing`` or ``dataclasses``.
"""

from __future__ import annotations

import posixpath


class _File:
    """A read-only attribute of :class:`JobFiles`: the path of one named file of the instance's job directory."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, files: "JobFiles | None", owner: type) -> str:
        if files is None:
            return self.name
        return files.path(self.name)

    def __set__(self, files: "JobFiles", value: object) -> None:
        raise AttributeError(f"JobFiles is immutable: the path of {self.name} cannot be set")


class JobFiles:
    """The files of one job directory: the file names as class attributes, their paths through the instance.

    ``JobFiles.RESULT`` is the name (``"result.json"``); ``JobFiles(job_dir).result`` its path in ``job_dir``.
    Paths are joined the POSIX way, since a remote job directory (a Slurm cluster's, a container's) is always a
    POSIX path, whatever the machine that names it. Instances are immutable values, equal when their directories
    are equal.
    """

    __slots__ = ("job_dir",)

    TASK = "task.json"
    LAUNCH_SCRIPT = "launch.sh"
    REQUEST = "request.json"
    LOG = "log.out"
    HANDLE = "handle.json"
    LAUNCHER = "launcher.json"
    STATUS = "status.json"
    RESULT = "result.json"
    RESULT_PICKLE = "result.pkl"
    METRICS = "metrics.jsonl"
    CANCEL = "cancel"

    NAMES = frozenset({TASK, LAUNCH_SCRIPT, REQUEST, LOG, HANDLE, LAUNCHER, STATUS, RESULT, RESULT_PICKLE, METRICS,
                       CANCEL})

    def __init__(self, job_dir: str):
        if not isinstance(job_dir, str) or not job_dir:
            raise ValueError(f"JobFiles needs a job directory path (a non-empty string), got {job_dir!r}")
        object.__setattr__(self, "job_dir", job_dir)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"JobFiles is immutable: make a new JobFiles({value!r}) instead of setting {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"JobFiles is immutable: {name!r} cannot be deleted")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobFiles) and other.job_dir == self.job_dir

    def __hash__(self) -> int:
        return hash((JobFiles, self.job_dir))

    def __repr__(self) -> str:
        return f"JobFiles({self.job_dir!r})"

    def __reduce__(self) -> tuple:
        return (JobFiles, (self.job_dir,))

    def path(self, name: str) -> str:
        """The path of file ``name`` of this job directory.

        Raises:
            ValueError: ``name`` is not a plain file name (a path, ``..``): a name read from a job's own files
                (``result.json``'s ``pickle``) must never reach outside the job directory.
        """
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a file name of the job directory {self.job_dir}: use a plain name "
                             f"such as {JobFiles.RESULT!r}")
        return posixpath.join(self.job_dir, name)

    # The path of each file of the job directory: ``JobFiles(d).task`` is ``d/task.json``.
    task = _File(TASK)
    launch_script = _File(LAUNCH_SCRIPT)
    request = _File(REQUEST)
    log = _File(LOG)
    handle = _File(HANDLE)
    launcher = _File(LAUNCHER)
    status = _File(STATUS)
    result = _File(RESULT)
    result_pickle = _File(RESULT_PICKLE)
    metrics = _File(METRICS)
    cancel = _File(CANCEL)
