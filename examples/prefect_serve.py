"""Serve a nemorun experiment as a Prefect deployment, trigger it from the CLI and cancel it.

The experiment (prepare -> train -> evaluate, on this machine's LocalExecutor) becomes a Prefect flow with one task
run per experiment task; ``flow.serve()`` registers it as the deployment ``experiment-prefect-serve/<name>`` and
starts each of its flow runs in a subprocess.

    # 1. a Prefect server (or Prefect Cloud), and every shell below pointed at it
    prefect server start                                   # UI on http://127.0.0.1:4200
    export PREFECT_API_URL=http://127.0.0.1:4200/api

    # 2. serve the deployment (it runs until stopped; on SIGTERM it first lets the flow runs in flight finish)
    python examples/prefect_serve.py                       # --name, --steps, --step-seconds, --limit

    # 3. trigger a flow run and follow it (logs of the jobs stream into the run's log)
    prefect deployment run 'experiment-prefect-serve/nemorun-example' --watch

    # 4. cancel a run: the "Cancel" button of the flow run in the UI, or
    prefect flow-run ls --state RUNNING
    prefect flow-run cancel <flow run id>

What happens on cancel: the serving process kills the flow run's process, then runs the flow's ``on_cancellation``
hook, which cancels the run's nemorun jobs (their processes get SIGTERM, then SIGKILL after ``cancel_grace_s``), and
the flow run ends Cancelled. The jobs are found through the records nemorun writes at submission under
``$NEMORUN_HOME/prefect/prefect-<flow run id>/``, so the hook needs the same ``$NEMORUN_HOME`` as this process.

What happens when this process dies while a flow run is running: its jobs keep running (each has its own
session) and the flow run stays Running in Prefect. Serve again and put the flow run back to Scheduled through the
API, ``client.set_flow_run_state(flow_run_id, Scheduled(), force=True)`` (a run in a terminal state: ``prefect
flow-run retry <flow run id>``): the new run of the same flow run id re-attaches to its jobs by their keys
instead of submitting them again, and jobs that finished meanwhile are not run again.
"""

from __future__ import annotations

import argparse
import time

import nemorun_core as run
from nemorun_prefect import build_experiment_flow


def prepare(rows: int) -> dict:
    """A stand-in for data preparation."""
    print(f"prepared {rows} rows", flush=True)
    return {"rows": rows}


def train(rows: int, steps: int, step_seconds: float) -> dict:
    """A stand-in for training: one log line per step."""
    loss = 1.0
    for step in range(steps):
        time.sleep(step_seconds)
        loss *= 0.5
        print(f"step {step}: loss={loss:.4f} ({rows} rows)", flush=True)
    return {"checkpoint": f"ckpt-{steps}", "loss": loss}


def evaluate(checkpoint: str) -> str:
    print(f"evaluating {checkpoint}", flush=True)
    return f"{checkpoint}: ok"


def make_experiment(steps: int, step_seconds: float) -> run.Experiment:
    exp = run.Experiment("prefect-serve")
    data = exp.add(run.Partial(prepare, rows=1000), name="prepare")
    trained = exp.add(run.Partial(train, rows=f"{data.output.rows}", steps=steps, step_seconds=step_seconds),
                      name="train")
    exp.add(run.Partial(evaluate, checkpoint=f"{trained.output.checkpoint}"), name="evaluate")
    return exp


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a nemorun experiment as a Prefect deployment.")
    parser.add_argument("--name", default="nemorun-example", help="deployment name")
    parser.add_argument("--steps", type=int, default=30, help="training steps")
    parser.add_argument("--step-seconds", type=float, default=1.0, help="seconds per training step")
    parser.add_argument("--limit", type=int, default=None, help="at most this many flow runs at a time")
    args = parser.parse_args()
    experiment = build_experiment_flow(make_experiment(args.steps, args.step_seconds), max_concurrent=2)
    experiment.serve(name=args.name, limit=args.limit)


if __name__ == "__main__":
    main()
