"""The flow of the Prefect fault matrix (tests/prefect/test_fault_matrix.py), served from its entrypoint.

    python -m tests.prefect._fault_flows DEPLOYMENT

serves ``tests/prefect/_fault_flows.py:fault_cell`` as ``fault-cell/DEPLOYMENT``: the Runner starts each flow run
as its own process (``python -m prefect.engine``), which is the process the cell's executor kills, and starts it
again, with the same flow run id, when the test sets the flow run back to Scheduled. Settings come from the
environment (set by the test): ``NEMORUN_HOME``, ``PREFECT_API_URL``.
"""

from __future__ import annotations

import sys

from prefect import flow

import nemorun_core as run
from nemorun_prefect import on_cancellation_cancel_jobs, run_nemorun_task
from tests.integration import _fault_cells as cells
from tests.integration._faults import count_run


@flow(on_cancellation=[on_cancellation_cancel_jobs()])
def fault_cell(cell: dict) -> int:
    """One job on ``cell["backend"]`` whose executor kills this flow-run process at ``cell["kill_at"]`` (once); the
    job counts its runs in ``cell["marker"]``, runs ``cell["seconds"]`` and returns ``cell["value"]``."""
    executor = cells.executor(cell["backend"], cell["kill_at"], cell["flag"], cell["marks"])
    return run_nemorun_task(run.Partial(count_run, marker=cell["marker"], value=cell["value"],
                                        seconds=cell["seconds"]), executor, name="job")


def main(argv: list[str]) -> None:
    from prefect import serve
    from prefect.deployments.runner import RunnerDeployment

    serve(RunnerDeployment.from_entrypoint("tests/prefect/_fault_flows.py:fault_cell", name=argv[0]),
          print_starting_message=False)


if __name__ == "__main__":
    main(sys.argv[1:])
