"""``Torchrun``: run a task under ``torch.distributed.run`` (torchrun) on every node of a job."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Union

from nemorun_core.errors import ConfigError
from nemorun_core.launchers.base import Launcher

_RDZV_ID = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclasses.dataclass(kw_only=True)
class Torchrun(Launcher):
    """Start ``nproc_per_node`` workers per node with torchrun; each gets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR.

    Args:
        rdzv_backend: torchrun's rendezvous backend (``c10d`` works everywhere torch does).
        rdzv_port: port of the rendezvous endpoint on the first node, for multi-node jobs.
        rdzv_id: the rendezvous id of a multi-node job (``--rdzv-id``); None: ``nemorun``. Nodes of one job meet
            under one id.
        max_restarts: how many times torchrun restarts the worker group after a failure (None: torchrun's default).
        monitor_interval: seconds between torchrun's checks of its workers.
        log_dir: where torchrun writes per-rank logs (``None``: workers write to the job's log).
        extra_args: more torchrun arguments, e.g. ``["--redirects", "3"]``.
        nsys_profile, nsys_folder, nsys_filename, nsys_trace, nsys_extra_args: profile each worker with Nsight
            Systems (see ``launchers/base.py``).
    """

    rdzv_backend: str = "c10d"
    rdzv_port: int = 29500
    rdzv_id: Optional[Union[int, str]] = None
    max_restarts: Optional[int] = 0
    monitor_interval: Optional[float] = None
    log_dir: Optional[str] = None
    extra_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if isinstance(self.rdzv_port, bool) or not isinstance(self.rdzv_port, int) or not 0 < self.rdzv_port < 65536:
            raise ConfigError(f"must be a port number (1-65535), got {self.rdzv_port!r}", path=f"{name}.rdzv_port")
        if self.max_restarts is not None and (isinstance(self.max_restarts, bool) or not isinstance(
                self.max_restarts, int) or self.max_restarts < 0):
            raise ConfigError(f"must be an int >= 0 or None, got {self.max_restarts!r}", path=f"{name}.max_restarts")
        rdzv_id = self.rdzv_id
        if rdzv_id is not None and (isinstance(rdzv_id, bool) or not _RDZV_ID.fullmatch(str(rdzv_id))):
            raise ConfigError(f"must be an int or a word of letters, digits and _.-, got {rdzv_id!r}",
                              path=f"{name}.rdzv_id")
        if not isinstance(self.rdzv_backend, str) or not _RDZV_ID.fullmatch(self.rdzv_backend):
            raise ConfigError(f"must be a rendezvous backend name such as 'c10d', got {self.rdzv_backend!r}",
                              path=f"{name}.rdzv_backend")
        self.check_nsys()

    def wrap(self, argv: list[str], *, nodes: int, nproc_per_node: int, node_rank: int | str,
             master_addr: str, profile_dir: str | None = None) -> list[str]:
        """The torchrun command that runs ``argv`` (``python -m module args`` or ``python script args``) on one node.

        ``node_rank`` and ``master_addr`` may be shell expressions (``$SLURM_NODEID``) for schedulers that set them
        per node; the caller is responsible for quoting them that way. ``profile_dir`` is the job's directory
        where the job runs (the Nsight reports' folder is relative to it).
        """
        python, rest = argv[0], argv[1:]
        cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
        if nodes == 1:
            cmd.append("--standalone")  # picks a free port: several local jobs can run side by side
        else:
            cmd += [
                f"--nnodes={nodes}",
                f"--node-rank={node_rank}",
                f"--rdzv-backend={self.rdzv_backend}",
                f"--rdzv-endpoint={master_addr}:{self.rdzv_port}",
                f"--rdzv-id={'nemorun' if self.rdzv_id is None else self.rdzv_id}",
            ]
        if self.max_restarts is not None:
            cmd.append(f"--max-restarts={self.max_restarts}")
        if self.monitor_interval is not None:
            cmd.append(f"--monitor-interval={self.monitor_interval:g}")
        if self.log_dir:
            cmd.append(f"--log-dir={self.log_dir}")
        cmd += list(self.extra_args)
        nsys = self.nsys_command(profile_dir)
        if nsys:
            # The profiler is the workers' program: it runs the interpreter with the task's own arguments.
            cmd += ["--no-python", *nsys, python, *rest]
        elif rest[:1] == ["-m"]:
            cmd += ["--module", *rest[1:]]
        else:
            cmd += rest
        return cmd
