"""Quickstart: a small sweep and an evaluation on this machine, recorded in the experiment store.

    python examples/quickstart.py

Three training tasks run in parallel (at most two at a time), then an evaluation that depends on all of them and
reads their results. Afterwards the experiment can be inspected from anywhere:

    nemorun experiment list
    nemorun experiment status <id>
    nemorun experiment logs <id> train-h256
"""

from __future__ import annotations

import dataclasses
import time

import nemorun_core as run


@dataclasses.dataclass
class ModelConfig:
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4

    def __post_init__(self):
        assert self.hidden_size % self.num_heads == 0, "hidden_size must be divisible by num_heads"


def train(model: ModelConfig, learning_rate: float = 1e-3, steps: int = 5) -> dict:
    """A stand-in for training: prints progress, logs metrics, returns a 'checkpoint'."""
    loss = 10.0
    for step in range(steps):
        loss *= 1.0 - learning_rate * model.hidden_size / 64
        print(f"step {step}: loss={loss:.4f}", flush=True)
        run.log_metrics({"loss": loss}, step=step)
        time.sleep(0.05)
    return {"checkpoint": f"ckpt-h{model.hidden_size}", "final_loss": round(loss, 4)}


def evaluate(results: list) -> dict:
    best = min(results, key=lambda r: r["final_loss"])
    print(f"best checkpoint: {best['checkpoint']} (loss {best['final_loss']})")
    return best


def main() -> None:
    with run.Experiment("quickstart", title="Quickstart sweep", description="hidden size sweep",
                        tags=["example"]) as exp:
        refs = [
            exp.add(run.Partial(train, model=run.Config(ModelConfig, hidden_size=h), learning_rate=0.05),
                    name=f"train-h{h}")
            for h in (64, 128, 256)
        ]
        exp.add(run.Partial(evaluate, results=[ref.output for ref in refs]), name="evaluate")
        exp.run(max_concurrent=2, tail_logs=True)

    exp.status()
    print("best:", exp.results()["evaluate"])
    print("metrics of train-h256:", [round(m["loss"], 3) for m in exp.metrics("train-h256")])
    print(f"experiment id: {exp.id}  (store: {exp.dir})")
    if exp.status(quiet=True)["evaluate"]["state"] != "SUCCEEDED":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
