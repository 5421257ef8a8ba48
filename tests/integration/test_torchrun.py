"""A real 2-process torch.distributed (gloo, CPU) job started by the Torchrun launcher on the LocalExecutor."""

from __future__ import annotations

import pytest

import nemorun_core as run
from tests.integration import _tasks

pytestmark = [pytest.mark.local, pytest.mark.torch]


def test_torchrun_two_processes_all_reduce(home):
    import torch  # noqa: F401  - fail loudly, not skip, when the environment lacks torch

    executor = run.LocalExecutor(ntasks_per_node=2, launcher="torchrun", env_vars={"OMP_NUM_THREADS": "1"})
    result = run.run(run.Partial(_tasks.distributed_sum), executor=executor, name="ddp", tail_logs=False)
    # rank 0 records the result: 2 workers contributed 1 + 2
    assert result == {"world_size": 2, "sum": 3.0, "rank": 0}


def test_torchrun_launcher_object_and_dryrun(home):
    executor = run.LocalExecutor(ntasks_per_node=4, launcher=run.Torchrun(max_restarts=1))
    req = run.run(run.Partial(_tasks.add, a=1), executor=executor, dryrun=True)
    assert "-m torch.distributed.run --nproc-per-node=4 --standalone --max-restarts=1 --module nemorun_core.runner" \
        in req.text.replace("'", "")
    assert req.text.count("nemorun_core.runner") == 1, "one torchrun process starts the 4 workers"
