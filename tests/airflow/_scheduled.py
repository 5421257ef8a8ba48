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


def count_run_until(marker: str, value: int, release: str = "", timeout: float = 120.0) -> int:
    """Record one run in ``marker``, then run until the file ``release`` exists (a test decides when the job ends;
    none given: end at once) and return ``value``. Fails after ``timeout`` s, so a failed test leaves no job behind."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"counted run, returning {value}", flush=True)
    deadline = time.monotonic() + timeout
    while release and not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {timeout} s")
        time.sleep(0.1)
    return value
