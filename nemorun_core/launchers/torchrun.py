"""``Torchrun``: run a task under ``torch.distributed.run`` (torchrun) on every node of a job."""

from __future__ import annotations

import dataclasses
from typing import Optional

from nemorun_core.errors import ConfigError


@dataclasses.dataclass(kw_only=True)
class Torchrun:
    """Start ``nproc_per_node`` workers per node with torchrun; each gets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR.

    Args:
        rdzv_backend: torchrun's rendezvous backend (``c10d`` works everywhere torch does).
        rdzv_port: port of the rendezvous endpoint on the first node, for multi-node jobs.
        max_restarts: how many times torchrun restarts the worker group after a failure.
        monitor_interval: seconds between torchrun's checks of its workers.
        log_dir: where torchrun writes per-rank logs (``None``: workers write to the job's log).
        extra_args: more torchrun arguments, e.g. ``["--redirects", "3"]``.
    """

    rdzv_backend: str = "c10d"
    rdzv_port: int = 29500
    max_restarts: int = 0
    monitor_interval: Optional[float] = None
    log_dir: Optional[str] = None
    extra_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.rdzv_port, int) or not 0 < self.rdzv_port < 65536:
            raise ConfigError(f"must be a port number (1-65535), got {self.rdzv_port!r}", path="Torchrun.rdzv_port")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ConfigError(f"must be an int >= 0, got {self.max_restarts!r}", path="Torchrun.max_restarts")

    def wrap(self, argv: list[str], *, nodes: int, nproc_per_node: int, node_rank: int | str,
             master_addr: str) -> list[str]:
        """The torchrun command that runs ``argv`` (``python -m module args`` or ``python script args``) on one node.

        ``node_rank`` and ``master_addr`` may be shell expressions (``$SLURM_NODEID``) for schedulers that set them
        per node; the caller is responsible for quoting them that way.
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
                "--rdzv-id=nemorun",
            ]
        cmd.append(f"--max-restarts={self.max_restarts}")
        if self.monitor_interval is not None:
            cmd.append(f"--monitor-interval={self.monitor_interval:g}")
        if self.log_dir:
            cmd.append(f"--log-dir={self.log_dir}")
        cmd += list(self.extra_args)
        if rest[:1] == ["-m"]:
            cmd += ["--module", *rest[1:]]
        else:
            cmd += rest
        return cmd
