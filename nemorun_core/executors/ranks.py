"""The environment of each process of a distributed job, defined once for every backend.

Every executor that starts several processes for one job (``nodes * ntasks_per_node`` of them, no launcher) gives
each the same variables, the ones ``torch.distributed``'s ``env://`` rendezvous and most training scripts read:

==================== =====================================================
``RANK``             the process's global rank, 0 .. WORLD_SIZE-1
``LOCAL_RANK``       its rank on its node
``WORLD_SIZE``       the number of processes of the job
``LOCAL_WORLD_SIZE`` the number of processes on its node
``NODE_RANK``        its node's rank (``GROUP_RANK``: the same, torchrun's name)
``NEMORUN_RANK``     the same as ``RANK``, under nemorun's own name
``MASTER_ADDR``      where rank 0 listens for the rendezvous
``MASTER_PORT``      the port it listens on
==================== =====================================================

A process of a single-process job gets none of them (nothing to rendezvous with). With a launcher (torchrun), the
launcher starts the workers and sets their variables itself; nemorun gives each launcher process only its node's
rank (:data:`NODE_VARS`), and only when the job has several nodes.

Values are literal where the executor knows them when it renders the request (Local, Docker: :func:`process_envs`)
and shell expressions where only the node knows them (Slurm: :func:`slurm_task_env`, evaluated by each task).
Both come from one mapping (:func:`_env`), so every backend sets the same names.

The rendezvous port: Local and Docker jobs share this machine's network, so the executor's ``prepare`` step picks
a port that is free when the job is submitted (:func:`free_port`, trying the job's :func:`preferred_port` first);
a dry plan shows the preferred port (what submission uses unless it is taken by then). On Slurm the batch script
runs on the job's first node, and the port is derived there from the Slurm job id (:data:`SLURM_PORT`), so two jobs
sharing a node get different ports.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Mapping, Sequence

#: Every variable a process of a distributed job gets (no launcher).
PROCESS_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "NEMORUN_RANK",
                "MASTER_ADDR", "MASTER_PORT")
#: What each launcher process of a multi-node job gets (the launcher sets its workers' variables itself).
NODE_VARS = ("NODE_RANK", "GROUP_RANK", "NEMORUN_NODE_RANK")
#: Where rank 0 listens when every process runs on this machine (Local, Docker with network host or none).
LOOPBACK = "127.0.0.1"
PORT_BASE, PORT_SPAN = 29500, 10000
#: The Slurm rendezvous port, a shell expression of the job id (29500-39499), evaluated on the job's nodes.
SLURM_PORT = f"$(( {PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN} ))"
#: The variable the Slurm batch script sets to its first node's address (see ``slurm/sbatch.sh.j2``).
SLURM_HEAD_NODE = "NEMORUN_HEAD_NODE"


def _env(rank: str, local_rank: str, world_size: str, local_world_size: str, node_rank: str, master_addr: str,
         master_port: str) -> dict[str, str]:
    """The one mapping of :data:`PROCESS_VARS` to values (literal or shell expressions)."""
    return {"RANK": rank, "LOCAL_RANK": local_rank, "WORLD_SIZE": world_size, "LOCAL_WORLD_SIZE": local_world_size,
            "NODE_RANK": node_rank, "GROUP_RANK": node_rank, "NEMORUN_RANK": rank, "MASTER_ADDR": master_addr,
            "MASTER_PORT": master_port}


def is_distributed(nodes: int, ntasks_per_node: int) -> bool:
    """Whether a job of this shape has more than one process (and so gets the rank environment)."""
    return nodes * ntasks_per_node > 1


def rank_env(rank: int, nodes: int, ntasks_per_node: int, master_addr: str, master_port: int) -> dict[str, str]:
    """The literal environment of global rank ``rank`` of a ``nodes`` x ``ntasks_per_node`` job (ranks are
    numbered node by node: node ``rank // ntasks_per_node``). Pure."""
    return _env(str(rank), str(rank % ntasks_per_node), str(nodes * ntasks_per_node), str(ntasks_per_node),
                str(rank // ntasks_per_node), master_addr, str(master_port))


def process_envs(nodes: int, ntasks_per_node: int, master_addr: str, master_port: int | None) -> list[dict[str, str]]:
    """The environment of each process of a job, in rank order: ``nodes * ntasks_per_node`` entries, each empty
    for a single-process job. Pure.

    Raises:
        ValueError: a distributed job without a port (the executor's plan must hold one).
    """
    if not is_distributed(nodes, ntasks_per_node):
        return [{}]
    if master_port is None:
        raise ValueError("a distributed job needs a rendezvous port in its plan")
    return [rank_env(r, nodes, ntasks_per_node, master_addr, master_port) for r in range(nodes * ntasks_per_node)]


def node_env(node: str | int, nodes: int) -> dict[str, str]:
    """What the launcher process on node ``node`` (a number, or a shell expression) gets; empty on one node."""
    if nodes <= 1:
        return {}
    return {name: str(node) for name in NODE_VARS}


def slurm_task_env(groups: Sequence[tuple[int, int]]) -> dict[str, str]:
    """The rank environment of a Slurm task as shell expressions, evaluated by each task of the ``srun`` step.

    Slurm numbers the tasks of a step (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NODEID``: global across the
    components of a heterogeneous step, nodes in component order), so those carry over; the processes per node
    come from the job's shape, a literal when every node has the same count, else chosen by ``SLURM_NODEID``.

    Args:
        groups: (nodes, tasks per node) of each component (one for a homogeneous job).
    """
    counts = sorted({tasks for _, tasks in groups})
    if len(counts) == 1:
        local_world = str(counts[0])
    else:
        arms, first = [], 0
        for nodes, tasks in groups:
            ids = "|".join(str(i) for i in range(first, first + nodes))
            arms.append(f"({ids}) echo {tasks};;")
            first += nodes
        local_world = f'$(case "$SLURM_NODEID" in {" ".join(arms)} esac)'
    return _env('"$SLURM_PROCID"', '"$SLURM_LOCALID"', '"$SLURM_NTASKS"', local_world, '"$SLURM_NODEID"',
                f'"${SLURM_HEAD_NODE}"', SLURM_PORT)


def exports(env: Mapping[str, str]) -> str:
    """``export NAME=value ...`` for shell expressions from :func:`slurm_task_env` or :func:`node_env` (values
    are shell text, not data: only this module's own expressions go here)."""
    return "export " + " ".join(f"{name}={value}" for name, value in env.items())


def preferred_port(key: str) -> int:
    """The job's own rendezvous port (29500-39499), derived from its key: what a dry plan shows, and what
    submission takes when it is free. Pure."""
    return PORT_BASE + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % PORT_SPAN


def free_port(preferred: int, host: str = LOOPBACK) -> int:
    """``preferred`` if nothing listens on it at ``host`` now, else a port the system says is free.

    A port is only free until someone takes it: the job's rank 0 binds it moments later, so another program may
    in rare cases take it first (the job then fails to rendezvous, and says so in its log).
    """
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free TCP port on {host}")
