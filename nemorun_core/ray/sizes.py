"""What a Ray cluster is made of, as the spec writes it: ``RayCluster(num_nodes=4, gpus_per_node=8,
memory_per_node="64GB")``. Pure checks and conversions; every refusal names the field and the fix."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

from nemorun_core.errors import ConfigError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30,
          "gib": 2**30, "ti": 2**40, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_memory(value: Any, path: str) -> Optional[int]:
    """Bytes of a memory size: an int (bytes) or ``"64GB"``, ``"512Mi"``, ``"1.5TB"``; None passes.

    Raises:
        ConfigError: not a size, naming ``path`` and the accepted forms.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"{value!r} is not a memory size; write a number of bytes or a number with a unit, "
                          "e.g. '64GB', '512MiB', '1.5TB'", path=path)
    return int(float(match.group(1)) * _UNITS[unit])


def _count(value: Any, path: str, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an int >= {minimum}, got {value!r}", path=path)


@dataclasses.dataclass(frozen=True)
class ClusterSize:
    """The checked sizes of a cluster: nodes, and per node CPUs, GPUs and memory (bytes); None = Ray's default
    (what the node has)."""

    num_nodes: int = 1
    cpus_per_node: Optional[int] = None
    gpus_per_node: Optional[int] = None
    memory_bytes: Optional[int] = None

    @classmethod
    def of(cls, owner: str, num_nodes: Any, cpus_per_node: Any, gpus_per_node: Any,
           memory_per_node: Any) -> "ClusterSize":
        _count(num_nodes, f"{owner}.num_nodes", 1)
        _count(cpus_per_node, f"{owner}.cpus_per_node", 1)
        _count(gpus_per_node, f"{owner}.gpus_per_node", 0)
        memory = parse_memory(memory_per_node, f"{owner}.memory_per_node")
        return cls(num_nodes if num_nodes is not None else 1, cpus_per_node, gpus_per_node, memory)

    def ray_start_args(self) -> list[str]:
        """The resource flags of every node's ``ray start``."""
        args = []
        if self.cpus_per_node is not None:
            args.append(f"--num-cpus={self.cpus_per_node}")
        if self.gpus_per_node is not None:
            args.append(f"--num-gpus={self.gpus_per_node}")
        if self.memory_bytes is not None:
            args.append(f"--memory={self.memory_bytes}")
        return args
