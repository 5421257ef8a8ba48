"""Flows that tests/prefect/test_server.py serves from a subprocess, against its real ``prefect server``.

    python -m tests.prefect._served FLOW DEPLOYMENT [--entrypoint]
    python -m tests.prefect._served FLOW --run

FLOW is one of the flows below; with ``--entrypoint`` the deployment is served from its entrypoint
(``tests/prefect/_served.py:FLOW``): the Runner then starts each flow run as ``python -m prefect.engine``, which
loads the flow from that file, and loads it again itself to find its cancellation hooks. Without it,
``flow.serve()`` keeps the flow object in memory and starts flow runs from it. ``--run`` runs the flow in this
process, without serving it. Settings come from the environment (set by the test): ``NEMORUN_TEST_MARKS`` (a
directory for marker files), ``NEMORUN_TEST_SECONDS`` (how long the job sleeps), ``NEMORUN_HOME``,
``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
import sys

from prefect import flow

import nemorun_core as run
from nemorun_prefect import (
    build_experiment_flow,
    experiment_flow,
    on_cancellation_cancel_jobs,
    run_nemorun_task,
    submit_nemorun_task,
)
from tests.integration import _tasks
from tests.prefect import _jobs

MARKS = os.environ.get("NEMORUN_TEST_MARKS", "/nonexistent")
SECONDS = float(os.environ.get("NEMORUN_TEST_SECONDS", "5"))


def _executor() -> run.LocalExecutor:
    return run.LocalExecutor(cancel_grace_s=1.0)


@flow(on_cancellation=[on_cancellation_cancel_jobs()])
def counted(value: int = 7) -> int:
    """One job that counts its runs in ``MARKS/runs`` and sleeps ``SECONDS`` before returning ``value``."""
    return run_nemorun_task(
        run.Partial(_jobs.count_run, marker=os.path.join(MARKS, "runs"), value=value, seconds=SECONDS),
        _executor(), name="counted")


def _sleepers() -> run.Experiment:
    exp = run.Experiment("served-sleepers")
    exp.add(run.Partial(_tasks.sleep_forever, child=True, marker=os.path.join(MARKS, "sleeper")),
            executor=_executor(), name="sleeper")
    return exp


# An experiment flow kept in a module variable: loadable from the entrypoint tests/prefect/_served.py:sleepers.
sleepers = build_experiment_flow(_sleepers())


@flow(on_cancellation=[on_cancellation_cancel_jobs()])
def plain_with_subflow() -> dict:
    """A user flow: a job submitted by the flow itself, then an experiment flow (a subflow) that never ends."""
    submit_nemorun_task(run.Partial(_tasks.sleep_forever, child=True, marker=os.path.join(MARKS, "direct")),
                        _executor(), name="direct")
    exp = run.Experiment("served-subflow")
    exp.add(run.Partial(_tasks.sleep_forever, child=True, marker=os.path.join(MARKS, "sub")), executor=_executor(),
            name="sub")
    return experiment_flow(exp)


@flow(on_cancellation=[on_cancellation_cancel_jobs()])
def slurm_sleeper() -> None:
    """A job on the project's Slurm cluster (over SSH) that sleeps until it is cancelled."""
    run_nemorun_task(run.Script(inline="echo started; sleep 300"), _jobs.slurm_executor(), name="slurm-sleeper")


@flow(on_cancellation=[on_cancellation_cancel_jobs()])
def ray_sleeper() -> None:
    """A Ray job on the test run's Ray head (scripts/services/ray.sh) that sleeps until it is cancelled."""
    from tests.integration import services

    run_nemorun_task(run.Script(inline="echo started; sleep 300"), run.RayExecutor(address=services.ray().address),
                     name="ray-sleeper")


FLOWS = {"counted": counted, "sleepers": sleepers, "plain_with_subflow": plain_with_subflow,
         "slurm_sleeper": slurm_sleeper, "ray_sleeper": ray_sleeper}


def main(argv: list[str]) -> None:
    name, deployment = argv[0], argv[1]
    if deployment == "--run":  # no deployment: run the flow in this process, as `python script.py` would
        FLOWS[name]()
    elif "--entrypoint" in argv:
        from prefect import serve
        from prefect.deployments.runner import RunnerDeployment

        serve(RunnerDeployment.from_entrypoint(f"tests/prefect/_served.py:{name}", name=deployment),
              print_starting_message=False)
    else:
        FLOWS[name].serve(name=deployment, print_starting_message=False)


if __name__ == "__main__":
    main(sys.argv[1:])
