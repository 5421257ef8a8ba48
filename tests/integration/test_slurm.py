"""SlurmExecutor end to end on the project's real Slurm cluster, submitted over SSH as a non-root user.

Services: scripts/services/sshd.sh and scripts/services/slurm.sh (started by scripts/test.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import SubmissionError
from nemorun_core.executors.base import JobState
from tests.integration import _tasks, services

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def tunnel():
    ssh = services.ssh()
    cluster = services.slurm()
    return run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                         known_hosts=ssh.known_hosts, job_dir=cluster.job_dir)


@pytest.fixture
def executor(tunnel):
    cluster = services.slurm()
    return run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                             python=cluster.python, time="00:05:00", env_vars={"PYTHONPATH": REPO})


def _wait(exp, timeout=120):
    statuses = run.Experiment.from_id(exp.id).wait(timeout=timeout)
    assert all(s.is_terminal for s in statuses.values()), statuses
    return statuses


def test_run_returns_the_result(home, executor):
    assert run.run(run.Partial(_tasks.add, a=20, b=22), executor=executor, tail_logs=False) == 42


def test_tailed_log_prints_each_line_once_in_order(home, executor, capsys):
    # The scheduler reads each round from its offset while the job runs: a round with nothing new must add nothing.
    exp = run.Experiment("slurm-tail")
    exp.add(run.Script(inline="echo one; sleep 3; echo; echo three"), executor=executor, name="t")
    exp.run(tail_logs=True, quiet=True)
    assert exp.status(quiet=True)["t"]["state"] == "SUCCEEDED"
    assert capsys.readouterr().out.splitlines() == ["one", "", "three"] == exp.logs("t").splitlines()


def test_script_and_several_processes(home, executor):
    executor.ntasks_per_node = 2
    exp = run.Experiment("slurm-ranks")
    exp.add(run.Script(inline='echo "rank $SLURM_PROCID of $SLURM_NTASKS on $SLURMD_NODENAME"'), executor=executor,
            name="ranks")
    exp.run(quiet=True)
    assert exp.status(quiet=True)["ranks"]["state"] == "SUCCEEDED"
    assert sorted(exp.logs("ranks").splitlines()) == ["rank 0 of 2 on node1", "rank 1 of 2 on node1"]


def test_failure_is_reported_with_the_task_error(home, executor):
    from nemorun_core.errors import JobFailedError

    with pytest.raises(JobFailedError) as info:
        run.run(run.Partial(_tasks.fail, message="cluster says no"), executor=executor, name="bad", tail_logs=False)
    assert info.value.exit_code == 1 and "cluster says no" in str(info.value)
    assert info.value.log_path.startswith(executor.tunnel.address)


def test_dependencies_become_slurm_dependencies(home, executor, tunnel):
    exp = run.Experiment("slurm-deps")
    a = exp.add(run.Partial(_tasks.sleep_and_record, seconds=2, marker_dir="/tmp", label="a"), executor=executor,
                name="a")
    exp.add(run.Partial(_tasks.add, a=1), executor=executor, dependencies=[a], name="b")
    exp.run(detach=True, quiet=True)
    # both were submitted at once (no driver process): b waits in Slurm's queue on --dependency=afterok
    handles = {n: s.handle for n, s in exp._tasks.items()}
    assert handles["a"] is not None and handles["b"] is not None
    sbatch = tunnel.read_bytes(f"{handles['b'].job_dir}/sbatch.sh").decode()
    assert f"--dependency=afterok:{handles['a'].job_id}" in sbatch
    statuses = _wait(exp)
    assert {n: s.state for n, s in statuses.items()} == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}


def test_never_satisfiable_dependency_is_reported_not_pending_forever(home, executor, tunnel):
    exp = run.Experiment("slurm-deadend")
    bad = exp.add(run.Partial(_tasks.fail), executor=executor, name="bad")
    exp.add(run.Partial(_tasks.add, a=1), executor=executor, dependencies=[bad], name="after")
    exp.run(quiet=True)
    st = exp.status(quiet=True)
    assert st["bad"]["state"] == "FAILED"
    assert st["after"]["state"] == "CANCELLED" and "Dependency" in st["after"]["message"]
    job_id = exp._tasks["after"].handle.job_id
    queue = tunnel.run(f"squeue -h -j {job_id} -o %T", check=False).stdout.strip()
    assert queue in ("", "CANCELLED"), f"the dead job must leave the queue, squeue says {queue!r}"


def test_status_of_many_jobs_is_one_remote_call(home, executor):
    from nemorun_core.tunnel.ssh import ssh_stats

    exp = run.Experiment("slurm-many")
    for i in range(5):
        exp.add(run.Script(inline="true"), executor=executor, name=f"t{i}")
    exp.run(detach=True, quiet=True)
    before = ssh_stats(executor.tunnel.address).commands_run
    statuses = executor.status_many([s.handle for s in exp._tasks.values()])
    assert len(statuses) == 5
    assert ssh_stats(executor.tunnel.address).commands_run - before == 1
    _wait(exp)


def test_logs_by_offset_follow_and_cancel(home, executor):
    exp = run.Experiment("slurm-logs")
    exp.add(run.Script(inline="for i in 1 2 3; do echo line$i; done; sleep 300"), executor=executor, name="long")
    exp.run(detach=True, quiet=True)
    spec = exp._tasks["long"]
    deadline = time.time() + 60
    while time.time() < deadline and len(list(executor.logs(spec.handle))) < 3:
        time.sleep(0.5)
    assert list(executor.logs(spec.handle, offset=1)) == ["line2", "line3"]
    run.Experiment.from_id(exp.id).cancel("long")
    assert _wait(exp)["long"].state is JobState.CANCELLED


def test_detached_experiment_is_followed_from_another_process(home, executor):
    exp = run.Experiment("slurm-detached")
    first = exp.add(run.Partial(_tasks.add, a=1, b=1), executor=executor, name="first")
    exp.add(run.Partial(_tasks.add, a=2, b=2), executor=executor, dependencies=[first], name="second")
    exp.run(detach=True, quiet=True)
    code = textwrap.dedent(f"""
        import json, nemorun_core as run
        exp = run.Experiment.from_id({exp.id!r})
        exp.wait(timeout=120)
        print(json.dumps(exp.results()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('{"first": 2, "second": 4}')


def test_torchrun_across_two_nodes(home, executor):
    executor.nodes = 2
    executor.ntasks_per_node = 1
    executor.launcher = run.Torchrun(rdzv_port=29531)
    executor.env_vars = {**executor.env_vars, "OMP_NUM_THREADS": "1"}
    result = run.run(run.Partial(_tasks.distributed_sum), executor=executor, name="ddp2", tail_logs=False)
    assert result == {"world_size": 2, "sum": 3.0, "rank": 0}


def test_resubmitting_the_same_job_finds_it(home, executor):
    from nemorun_core.executors.base import Job

    job = Job("once", "exp-idem/once/0", ["bash", "-c", "sleep 5"], "/nonexistent-local")
    first = executor.submit(job)
    second = executor.submit(job)
    assert first.job_id == second.job_id
    assert executor.find(job.key, "").job_id == first.job_id
    executor.cancel(first)


def test_sshd_restart_while_a_job_runs(home, executor):
    exp = run.Experiment("slurm-restart")
    exp.add(run.Script(inline="echo before; sleep 4; echo after"), executor=executor, name="survivor")
    exp.run(detach=True, quiet=True)
    subprocess.run(["bash", os.path.join(REPO, "scripts/services/sshd.sh"), "restart"], check=True, timeout=60,
                   env={**os.environ, "NEMORUN_SSHD_PORT": str(services.ssh().port)})
    statuses = _wait(exp)
    assert statuses["survivor"].state is JobState.SUCCEEDED
    assert run.Experiment.from_id(exp.id).logs("survivor").splitlines() == ["before", "after"]
    from nemorun_core.executors.base import Job

    name = executor.job_name(Job("survivor", f"{exp.id}/survivor/0", [], ""))
    count = "0"
    deadline = time.time() + 30
    while count == "0" and time.time() < deadline:  # slurmdbd records a job 0.1-5 s after it ends: poll
        count = executor.tunnel.run(f"sacct -X -n -P --name {name} -o JobID -S now-1hour | wc -l").stdout.strip()
        time.sleep(0.5)
    assert count == "1", "the job was submitted exactly once"


def test_bad_partition_fails_at_submission_and_leaves_nothing(home, executor, tunnel):
    executor.partition = "nope"
    with pytest.raises(Exception) as info:
        run.run(run.Partial(_tasks.add, a=1), executor=executor, name="badpart", tail_logs=False)
    assert "nope" in str(info.value) or "partition" in str(info.value).lower()
    exp_id = [e["id"] for e in run.Experiment.list() if e["name"] == "badpart"][-1]
    assert not tunnel.exists(f"{tunnel.job_dir}/{exp_id}/badpart"), "nothing left half-uploaded"


def test_unwritable_job_dir_is_a_clear_error(home, executor):
    executor.tunnel.job_dir = "/root/forbidden"
    with pytest.raises(Exception) as info:
        run.run(run.Partial(_tasks.add, a=1), executor=executor, name="noperm", tail_logs=False)
    assert "/root/forbidden" in str(info.value) or "Permission denied" in str(info.value)


def test_submission_error_type(home, executor):
    executor.partition = "nope"
    from nemorun_core.executors.base import Job

    with pytest.raises(SubmissionError) as info:
        executor.submit(Job("x", "exp-bad/x/0", ["true"], "/nonexistent-local"))
    assert "invalid partition" in str(info.value).lower() or "nope" in str(info.value)


def test_packaged_code_runs_on_the_cluster_and_is_uploaded_once(home, executor, tunnel, tmp_path, monkeypatch):
    repo = tmp_path / "project"
    repo.mkdir()
    # content unique to this run: the cluster keeps uploaded code by digest across runs
    (repo / "pkgtask.py").write_text(f"# {time.time_ns()}\ndef shout(word: str) -> str:\n    return word.upper() + '!'\n")
    for args in (["init", "-q"], ["config", "user.email", "t@example.invalid"], ["config", "user.name", "t"],
                 ["add", "."], ["commit", "-q", "-m", "code"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    import pkgtask

    uploads = []
    real_put = tunnel.put
    monkeypatch.setattr(tunnel, "put", lambda local, remote: (uploads.append(remote), real_put(local, remote))[1])
    executor.packager = run.GitArchivePackager()
    executor.env_vars = {}  # the task must import from the uploaded code, not from this checkout
    assert run.run(run.Partial(pkgtask.shout, word="hi"), executor=executor, tail_logs=False) == "HI!"
    assert len(uploads) == 1 and uploads[0].endswith(".tar.gz")
    digest = uploads[0].rsplit("/", 1)[1][: -len(".tar.gz")]
    assert tunnel.exists(f"{tunnel.job_dir}/code/{digest}/pkgtask.py")
    assert run.run(run.Partial(pkgtask.shout, word="again"), executor=executor, tail_logs=False) == "AGAIN!"
    assert len(uploads) == 1, "unchanged code is not uploaded again"


def test_dirty_work_tree_is_refused_before_submission(home, executor, tmp_path, monkeypatch):
    repo = tmp_path / "dirty"
    repo.mkdir()
    (repo / "m.py").write_text("X = 1\n")
    for args in (["init", "-q"], ["config", "user.email", "t@example.invalid"], ["config", "user.name", "t"],
                 ["add", "."], ["commit", "-q", "-m", "code"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "m.py").write_text("X = 2\n")
    monkeypatch.chdir(repo)
    executor.packager = run.GitArchivePackager()
    with pytest.raises(Exception) as info:
        run.run(run.Partial(_tasks.add, a=1), executor=executor, name="dirty", tail_logs=False)
    assert "m.py" in str(info.value) and "include_uncommitted" in str(info.value)


def test_retries_requeue_the_job_until_it_succeeds(home, executor):
    executor.retries = 1
    exp = run.Experiment("slurm-retry")
    # fails on the first attempt, succeeds once Slurm has requeued it
    exp.add(run.Script(inline='echo "attempt ${SLURM_RESTART_COUNT:-0}"; [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]'),
            executor=executor, name="flaky")
    exp.run(quiet=True)
    assert exp.status(quiet=True)["flaky"]["state"] == "SUCCEEDED"
    log = exp.logs("flaky")
    assert "attempt 0" in log and "attempt 1" in log and "requeueing" in log


def test_heterogeneous_job_runs_one_step_across_its_components(home, executor):
    executor.heterogeneous = [run.SlurmResources(nodes=1), run.SlurmResources(nodes=1)]
    exp = run.Experiment("slurm-het")
    exp.add(run.Script(inline='echo "component $SLURM_HET_GROUP_ID? task $SLURM_PROCID of $SLURM_NTASKS"'),
            executor=executor, name="het")
    exp.run(quiet=True)
    assert exp.status(quiet=True)["het"]["state"] == "SUCCEEDED"
    lines = sorted(exp.logs("het").splitlines())
    assert len(lines) == 2 and lines[0].endswith("task 0 of 2") and lines[1].endswith("task 1 of 2")


def test_job_array_elements_all_run_and_the_job_is_their_worst(home, executor):
    executor.array = "0-3"
    exp = run.Experiment("slurm-array")
    exp.add(run.Script(inline='echo "element $SLURM_ARRAY_TASK_ID"'), executor=executor, name="sweep")
    exp.run(quiet=True)
    assert exp.status(quiet=True)["sweep"]["state"] == "SUCCEEDED"
    assert sorted(exp.logs("sweep").splitlines()) == [f"element {i}" for i in range(4)]
    executor.array = "0-2"
    bad = run.Experiment("slurm-array-bad")
    bad.add(run.Script(inline='[ "$SLURM_ARRAY_TASK_ID" != 1 ]'), executor=executor, name="sweep")
    bad.run(quiet=True)
    assert bad.status(quiet=True)["sweep"]["state"] == "FAILED"


@pytest.mark.parametrize("change, fragment", [
    ({"port": 1}, "cannot connect"),
    ({"identity": "bad_key"}, "refused"),
    ({"known_hosts": "wrong_known_hosts"}, "CHANGED"),
])
def test_ssh_problems_fail_at_submission_with_nothing_left(home, executor, change, fragment):
    ssh = services.ssh()
    key, value = next(iter(change.items()))
    if isinstance(value, str):
        value = getattr(ssh, value)
    setattr(executor.tunnel, key, value)
    executor.tunnel.timeout = 5
    with pytest.raises(Exception) as info:
        run.run(run.Partial(_tasks.add, a=1), executor=executor, name="sshfail", tail_logs=False)
    assert fragment in str(info.value)
    exp = run.Experiment.from_id([e["id"] for e in run.Experiment.list() if e["name"] == "sshfail"][-1])
    assert exp.status(quiet=True)["sshfail"]["job_id"] is None, "nothing was submitted"
