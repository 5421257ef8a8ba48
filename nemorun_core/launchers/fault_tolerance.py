"""``FaultTolerance``: run a task under NVIDIA's ``ft_launcher`` (nvidia-resiliency-ext) on every node of a job.

``ft_launcher`` is torchrun with a rank monitor beside each worker: a worker that stops sending heartbeats is
terminated and the worker group restarted, up to ``--max-restarts`` times. Its command line is torchrun's plus
fault-tolerance options, so this launcher composes a ``Torchrun`` for the shared part (one spelling of
``--nproc-per-node``, ``--standalone``, rendezvous, restarts, ``--module``) and adds only its own options.

Option names, from the nvidia-resiliency-ext documentation and its ``launcher.py`` argument parser:

=================================  ============================================  =========================================
field                              current releases                              ``legacy_options=True`` (older releases)
=================================  ============================================  =========================================
``initial_rank_heartbeat_timeout``  ``--ft-initial-rank-heartbeat-timeout``       ``--ft-param-initial_rank_heartbeat_timeout``
``rank_heartbeat_timeout``          ``--ft-rank-heartbeat-timeout``               ``--ft-param-rank_heartbeat_timeout``
``workload_check_interval``         ``--ft-workload-check-interval``              ``--ft-param-workload_check_interval``
``rank_termination_signal``         ``--ft-rank-termination-signal``              ``--ft-param-rank_termination_signal``
``log_level``                       ``--ft-log-level``                            ``--ft-param-log_level``
(none)                              (none)                                        ``--ignore-missing-fault-tol-cfg``
=================================  ============================================  =========================================

nvidia-resiliency-ext deprecated the ``--ft-param-*`` spellings in favour of ``--ft-*`` in 2025 (and dropped
``--ignore-missing-fault-tol-cfg``, which older releases need when no ``--fault-tol-cfg-path`` is given); current
``ft_launcher`` parsers no longer define the old names, so pick the spelling that matches the installed release.
"""

from __future__ import annotations

import dataclasses
import signal
from typing import Optional, Union

from nemorun_core.errors import ConfigError
from nemorun_core.launchers.base import Launcher
from nemorun_core.launchers.torchrun import Torchrun

