"""Two experiment stores on one cluster account (two users, two CI runners): a same-named experiment started in the
same second by each must never share a remote job directory or attach to the other's job (issue: data loss).

Services: the real sshd and Slurm cluster (scripts/services/sshd.sh, slurm.sh).
"""

from __future__ import annotations

import threading
import time
import types

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from nemorun_core.experiment import store as store_module
from tests.integration import _tasks, services

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]


def _executor() -> run.SlurmExecutor:
    ssh, cluster = services.ssh(), services.slurm()
    tunnel = run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                           known_hosts=ssh.known_hosts, job_dir=cluster.job_dir)
    import os

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                             python=cluster.python, time="00:05:00", env_vars={"PYTHONPATH": repo})


def test_two_stores_starting_the_same_experiment_in_the_same_second_keep_their_own_jobs(tmp_path, monkeypatch):
    # Both stores see the same clock second, as two runners started by one CI trigger would.
    frozen = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("__")})
    frozen.strftime = lambda fmt, t=None: "20261202_120000"
    monkeypatch.setattr(store_module, "time", frozen)

    experiments = []
    for who, value in (("alice", 1), ("bob", 2)):
        exp = run.Experiment("shared-name", home=str(tmp_path / who))
        exp.add(run.Partial(_tasks.add, a=value, b=100), executor=_executor(), name="train")
        experiments.append(exp)
    errors: list[BaseException] = []

    def launch(exp: run.Experiment) -> None:
        try:
            exp.run(tail_logs=False, quiet=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=launch, args=(exp,)) for exp in experiments]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    alice, bob = experiments
    assert alice.id.startswith("shared-name_20261202_120000_") and bob.id.startswith("shared-name_20261202_120000_")
    assert alice.id != bob.id
    for exp, expected in ((alice, 101), (bob, 102)):
        loaded = run.Experiment.from_id(exp.id, home=exp.store.root)
        statuses = loaded.wait(timeout=240)
        assert statuses["train"].state is JobState.SUCCEEDED, statuses
        assert loaded.result("train") == expected  # each store got its own job's output
    handles = [run.Experiment.from_id(e.id, home=e.store.root)._spec("train").handle for e in experiments]
    assert handles[0].job_dir != handles[1].job_dir and handles[0].job_id != handles[1].job_id
