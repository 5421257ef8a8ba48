"""Issue 10, item 10: a Docker engine that stops, on a real engine of its own.

The shared test engine is never stopped: this module starts a private one with the project's script
(``scripts/services/docker.sh`` pointed at another state directory, busybox image only: no network needed) and
stops and restarts it as the faults require.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.errors import BackendUnavailableError, SubmissionError
from nemorun_core.executors.base import JobHandle, JobState
from nemorun_core.experiment.tasks import TaskSpec, make_job

pytestmark = pytest.mark.docker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSYBOX = "nemorun-test/busybox:latest"


class PrivateEngine:
    """A dockerd of this module's own, started and stopped by scripts/services/docker.sh."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.socket = os.path.join(state_dir, "docker", "docker.sock")
        self.host = f"unix://{self.socket}"

    def _script(self, action: str) -> None:
        env = {**os.environ, "NEMORUN_SERVICES_DIR": self.state_dir, "NEMORUN_DOCKER_IMAGES": "busybox"}
        env.pop("DOCKER_HOST", None)
        done = subprocess.run(["bash", os.path.join(REPO, "scripts/services/docker.sh"), action], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"docker.sh {action} failed:\n{done.stderr[-3000:]}"

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")  # dockerd stops its containers (TERM, then KILL after their grace) before it exits


@pytest.fixture(scope="module")
def private_engine():
    state_dir = tempfile.mkdtemp(prefix="nr-dfault-")
    engine = PrivateEngine(state_dir)
    engine.start()
    try:
        yield engine
    finally:
        try:
            engine.stop()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def engine_up(private_engine):
    """The private engine, running at the start of the test (a test before may have stopped it)."""
    private_engine.start()
    return private_engine


def shell_job(ex, tmp_path, body: str):
    job_dir = tmp_path / "task"
    job_dir.mkdir(parents=True, exist_ok=True)
    script = run.Script(inline=textwrap.dedent(body), entrypoint="sh")
    return make_job(TaskSpec("task", script, ex, []), f"t{uuid.uuid4().hex[:10]}/task/0", str(job_dir))


def test_engine_down_at_submission_is_a_clear_error_and_nothing_is_made(engine_up, tmp_path):
    ex = run.DockerExecutor(container_image=BUSYBOX, docker_host=engine_up.host)
    job = shell_job(ex, tmp_path, "echo never")
    engine_up.stop()
    with pytest.raises(SubmissionError) as info:
        ex.submit(job)
    assert isinstance(info.value, BackendUnavailableError), "an outage, not a bad setting"
    message = str(info.value)
    assert engine_up.socket in message and "does not answer" in message and "nothing of the job" in message
    assert "ConnectionError" not in message and "urllib3" not in message
    assert os.listdir(job.job_dir) == [], "nothing half-made: no job files written"
    # Every other call says the same about the engine, and that the job may still be running.
    handle = JobHandle.create("docker", "0" * 64, job.key, job.job_dir, containers="0" * 64,
                              docker_host=engine_up.host)
    for call in (lambda: ex.status(handle), lambda: list(ex.logs(handle)), lambda: ex.cancel(handle),
                 lambda: ex.find(job.key, job.job_dir), lambda: list(ex.logs(handle, follow=True))):
        with pytest.raises(BackendUnavailableError, match="may still be running") as err:
            call()
        assert engine_up.socket in str(err.value)


def test_engine_stopped_while_following_then_restarted_reports_what_happened(engine_up, tmp_path):
    ex = run.DockerExecutor(container_image=BUSYBOX, docker_host=engine_up.host)
    job = shell_job(ex, tmp_path, """
        trap 'exit 143' TERM
        echo started
        sleep 600 &
        wait
    """)
    handle = ex.submit(job)
    deadline = time.time() + 120
    while "started" not in list(ex.logs(handle)):
        assert time.time() < deadline, f"the job did not start: {ex.status(handle)}"
        time.sleep(0.2)

    followed: dict = {"lines": [], "error": None}

    def follow() -> None:
        try:
            for line in ex.logs(handle, follow=True):
                followed["lines"].append(line)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            followed["error"] = exc

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.5)
    engine_up.stop()
    follower.join(timeout=120)
    assert not follower.is_alive(), "following hung on a stopped engine"
    if followed["error"] is not None:  # the stream was cut (else it ended with the container)
        assert isinstance(followed["error"], BackendUnavailableError), repr(followed["error"])
        assert engine_up.socket in str(followed["error"])
    assert "started" in followed["lines"]
    with pytest.raises(BackendUnavailableError) as err:
        ex.status(handle)
    assert engine_up.socket in str(err.value) and "re-attach" in str(err.value)

    engine_up.start()
    st = ex.status(handle)
    assert st.state is JobState.FAILED, st
    assert "stopped by the Docker engine" in st.message, st
    assert ex.status(handle).message == st.message, "the outcome is kept"
    assert "started" in list(ex.logs(handle))
