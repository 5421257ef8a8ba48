"""Task functions of the example DAGs. They live in a module of their own because jobs must import them: Airflow
loads DAG files under a private module name that no job process can import."""

from __future__ import annotations

import nemorun_core as run


def train(learning_rate: float = 0.01, steps: int = 100, data_date: str = "") -> dict:
    loss = 1.0
    for step in range(steps):
        loss *= 1 - learning_rate
        if step % 25 == 0:
            print(f"step {step} loss {loss:.4f}", flush=True)
    run.log_metrics({"loss": loss})
    return {"learning_rate": learning_rate, "loss": loss, "data_date": data_date,
            "checkpoint": f"/tmp/nemorun-example/ckpt-lr{learning_rate}"}


def evaluate(checkpoint: str, losses: list | None = None) -> str:
    print(f"evaluating {checkpoint}", flush=True)
    return f"evaluated {checkpoint}" + (f" (best loss {min(losses):.4f})" if losses else "")