# The module behind the ``ft_launcher`` console script. Run as ``python -m`` with the task's interpreter (the way
# Torchrun runs ``torch.distributed.run``): ft_launcher starts its workers with its own ``sys.executable``, so the
# executor's choice of Python must start the launcher, not whichever ``ft_launcher`` is first on PATH.
FT_LAUNCHER_MODULE = "nvidia_resiliency_ext.fault_tolerance.launcher"

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(kw_only=True)
class FaultTolerance(Launcher):
    """Start ``nproc_per_node`` workers per node with ``ft_launcher``: torchrun plus hang detection and restarts.

    The task must send heartbeats (``RankMonitorClient`` or the PyTorch Lightning / NeMo fault-tolerance callback);
    a worker that never does is terminated after ``initial_rank_heartbeat_timeout``. ``None`` for any of the
    fault-tolerance settings leaves the option out, so ft_launcher's own default (or its ``--ft-cfg-path`` file,
    passed through ``extra_args``) applies. The defaults below are ft_launcher's documented defaults, rendered
    explicitly so that one configuration means the same thing on every release.

    Args:
        initial_rank_heartbeat_timeout: seconds a worker may take to send its first heartbeat (start-up, checkpoint
            loading); must be > 0.
        rank_heartbeat_timeout: seconds allowed between later heartbeats; must be > 0. Heartbeats stop while a
            checkpoint is saved, so leave room for that.
        rank_termination_signal: the signal the rank monitor sends to a hung worker, by name (``"SIGKILL"``).
        log_level: the fault-tolerance components' log level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
        max_restarts: how many times the worker group is restarted after a failure or hang (ft_launcher's
            ``--max-restarts``; None: ft_launcher's default).
        workload_check_interval: seconds between the rank monitors' checks of their workers; must be > 0.
        rdzv_port: port of the rendezvous endpoint on the first node, for multi-node jobs.
        rdzv_backend: the rendezvous backend: ``c10d``, the only one ft_launcher supports.
        rdzv_id: the rendezvous id of a multi-node job; None: ``nemorun``.
        cfg_path: a fault-tolerance YAML config on the job's machines (``--ft-cfg-path``; legacy
            ``--fault-tol-cfg-path``); ``""``: none, the options here apply.
        finished_flag_file, job_results_file: NeMo Run's Slurm auto-resume loop, which nemorun does not run (use
            ``SlurmExecutor(retries=N)`` to requeue a failed job): only ``""`` is accepted.
        monitor_interval: seconds between the launcher's checks of its worker processes (torchrun's option).
        log_dir: where the launcher writes per-rank logs (``None``: workers write to the job's log).
        legacy_options: spell the options ``--ft-param-<name>`` and add ``--ignore-missing-fault-tol-cfg``, for
            ft_launcher releases from before the 2025 rename (see the module docstring).
        extra_args: more ft_launcher arguments, e.g. ``["--ft-max-no-progress-restarts", "2"]``.
        nsys_profile, nsys_folder, nsys_filename, nsys_trace, nsys_extra_args: profile each worker with Nsight
            Systems (see ``launchers/base.py``).
    """

    initial_rank_heartbeat_timeout: Optional[float] = 3600.0
    rank_heartbeat_timeout: Optional[float] = 2700.0
    rank_termination_signal: Optional[str] = "SIGKILL"
    log_level: Optional[str] = "INFO"
    max_restarts: Optional[int] = 3
    workload_check_interval: Optional[float] = 5.0
    rdzv_port: int = 29500
    rdzv_backend: str = "c10d"
    rdzv_id: Optional[Union[int, str]] = None
    cfg_path: str = ""
    finished_flag_file: str = ""
    job_results_file: str = ""
    monitor_interval: Optional[float] = None
    log_dir: Optional[str] = None
    legacy_options: bool = False
    extra_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("initial_rank_heartbeat_timeout", "rank_heartbeat_timeout", "workload_check_interval"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ConfigError(f"must be a number of seconds > 0 or None, got {value!r}",
                                  path=f"FaultTolerance.{name}")
        sig = self.rank_termination_signal
        if sig is not None and (not isinstance(sig, str) or not sig.startswith("SIG")
                                or sig not in signal.Signals.__members__):
            raise ConfigError(f"must be a signal name such as 'SIGKILL' or 'SIGTERM', got {sig!r}",
                              path="FaultTolerance.rank_termination_signal")
        if self.log_level is not None and self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"must be one of {', '.join(_LOG_LEVELS)} or None, got {self.log_level!r}",
                              path="FaultTolerance.log_level")
        if not isinstance(self.extra_args, (list, tuple)) or not all(isinstance(a, str) for a in self.extra_args):
            raise ConfigError(f"must be a list of strings, got {self.extra_args!r}", path="FaultTolerance.extra_args")
        if self.rdzv_backend != "c10d":
            raise ConfigError(f"ft_launcher supports the 'c10d' rendezvous only, got {self.rdzv_backend!r}",
                              path="FaultTolerance.rdzv_backend")
        if not isinstance(self.cfg_path, str) or any(c in self.cfg_path for c in "\n\r\0"):
            raise ConfigError(f"must be the path of a YAML file where the job runs, or '', got {self.cfg_path!r}",
                              path="FaultTolerance.cfg_path")
        for name in ("finished_flag_file", "job_results_file"):
            if getattr(self, name):
                raise ConfigError("belongs to NeMo Run's Slurm auto-resume loop, which nemorun does not run; leave it "
                                  "'' and use SlurmExecutor(retries=N) to requeue a failed job, or Torchrun/"
                                  "FaultTolerance max_restarts to restart its workers", path=f"FaultTolerance.{name}")
        self._torchrun()  # Torchrun checks the fields the two share (port, restarts)

    def _torchrun(self) -> Torchrun:
        """The torchrun part of the command line, with this launcher's own options carried as extra arguments."""
        try:
            return Torchrun(rdzv_backend="c10d", rdzv_port=self.rdzv_port, rdzv_id=self.rdzv_id,
                            max_restarts=self.max_restarts, monitor_interval=self.monitor_interval,
                            log_dir=self.log_dir, extra_args=[*self.fault_tolerance_args(), *self.extra_args],
                            **{f.name: getattr(self, f.name) for f in dataclasses.fields(Launcher)})
        except ConfigError as e:
            # Name the field the user set on FaultTolerance, not the Torchrun it is passed to.
            path = (e.path or "").replace("Torchrun.", "FaultTolerance.") or None
            message = str(e).split(": ", 1)[1] if e.path else str(e)
            raise ConfigError(message, path=path) from None

    def fault_tolerance_args(self) -> list[str]:
        """ft_launcher's own options (the heartbeat timeouts, signal, log level), in the chosen spelling."""
        settings = [
            ("workload_check_interval", _seconds(self.workload_check_interval)),
            ("initial_rank_heartbeat_timeout", _seconds(self.initial_rank_heartbeat_timeout)),
            ("rank_heartbeat_timeout", _seconds(self.rank_heartbeat_timeout)),
            ("rank_termination_signal", self.rank_termination_signal),
            ("log_level", self.log_level),
        ]
        if self.legacy_options:
            out = [f"--ft-param-{name}={value}" for name, value in settings if value is not None]
            if self.cfg_path:
                return [f"--fault-tol-cfg-path={self.cfg_path}", *out]
            return [*out, "--ignore-missing-fault-tol-cfg"]
        out = [f"--ft-{name.replace('_', '-')}={value}" for name, value in settings if value is not None]
        return [f"--ft-cfg-path={self.cfg_path}", *out] if self.cfg_path else out

    def wrap(self, argv: list[str], *, nodes: int, nproc_per_node: int, node_rank: int | str,
             master_addr: str, profile_dir: str | None = None) -> list[str]:
        """The ft_launcher command that runs ``argv`` (``python -m module args`` or ``python script args``) on one node.

        Same contract as ``Torchrun.wrap``: ``node_rank`` and ``master_addr`` may be shell expressions
        (``$SLURM_NODEID``) that the caller quotes for expansion on each node.
        """
        cmd = self._torchrun().wrap(argv, nodes=nodes, nproc_per_node=nproc_per_node, node_rank=node_rank,
                                    master_addr=master_addr, profile_dir=profile_dir)
        # Torchrun renders ``<python> -m torch.distributed.run <torchrun options> <extra args> <program>``;
        # ft_launcher takes the same line, so only the module differs.
        assert cmd[1:3] == ["-m", "torch.distributed.run"], cmd[:3]
        cmd[2] = FT_LAUNCHER_MODULE
        return cmd


def _seconds(value: Optional[float]) -> Optional[str]:
    return None if value is None else f"{value:g}"
