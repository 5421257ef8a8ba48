"""Fixtures for the Prefect-side tests (run in .venvs/prefect).

Prefect reads PREFECT_HOME and its settings from the environment, so they are pointed at a temp dir before any
test module imports prefect: no test writes to the user's ~/.prefect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_PREFECT_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _PREFECT_HOME
    _PREFECT_HOME = tempfile.mkdtemp(prefix="nemorun-test-prefect-home-")
    os.environ["PREFECT_HOME"] = _PREFECT_HOME
    # No telemetry calls and no UI build from the test servers; the machine has no internet anyway.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREFECT_HOME:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API server (temporary database) for the whole session.

    Starting it takes 10-20 s, so every Prefect test shares one.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server start`` process for the session; yields its API URL (``http://127.0.0.1:PORT/api``).

    It has its own PREFECT_HOME (so its own SQLite database) in a temp dir, listens on 127.0.0.1 on a free port, with
    no UI and no analytics, and is stopped with its children at the end. It is separate from ``prefect_harness``:
    nothing points at it by default, tests set ``PREFECT_API_URL`` to it for their own calls and subprocesses.
    Starting it takes about 10 s here.
    """
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("prefect-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(root / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_UI_ENABLED="false")
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui", "--analytics-off"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the whole server stops at the end
        )

    def stop() -> None:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue

    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                reason = f"exited with status {proc.returncode}"
                break
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        reason = ""
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                reason = "did not answer /api/health within 120 s"
                break
            time.sleep(0.25)
    except BaseException:
        stop()
        raise
    if reason:
        stop()
        tail = log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"prefect server on {url} {reason}; its log ({log_path}) ends with:\n{tail}", pytrace=False)
    try:
        yield url
    finally:
        stop()
