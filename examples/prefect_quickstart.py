"""Quickstart on Prefect: one nemorun task inside a flow of your own, then a whole experiment as a flow.

    python examples/prefect_quickstart.py

Each task runs as a job on this machine (``run.LocalExecutor``); its log lines stream into the Prefect run logger,
and each submitted job leaves a configuration artifact, each experiment flow run a job-table artifact. Without
``PREFECT_API_URL`` Prefect starts a temporary server for the length of the script (its first start creates a
database: allow 10-20 s); with it, the runs, logs and artifacts go to that server. docs/prefect.md is the guide.
"""

from __future__ import annotations

import dataclasses
import os
import time

# Prefect gives its temporary server 20 s to start by default; a busy laptop (or CI runner) can need more for the
# first start, which creates the database. An explicit setting of yours still wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow  # noqa: E402  (after the setting above, which Prefect reads when it starts the server)

import nemorun_core as run
from nemorun_prefect import experiment_flow, run_nemorun_task


@dataclasses.dataclass
class ModelConfig:
    hidden_size: int = 128
    num_layers: int = 2


def train(model: ModelConfig, learning_rate: float = 1e-3, steps: int = 3) -> dict:
    """A stand-in for training: prints progress (into the Prefect run logger) and returns a 'checkpoint'."""
    loss = 10.0
    for step in range(steps):
        loss *= 1.0 - learning_rate * model.hidden_size / 64
        print(f"step {step}: loss={loss:.4f}", flush=True)
        time.sleep(0.05)
    return {"checkpoint": f"ckpt-h{model.hidden_size}", "final_loss": round(loss, 4)}


def evaluate(results: list) -> dict:
    best = min(results, key=lambda r: r["final_loss"])
    print(f"best checkpoint: {best['checkpoint']} (loss {best['final_loss']})", flush=True)
    return best


@flow(name="prefect-quickstart")
def train_once(hidden_size: int = 64) -> dict:
    """A flow of your own: submit one task (or re-attach to it on a retry), stream its log, return its value."""
    task = run.Partial(train, model=run.Config(ModelConfig, hidden_size=hidden_size), learning_rate=0.05)
    return run_nemorun_task(task, run.LocalExecutor(), name="train")


def sweep() -> dict:
    """An experiment as a flow: one Prefect task per experiment task, ``evaluate`` after both trainings."""
    exp = run.Experiment("prefect-sweep")
    refs = [exp.add(run.Partial(train, model=run.Config(ModelConfig, hidden_size=h), learning_rate=0.05),
                    name=f"train-h{h}")
            for h in (64, 128)]
    exp.add(run.Partial(evaluate, results=[ref.output for ref in refs]), name="evaluate")
    return experiment_flow(exp, max_concurrent=2)


def main() -> None:
    print("one task:", train_once())
    results = sweep()
    print("best:", results["evaluate"])


if __name__ == "__main__":
    main()
