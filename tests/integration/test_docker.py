"""DockerExecutor against the project's real Docker engine (scripts/services/docker.sh): no bridge, no pulls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.errors import JobFailedError, SubmissionError
from nemorun_core.executors.base import JobHandle, JobState
from nemorun_core.experiment.tasks import TaskSpec, make_job
from tests.integration import _tasks, services

pytestmark = pytest.mark.docker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def engine():
    svc = services.docker()
    import docker

    client = docker.DockerClient(base_url=svc.host)
    yield svc, client
    client.close()


@pytest.fixture
def tag():
    """A unique prefix for this test's job keys; the test's containers are removed afterwards."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _remove_containers(engine, tag, tmp_path):
    yield
    _, client = engine
    for c in client.containers.list(all=True, filters={"label": "nemorun.key"}):
        if c.labels.get("nemorun.key", "").startswith(tag) or c.labels.get("nemorun.job_dir", "").startswith(
                str(tmp_path)):
            c.remove(force=True)


def executor(engine, image: str = "python", **kwargs) -> run.DockerExecutor:
    svc, _ = engine
    return run.DockerExecutor(container_image=getattr(svc, image), docker_host=svc.host, **kwargs)


def job_for(ex, task, tmp_path, tag: str, name: str = "task"):
    job_dir = tmp_path / name
    job_dir.mkdir(parents=True, exist_ok=True)
    return make_job(TaskSpec(name, task, ex, []), f"{tag}/{name}/0", str(job_dir))


