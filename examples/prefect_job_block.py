"""A nemorun job as a Prefect block: saved once with its executor, then triggered from a flow like a Kubernetes job.

    python examples/prefect_job_block.py

It saves a typed executor block (``NemorunLocalExecutor``: the form Prefect's UI shows for ``run.LocalExecutor``,
with a secret environment value kept in its encrypted ``secrets``) and a ``NemorunJob`` block holding a
``run.Partial`` and that executor; then an async flow loads the job block, ``trigger()``s it, follows it with
``wait_for_completion()`` (the job's log lines in the flow run's log, secrets redacted) and returns
``fetch_result()``. Triggering twice in one flow run re-attaches to the same job instead of submitting a second one.
Without ``PREFECT_API_URL`` Prefect starts a temporary server for the length of the script (allow 10-20 s for its
first start); with it, the blocks and runs go to that server. docs/prefect.md ("Blocks") is the guide.
"""

from __future__ import annotations

import asyncio
import os

# Prefect gives its temporary server 20 s to start by default; a busy machine can need more for the first start.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow  # noqa: E402  (after the setting above, which Prefect reads when it starts the server)

import nemorun_core as run  # noqa: E402
from nemorun_prefect.blocks import NemorunLocalExecutor, executor_block  # noqa: E402
from nemorun_prefect.jobs import NemorunJob  # noqa: E402


def train(steps: int = 3, lr: float = 0.1) -> dict:
    """The task: prints a line per step (each reaches the flow run's log) and returns a summary."""
    loss = 1.0
    for step in range(steps):
        loss *= 1 - lr
        print(f"step {step}: loss={loss:.4f} (token {os.environ['EXAMPLE_API_TOKEN']})", flush=True)
    return {"steps": steps, "final_loss": round(loss, 4)}


@flow(log_prints=True)
async def job_block_flow() -> dict:
    job = await NemorunJob.load("example-train")
    job_run = await job.trigger()
    again = await job.trigger()  # the same job, found by its key: nothing is submitted twice
    print(f"triggered {job_run.key} ({job_run.reason}); again: {again.key} ({again.reason})")
    await job_run.wait_for_completion()
    return await job_run.fetch_result()


def main() -> None:
    # A secret under a secret-like name: the block keeps it encrypted, the job gets it, the logs show <redacted>.
    executor = run.LocalExecutor(env_vars={"EXAMPLE_API_TOKEN": "example-token-0123456789", "MODE": "demo"})
    executor_block(executor).save("example-local", overwrite=True)
    NemorunJob.from_task(run.Partial(train, steps=3, lr=0.1), NemorunLocalExecutor.load("example-local"),
                         name="train").save("example-train", overwrite=True)
    print("result:", asyncio.run(job_block_flow()))


if __name__ == "__main__":
    main()
