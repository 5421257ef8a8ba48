"""``Launcher``: what every launcher shares, NeMo Run's Nsight Systems profiling settings (``nsys_*``).

With ``nsys_profile=True`` each worker the launcher starts runs under ``nsys profile``, writing one report per
worker process (``%p``, its pid) into ``<job directory>/<nsys_folder>``. The launcher runs the profiler as its
program (torchrun's ``--no-python``), through a small ``sh`` step that first creates the folder; every value is
passed as an argument, never as shell text.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Optional

from nemorun_core.errors import ConfigError

_TRACE = re.compile(r"[a-z0-9\-]+")
_NAME = re.compile(r"[A-Za-z0-9_.%\-]+")
# mkdir -p the report folder, then exec nsys with the rest of the arguments: "$1" and "$@" are data, not code.
_MKDIR_THEN_EXEC = 'mkdir -p -- "$1" && shift && exec nsys "$@"'


@dataclasses.dataclass(kw_only=True)
class Launcher:
    """The settings every launcher shares.

    Args:
        nsys_profile: run each worker under Nsight Systems (``nsys profile``); ``nsys`` must be on the PATH where
            the job runs.
        nsys_folder: the reports' folder: relative to the job's directory, or absolute.
        nsys_filename: each report's name (``%p``, the worker's pid, keeps them apart).
        nsys_trace: what to trace (``nsys profile -t``), e.g. ``["nvtx", "cuda"]``.
        nsys_extra_args: more ``nsys profile`` options; by default the capture follows the CUDA profiler API
            (``cudaProfilerStart``/``Stop``), as NeMo's profiling callbacks drive it.
        nsys_gpu_metrics: GPU metrics sampling; not supported (it must run in one process per GPU): refused.
    """

    nsys_profile: bool = False
    nsys_folder: str = "nsys_profile"
    nsys_filename: str = "profile_%p"
    nsys_trace: list[str] = dataclasses.field(default_factory=lambda: ["nvtx", "cuda"])
    nsys_extra_args: list[str] = dataclasses.field(default_factory=lambda: [
        "--force-overwrite=true", "--capture-range=cudaProfilerApi", "--capture-range-end=stop",
        "--cuda-graph-trace=node", "--cuda-event-trace=false"])
    nsys_gpu_metrics: bool = False

    def check_nsys(self) -> None:
        """Refuse bad profiling settings; the error names ``<Launcher>.<field>`` and the fix."""
        name = type(self).__name__
        if not isinstance(self.nsys_profile, bool):
            raise ConfigError(f"must be True or False, got {self.nsys_profile!r}", path=f"{name}.nsys_profile")
        if self.nsys_gpu_metrics:
            raise ConfigError("GPU metrics sampling is not supported (nsys takes it from one process per GPU); "
                              "leave it False", path=f"{name}.nsys_gpu_metrics")
        folder = self.nsys_folder
        if not isinstance(folder, str) or not folder or any(c in folder for c in "\n\r\0") or folder.startswith("~"):
            raise ConfigError(f"must be a folder path (relative to the job's directory, or absolute; '~' is not "
                              f"expanded), got {folder!r}", path=f"{name}.nsys_folder")
        if not isinstance(self.nsys_filename, str) or not _NAME.fullmatch(self.nsys_filename):
            raise ConfigError(f"must be a file name such as 'profile_%p', got {self.nsys_filename!r}",
                              path=f"{name}.nsys_filename")
        trace = self.nsys_trace
        if isinstance(trace, str) or not isinstance(trace, (list, tuple)) or not trace or not all(
                isinstance(t, str) and _TRACE.fullmatch(t) for t in trace):
            raise ConfigError(f"must be a list of nsys trace names such as ['nvtx', 'cuda'], got {trace!r}",
                              path=f"{name}.nsys_trace")
        extra = self.nsys_extra_args
        if isinstance(extra, str) or not isinstance(extra, (list, tuple)) or not all(
                isinstance(a, str) and "\n" not in a and "\0" not in a for a in extra):
            raise ConfigError(f"must be a list of nsys arguments (one per item), got {extra!r}",
                              path=f"{name}.nsys_extra_args")

    def nsys_command(self, profile_dir: Optional[str]) -> list[str]:
        """The program (and its arguments) a worker runs in front of its own command when profiling, else [].

        Args:
            profile_dir: the job's directory where the job runs (the folder is relative to it), or None: the
                worker's working directory.
        """
        if not self.nsys_profile:
            return []
        folder = self.nsys_folder if profile_dir is None else posixpath.join(profile_dir, self.nsys_folder)
        return ["sh", "-c", _MKDIR_THEN_EXEC, "nsys-profile", folder, "profile", "-s", "none",
                "-t", ",".join(self.nsys_trace), "-o", posixpath.join(folder, self.nsys_filename),
                *self.nsys_extra_args]
