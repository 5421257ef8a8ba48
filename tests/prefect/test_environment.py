"""The Prefect-side environment is usable: Prefect 3 lives beside Fiddle and nemorun, and its engine runs."""

from __future__ import annotations

import pytest


@pytest.mark.prefect
def test_prefect3_engine_runs_a_flow_beside_fiddle_and_nemorun(prefect_harness: None) -> None:
    import fiddle
    import prefect
    from prefect import flow, task

    import nemorun_core
    import nemorun_prefect

    assert prefect.__version__.startswith("3."), prefect.__version__
    assert fiddle.Config is not None
    assert nemorun_core.__name__ == "nemorun_core"
    assert "run_nemorun_task" in nemorun_prefect.__all__

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def add_flow(x: int) -> int:
        return add(x, 1)

    # return_state=True: check what the engine recorded, not just that the function body ran.
    state = add_flow(41, return_state=True)
    assert state.is_completed(), state
    assert state.result() == 42
