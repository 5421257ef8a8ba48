"""Helpers for the tests that run flows through a real ``prefect server`` (the ``prefect_server`` fixture): a
serving subprocess, polling with deadlines, and reading states, task runs and logs back through the client."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def api(prefect_server: str, tmp_path) -> Iterator[str]:
    """Point this process's Prefect client at the session's server, and results at this test's storage."""
    from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from prefect.logging.handlers import APILogWorker

    with temporary_settings(updates={PREFECT_API_URL: prefect_server,
                                     PREFECT_LOCAL_STORAGE_PATH: str(tmp_path / "results")}):
        yield prefect_server
        APILogWorker.drain_all(timeout=10)  # logs of flows run in this process, while the server is known


@pytest.fixture
def home(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh NEMORUN_HOME; afterwards, every job a test left running under it is cancelled."""
    path = str(tmp_path / "home")
    monkeypatch.setenv("NEMORUN_HOME", path)
    yield path
    from nemorun_prefect import cancel_flow_jobs

    runs = os.path.join(path, "prefect")
    for run_dir in os.listdir(runs) if os.path.isdir(runs) else []:
        cancel_flow_jobs(run_dir.removeprefix("prefect-"), timeout=5)


class Served:
    """A subprocess of the test (a serving process, or a flow run in a plain process) in its own process group,
    its log, and a way to kill it."""

    def __init__(self, args: list[str], api_url: str, tmp_path, env: dict[str, str]) -> None:
        self.log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
        full_env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",  # pick up new flow runs within a second (default: 10 s)
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",  # so the test can read the flow's result back
            "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"),
            **env,
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self, sig: int = signal.SIGKILL, grace: float = 20.0) -> None:
        """Send ``sig`` to the whole group (the serving process and its flow-run processes); then SIGKILL to what is
        left of the group once the serving process has exited, or after ``grace`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def serving(args: list[str], api_url: str, tmp_path, **env: str) -> Iterator[Served]:
    served = Served(args, api_url, tmp_path, env)
    try:
        yield served
    finally:
        served.kill(signal.SIGTERM, grace=20.0)


def until(what: str, check, served: Served | None = None, timeout: float = 120.0, interval: float = 0.3):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` (with the serving log) if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            log = f"; serving log:\n{served.log_tail()}" if served else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{log}")
        time.sleep(interval)


def wait_for_deployment(served: Served, name: str):
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    def registered():
        if served.proc.poll() is not None:
            pytest.fail(f"the serving process exited ({served.proc.returncode}):\n{served.log_tail()}")
        with get_client(sync_client=True) as client:
            try:
                return client.read_deployment_by_name(name).id
            except ObjectNotFound:
                return None

    return until(f"deployment {name!r} to be registered", registered, served)


def create_run(deployment_id):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id).id


def read_flow_run(flow_run_id):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def wait_state(served: Served, flow_run_id, *types: str, timeout: float = 120.0):
    """Wait until the flow run's state type is one of ``types`` (or any final state); return the flow run."""
    def reached():
        flow_run = read_flow_run(flow_run_id)
        state = flow_run.state
        if state and (state.type.value in types or (state.is_final() and not types)):
            return flow_run
        return None

    return until(f"flow run {flow_run_id} to reach {types or 'a final state'}", reached, served, timeout)


def task_runs_of(flow_run_id) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=50)
    return {r.name: r for r in runs}


def log_messages(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                limit=200, offset=0)
    return [log.message for log in logs]


def file_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def recorded_job(home: str, flow_run_id, name: str):
    """(executor, handle) of a job of the flow run, read from the record nemorun_prefect wrote at submission."""
    from nemorun_prefect.tasks import read_job_records

    key, ref = read_job_records(os.path.join(home, "prefect", f"prefect-{flow_run_id}"))[name]
    assert ref.handle, f"job {key} has no handle recorded"
    return ref.load_executor(), ref.job_handle()


def until_job_running(served: Served, home: str, flow_run_id, name: str, what: str):
    """Wait until the flow run's job ``name`` is recorded and its backend says RUNNING; return (executor, handle)."""
    from nemorun_core.executors.base import JobState

    def running():
        try:
            executor, handle = recorded_job(home, flow_run_id, name)
        except (KeyError, AssertionError):
            return None
        return (executor, handle) if executor.status(handle).state is JobState.RUNNING else None

    return until(what, running, served)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def cancel_through_api(flow_run_id) -> None:
    """What the UI's Cancel button and ``prefect flow-run cancel`` do: propose a Cancelling state."""
    from prefect import get_client
    from prefect.client.schemas.objects import State, StateType

    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(flow_run_id, State(type=StateType.CANCELLING))
    assert result.status.value == "ACCEPT", result
