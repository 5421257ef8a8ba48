"""Job functions for the tests and benchmark that run DAGs under a real Airflow deployment (module-level: the job
processes import them by name)."""

from __future__ import annotations

import os
import time


def slow_train(marker: str, hidden_size: int, api_token: str, seconds: float = 3.0) -> dict:
    """Record one run in ``marker``, print a few steps (with the token and $WANDB_API_KEY: secrets a log could leak)
    over ``seconds``, and return a small result that holds the token under a secret name."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"training h{hidden_size} token={api_token} wandb={os.environ.get('WANDB_API_KEY')}", flush=True)
    steps = 4
    for step in range(steps):
        time.sleep(seconds / steps)
        print(f"step {step} of h{hidden_size}", flush=True)
    return {"checkpoint": f"/ckpt/h{hidden_size}", "api_token": api_token}
