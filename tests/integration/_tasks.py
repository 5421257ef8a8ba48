"""Task functions for the integration tests: module-level so the runner can import them by name."""

from __future__ import annotations

import dataclasses
import os
import time

import nemorun_core as run


@dataclasses.dataclass
class ModelConfig:
    hidden_size: int = 512
    num_heads: int = 8

    def __post_init__(self):
        assert self.hidden_size % self.num_heads == 0, "hidden_size must be divisible by num_heads"


def add(a: int, b: int = 1) -> int:
    return a + b


def echo_env(names: list[str]) -> dict:
    return {n: os.environ.get(n) for n in names}


def where() -> dict:
    return {"cwd": os.getcwd(), "pid": os.getpid(), "pgid": os.getpgid(0)}


def train(model: ModelConfig, lr: float = 1e-3, steps: int = 3) -> dict:
    for step in range(steps):
        print(f"step {step} loss {1.0 / (step + 1):.3f}", flush=True)
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    return {"checkpoint": f"/ckpt/h{model.hidden_size}", "hidden_size": model.hidden_size}


def evaluate(checkpoint: str, hidden_size: int = 0) -> str:
    return f"evaluated {checkpoint} ({hidden_size})"


def fail(message: str = "it broke") -> None:
    print("about to fail", flush=True)
    raise RuntimeError(message)


def sleep_and_record(seconds: float, marker_dir: str, label: str) -> str:
    """Record start/end times so tests can check how many tasks overlapped."""
    start = time.time()
    time.sleep(seconds)
    with open(os.path.join(marker_dir, f"{label}.span"), "w") as f:
        f.write(f"{start} {time.time()}")
    return label


def sleep_forever(child: bool = True, marker: str = "") -> None:
    """Sleep (with a child process, to check that cancel reaches the whole group)."""
    import subprocess

    if child:
        proc = subprocess.Popen(["sleep", "300"])
        if marker:  # written whole, then renamed: a test polling for the file never reads it empty
            with open(f"{marker}.tmp", "w") as f:
                f.write(f"{os.getpid()} {proc.pid}")
            os.replace(f"{marker}.tmp", marker)
    time.sleep(300)


def not_json() -> ModelConfig:
    return ModelConfig(hidden_size=64, num_heads=8)


def distributed_sum() -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group(backend="gloo")
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    out = {"world_size": dist.get_world_size(), "sum": value.item(), "rank": dist.get_rank()}
    dist.destroy_process_group()
    return out


def import_value(module: str) -> str:
    import importlib

    return importlib.import_module(module).VALUE


def env_names() -> list[str]:
    """The names of the job's environment variables."""
    import os

    return sorted(os.environ)
