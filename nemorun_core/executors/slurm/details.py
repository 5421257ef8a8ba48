"""``SlurmJobDetails``: where a Slurm job writes its output, NeMo Run's way to choose custom log paths.

A job's stdout (and, with ``SlurmExecutor(stderr_to_stdout=False)``, its stderr) go to the paths of the executor's
``job_details``: by default ``log.out`` (and ``log.err``) in the job's directory on the cluster. A subclass that
overrides the ``stdout`` / ``stderr`` properties moves them; its ``folder`` and ``job_name`` are filled in for each
job (the job's directory and Slurm name) unless set. The paths become ``#SBATCH --output`` / ``--error``, and the
job's handle records them, so ``logs``, pollers and failure reports read the same file from any process.

A path may hold Slurm's filename patterns that name one file per job: ``%j`` (the job id), ``%A`` (an array's
job id: every element appends to one file), ``%x`` (the job name) and ``%%``. Patterns that make several files of
one job (``%a``, ``%t``, ``%n``, ``%N``, ``%s``) or that only the cluster knows (``%u``) are refused, since one
job's log must be one file to be read back.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from pathlib import PurePosixPath
from typing import Any, Optional

from nemorun_core.errors import ConfigError
from nemorun_core.jobfiles import JobFiles

STDERR_FILE = "log.err"  # the job's stderr beside log.out, when it is not merged into it
_FIELD = "SlurmExecutor.job_details"
_CODE = re.compile(r"%(.?)")
# What #SBATCH lines and the remote commands can carry in a path (as remote.check_path), plus the patterns' '%'.
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/~+@:%")


@dataclasses.dataclass(kw_only=True)
class SlurmJobDetails:
    """The paths of a Slurm job's output. Subclass it and override ``stdout`` / ``stderr`` for custom paths::

        class MyJobDetails(SlurmJobDetails):  # from nemorun_core.core.execution.slurm
            @property
            def stdout(self):
                return Path(self.folder) / "job.out"

        executor.job_details = MyJobDetails()

    Attributes:
        job_name: the name the paths are built with; default: the job's Slurm name (``--job-name``).
        folder: the directory of the log files on the cluster; default: the job's directory there. A relative
            folder or path is relative to the job's directory.
    """

    job_name: Optional[str] = None
    folder: Optional[str] = None

    @property
    def stdout(self) -> PurePosixPath:
        """The job's stdout (``#SBATCH --output``): ``<folder>/log.out``."""
        return PurePosixPath(self.folder or ".") / JobFiles.LOG

    @property
    def stderr(self) -> PurePosixPath:
        """The job's stderr (``#SBATCH --error``) when it is not merged into stdout: ``<folder>/log.err``."""
        return PurePosixPath(self.folder or ".") / STDERR_FILE


def check_details(details: Any) -> None:
    """Refuse a ``job_details`` that is not a ``SlurmJobDetails`` (its paths are checked per job, when rendered)."""
    if not isinstance(details, SlurmJobDetails):
        raise ConfigError(f"must be a SlurmJobDetails (from nemorun_core.core.execution.slurm), or a subclass "
                          f"overriding stdout/stderr, got {details!r}", path=_FIELD)
    for name in ("job_name", "folder"):
        value = getattr(details, name)
        if value is not None and (not isinstance(value, str) or "\n" in value or "\0" in value):
            raise ConfigError(f"{name} must be a string without newlines or None, got {value!r}", path=_FIELD)


def output_paths(details: SlurmJobDetails, *, job_name: str, remote_dir: str, separate_stderr: bool,
                 array: bool) -> tuple[str, Optional[str]]:
    """The ``--output`` path of one job and its ``--error`` path (None when stderr goes to stdout). Pure.

    ``%x`` is replaced here (the name is known); ``%j``, ``%A`` and ``%%`` are left for Slurm and for
    :func:`resolve` (which reads the file back).

    Raises:
        ConfigError: a path that is not a path, holds characters an ``#SBATCH`` line cannot carry, or a pattern
            that makes several files of one job.
    """
    check_details(details)
    filled = dataclasses.replace(details, job_name=details.job_name or job_name,
                                 folder=posixpath.join(remote_dir, details.folder) if details.folder else remote_dir)
    out = _path(filled, "stdout", remote_dir, job_name, array)
    err = _path(filled, "stderr", remote_dir, job_name, array) if separate_stderr else None
    if err is not None and err == out:
        raise ConfigError(f"stdout and stderr are the same file ({out}); give stderr its own path, or keep "
                          "stderr_to_stdout=True", path=_FIELD)
    return out, err


def _path(details: SlurmJobDetails, which: str, remote_dir: str, job_name: str, array: bool) -> str:
    try:
        value = os.fspath(getattr(details, which))
    except TypeError:
        raise ConfigError(f"{type(details).__name__}.{which} must be a path (str or Path), got "
                          f"{getattr(details, which)!r}", path=_FIELD) from None
    if not value:
        raise ConfigError(f"{type(details).__name__}.{which} is empty; return a file path", path=_FIELD)
    if value.startswith("~"):
        raise ConfigError(f"{type(details).__name__}.{which} ({value!r}): Slurm does not expand '~'; write the "
                          "absolute path, or a path relative to the job's directory", path=_FIELD)
    # Relative to the job's directory (which a dry plan may show as a placeholder, not an absolute path).
    path = posixpath.normpath(value if value.startswith(("/", remote_dir)) else posixpath.join(remote_dir, value))
    own = path[len(remote_dir):] if path.startswith(remote_dir) else path  # the job directory is checked elsewhere
    bad = sorted(set(own) - _SAFE)
    if bad:
        raise ConfigError(f"{type(details).__name__}.{which} ({path!r}) contains {''.join(bad)!r}, which #SBATCH "
                          "lines cannot carry; use letters, digits and _.-/~+@:", path=_FIELD)

    def fill(match: re.Match) -> str:
        code = match.group(1)
        if code == "x":
            return job_name.replace("%", "%%")
        if code in ("A", "%"):
            return match.group(0)
        if code == "j":
            if array:
                raise ConfigError(f"{type(details).__name__}.{which} ({path!r}) uses %j, which is each array "
                                  "element's own id: write %A (the array's id; all elements append to one file)",
                                  path=_FIELD)
            return match.group(0)
        raise ConfigError(f"{type(details).__name__}.{which} ({path!r}) uses %{code}, which makes several files "
                          "of one job or is only known on the cluster; only %j, %A, %x and %% are supported",
                          path=_FIELD)

    return _CODE.sub(fill, path)


def resolve(pattern: str, job_id: str) -> str:
    """The file a rendered ``--output`` / ``--error`` path names for job ``job_id`` (``%j``, ``%A``, ``%%``)."""
    return _CODE.sub(lambda m: {"j": job_id, "A": job_id, "%": "%"}.get(m.group(1), m.group(0)), pattern)