def wait(ex, handle, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = ex.status(handle)
        if st.is_terminal:
            return st
        time.sleep(0.2)
    raise AssertionError(f"job not finished after {timeout} s: {ex.status(handle)}")


def labelled(client, key: str):
    return client.containers.list(all=True, filters={"label": f"nemorun.key={key}"})


def test_partial_returns_its_value_with_env(engine, home):
    ex = executor(engine, env_vars={"NR_A": "1", "NR_B": "x y"})
    assert run.run(run.Partial(_tasks.add, a=2, b=3), executor=ex, tail_logs=False) == 5
    got = run.run(run.Partial(_tasks.echo_env, names=["NR_A", "NR_B", "NEMORUN_JOB_KEY"]), executor=ex,
                  tail_logs=False)
    assert got["NR_A"] == "1" and got["NR_B"] == "x y" and got["NEMORUN_JOB_KEY"]


def test_failure_reports_the_runners_error_and_keeps_the_container(engine, tmp_path, tag):
    ex = executor(engine)
    job = job_for(ex, run.Partial(_tasks.fail, message="disk on fire"), tmp_path, tag)
    handle = ex.submit(job)
    st = wait(ex, handle)
    assert st.state is JobState.FAILED and st.exit_code == 1
    assert "RuntimeError: disk on fire" in st.message
    assert "about to fail" in list(ex.logs(handle))
    assert labelled(engine[1], job.key), "cleanup='on_success' keeps failed containers for inspection"
    # and run.run raises with the error
    with pytest.raises(JobFailedError, match="disk on fire"):
        run.run(run.Partial(_tasks.fail, message="disk on fire"), executor=ex, tail_logs=False,
                home=str(tmp_path / "home"))


def test_oom_killed_says_out_of_memory(engine, tmp_path, tag):
    ex = executor(engine, extra_args={"mem_limit": "50m", "memswap_limit": "50m"})
    script = run.Script(inline="x = bytearray(200 * 1024 * 1024)\nprint('survived')", entrypoint="python")
    handle = ex.submit(job_for(ex, script, tmp_path, tag))
    st = wait(ex, handle)
    assert st.state is JobState.FAILED
    assert "out of memory (OOM killed)" in st.message, st


def test_missing_image_is_a_clear_error_and_creates_nothing(engine, tmp_path, tag):
    ex = executor(engine)
    ex.container_image = "nemorun-test/does-not-exist:1"
    job = job_for(ex, run.Partial(_tasks.add, a=1), tmp_path, tag)
    with pytest.raises(SubmissionError) as info:
        ex.submit(job)
    assert "nemorun-test/does-not-exist:1 is not on this Docker engine" in str(info.value)
    assert "never pulls" in str(info.value)
    assert labelled(engine[1], job.key) == []
    assert engine[1].images.list(name="nemorun-test/does-not-exist") == []


def test_logs_by_offset_and_follow(engine, tmp_path, tag):
    ex = executor(engine)
    script = run.Script(inline=textwrap.dedent("""
        import time
        for i in range(5):
            print(f"line {i}", flush=True)
            time.sleep(0.3)
    """), entrypoint="python")
    handle = ex.submit(job_for(ex, script, tmp_path, tag))
    assert list(ex.logs(handle, follow=True, offset=2)) == ["line 2", "line 3", "line 4"]
    assert wait(ex, handle).state is JobState.SUCCEEDED
    # succeeded: the container is removed, its log stays readable from the job directory
    assert labelled(engine[1], handle.key) == []
    assert list(ex.logs(handle, offset=3)) == ["line 3", "line 4"]
    assert ex.log_tail(handle, 2) == ["line 3", "line 4"]
    assert ex.status(handle).state is JobState.SUCCEEDED


def test_cancel_stops_the_container(engine, tmp_path, tag):
    ex = executor(engine, cancel_grace_s=3)
    handle = ex.submit(job_for(ex, run.Partial(_tasks.sleep_forever, child=False), tmp_path, tag))
    deadline = time.time() + 30
    while ex.status(handle).state is not JobState.RUNNING and time.time() < deadline:
        time.sleep(0.1)
    started = time.time()
    ex.cancel(handle)
    assert time.time() - started < 2, "cancel does not block"
    st = wait(ex, handle, timeout=30)
    assert st.state is JobState.CANCELLED, st
    ex.cancel(handle)  # idempotent
    assert ex.status(handle).state is JobState.CANCELLED


def test_several_containers_per_job_get_ranks(engine, tmp_path, tag):
    ex = executor(engine, ntasks_per_node=2)
    script = run.Script(inline=textwrap.dedent("""
        import os
        with open(os.path.join(os.environ["NEMORUN_JOB_DIR"], "rank" + os.environ["RANK"]), "w") as f:
            f.write(os.environ["WORLD_SIZE"] + " " + os.environ["LOCAL_RANK"])
    """), entrypoint="python")
    job = job_for(ex, script, tmp_path, tag)
    handle = ex.submit(job)
    assert len(handle.extra("containers").split(",")) == 2
    assert wait(ex, handle).state is JobState.SUCCEEDED
    assert (tmp_path / "task" / "rank0").read_text() == "2 0"
    assert (tmp_path / "task" / "rank1").read_text() == "2 1"
    assert ex.submit(job) == handle, "submit is idempotent by key"


def test_one_failing_rank_fails_the_job(engine, tmp_path, tag):
    ex = executor(engine, ntasks_per_node=2)
    script = run.Script(inline="import os, sys; sys.exit(3 if os.environ['RANK'] == '1' else 0)", entrypoint="python")
    st = wait(ex, ex.submit(job_for(ex, script, tmp_path, tag)))
    assert st.state is JobState.FAILED and "rank 1" in st.message and st.exit_code == 3


def test_a_failed_rank_stops_the_others(engine, tmp_path, tag):
    ex = executor(engine, ntasks_per_node=2, cancel_grace_s=1)
    script = run.Script(inline="import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(4)\ntime.sleep(300)",
                        entrypoint="python")
    started = time.time()
    st = wait(ex, ex.submit(job_for(ex, script, tmp_path, tag)), timeout=30)
    assert st.state is JobState.FAILED and "rank 1" in st.message and st.exit_code == 4
    assert time.time() - started < 20


def test_reattach_after_the_launcher_was_killed(engine, tmp_path, tag):
    ex = executor(engine)
    job = job_for(ex, run.Partial(_tasks.sleep_and_record, seconds=2, marker_dir=str(tmp_path), label="done"),
                  tmp_path, tag)
    code = textwrap.dedent(f"""
        import json, sys, time
        import nemorun_core as run
        from nemorun_core.executors.base import Job
        ex = run.DockerExecutor(container_image={ex.container_image!r}, docker_host={ex.docker_host!r})
        job = Job(**json.loads(sys.argv[1]))
        h = ex.submit(job)
        print(h.to_json(), flush=True)
        time.sleep(600)
    """)
    fields = {k: getattr(job, k) for k in ("name", "key", "command", "job_dir", "env", "files")}
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(fields)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    try:
        printed = JobHandle.from_json(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    found = ex.find(job.key, job.job_dir)
    assert found is not None and found.job_id == printed.job_id
    assert wait(ex, found).state is JobState.SUCCEEDED
    assert json.loads((tmp_path / "task" / "result.json").read_text()) == {"value": "done"}


@pytest.mark.parametrize("cleanup,kept", [("never", True), ("always", False)])
def test_cleanup_policy(engine, tmp_path, tag, cleanup, kept):
    ex = executor(engine, cleanup=cleanup)
    handle = ex.submit(job_for(ex, run.Partial(_tasks.fail, message="nope"), tmp_path, tag))
    st = wait(ex, handle)
    assert st.state is JobState.FAILED and "nope" in st.message
    assert bool(labelled(engine[1], handle.key)) is kept
    again = ex.status(handle)  # after removal: from the outcome kept in the job directory
    assert again.state is JobState.FAILED and "nope" in again.message
    assert "about to fail" in list(ex.logs(handle))


def test_pattern_packager_code_is_mounted(engine, tmp_path, tag, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymod.py").write_text("VALUE = 'packaged'\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    ex = executor(engine, packager=run.PatternPackager(include=["*.py"]))
    script = run.Script(inline="import mymod; print(mymod.VALUE)", entrypoint="python")
    handle = ex.submit(job_for(ex, script, tmp_path, tag))
    assert wait(ex, handle).state is JobState.SUCCEEDED
    assert list(ex.logs(handle)) == ["packaged"]


def test_image_packager_builds_once_and_reuses_the_tag(engine, tmp_path, tag, monkeypatch):
    from docker.models.images import ImageCollection

    project = tmp_path / "project"
    project.mkdir()
    (project / "mymod.py").write_text(f"VALUE = {tag!r}\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    builds = []
    real_build = ImageCollection.build
    monkeypatch.setattr(ImageCollection, "build", lambda self, **kw: builds.append(kw["tag"]) or real_build(self, **kw))
    svc, client = engine
    packager = run.DockerImagePackager(svc.python, packager=run.PatternPackager(include=["*.py"]), workdir="/app")
    ex = executor(engine, packager=packager)
    script = run.Script(inline="import mymod; print(mymod.VALUE)", entrypoint="python")
    try:
        first = ex.submit(job_for(ex, script, tmp_path, tag, name="first"))
        assert wait(ex, first).state is JobState.SUCCEEDED
        assert list(ex.logs(first)) == [tag]
        second = ex.submit(job_for(ex, script, tmp_path, tag, name="second"))
        assert wait(ex, second).state is JobState.SUCCEEDED
        assert len(builds) == 1 and builds[0].startswith("nemorun-code:")
        assert client.images.get(builds[0]).attrs["Config"]["WorkingDir"] == "/app"
    finally:
        for t in builds:
            client.images.remove(t, force=True)


def test_torchrun_two_processes_in_a_container(home):
    """A real 2-process torch.distributed (gloo, CPU) job in Docker. The test image has Debian's python3.11 but no
    torch: the test environment's torch (a cp311 wheel) is mounted read-only and put on PYTHONPATH."""
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    executor = run.DockerExecutor(
        container_image=services.docker().python, docker_host=services.docker().host, network="none",
        ntasks_per_node=2, launcher="torchrun", volumes=[f"{site}:/opt/torch-site:ro"],
        env_vars={"PYTHONPATH": "/opt/torch-site", "OMP_NUM_THREADS": "1"}, shm_size="256m")
    result = run.run(run.Partial(_tasks.distributed_sum), executor=executor, name="ddp-docker", tail_logs=False)
    assert result == {"world_size": 2, "sum": 3.0, "rank": 0}


def test_a_secret_marked_job_through_run_run_keeps_values_out_of_the_engine(engine, home):
    """Issue 10 item 6 end to end: run.run with a run.Secret under a neutral name and a two-line token; the task
    sees both exactly, and no container the engine still holds (none: it succeeded) or the store shows them."""
    from tests.integration.conftest import store_files

    ex = executor(engine, env_vars={"API_TOKEN": "line1\nline2\n", "MY_VALUE": run.Secret("neutral-4c1d")})
    got = run.run(run.Partial(_tasks.echo_env, names=["API_TOKEN", "MY_VALUE"]), executor=ex, tail_logs=False)
    assert got == {"API_TOKEN": "line1\nline2\n", "MY_VALUE": "neutral-4c1d"}
    for path in store_files(home):
        if not path.endswith("result.json"):
            with open(path, "rb") as f:
                data = f.read()
            assert b"neutral-4c1d" not in data and b"line1\\nline2" not in data and b"line1\nline2" not in data, path


def test_follow_log_gets_every_line_once_through_poll_many(engine, tmp_path, tag):
    """What an orchestrator does (executors.base.follow_log): DockerExecutor.poll_many rounds, then the saved log;
    lines with a carriage return keep one numbering while running and once saved, so none is repeated or lost."""
    from nemorun_core.executors.base import follow_log

    ex = executor(engine, image="busybox", network="none")
    script = run.Script(inline='for i in 1 2 3; do printf "bar %s\\r" "$i"; echo "line $i"; sleep 1; done',
                        entrypoint="sh")
    handle = ex.submit(job_for(ex, script, tmp_path, tag))
    got: list = []
    status, offset = follow_log(ex, handle, got.append, poll=0.3)
    assert status.state is JobState.SUCCEEDED
    assert got == [f"bar {i}\rline {i}" for i in (1, 2, 3)] and offset == 3
    assert list(ex.logs(handle)) == got
