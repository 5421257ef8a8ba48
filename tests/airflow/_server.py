"""A real Airflow 3 deployment for tests and benchmarks: api-server, scheduler, dag-processor and triggerer.

Each component is its own ``airflow`` process (own session, so stopping it stops its workers too), sharing one
AIRFLOW_HOME: SQLite database, LocalExecutor, the Simple auth manager with every request an admin (no token needed),
everything on 127.0.0.1 and a free port. Separate processes rather than ``airflow standalone``: the same four
components without the extra supervising process, and each one's pid and log are at hand (the triggerer's pid for
``bench/bench_airflow.py``, the log tails for a start-up failure).

Start-up is tuned for a small machine: one API worker, one parsing process, a DAG folder rescanned every second,
and a short scheduler heartbeat, so a DAG file written by a test is runnable within a few seconds.

    with AirflowServer.start(tmp_dir) as server:
        server.write_dag("my_dag.py", source)
        server.wait_for_dag("my_dag")
        run = server.trigger("my_dag")
        server.wait_for_run("my_dag", run["dag_run_id"])
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

# Component -> its command line. The scheduler and the triggerer serve no logs: every component shares this
# machine's AIRFLOW_HOME/logs, so the API server reads task and trigger logs from files (and no fixed-port listener
# on all interfaces clashes with another deployment).
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
HEALTH = {"scheduler": "scheduler", "dag_processor": "dag-processor", "triggerer": "triggerer"}
TERMINAL_RUN_STATES = ("success", "failed")


class AirflowServerError(RuntimeError):
    """A component did not start or stopped, or the REST API answered an error."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every component (and ``airflow`` CLI call) of one deployment shares."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    base_url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(home, "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{os.path.join(home, 'airflow.db')}",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        # One secret per deployment, shared by the components that sign and check task tokens.
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",  # new files are parsed when found
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


#: How often :meth:`AirflowServer.api` sends a request again after SQLite's lock made the server answer 500.
_DB_ERROR_RETRIES = 4


@dataclasses.dataclass
class AirflowServer:
    """One running deployment. Use :meth:`start`; :meth:`stop` (or leaving the ``with``) ends every component.

    Attributes:
        home: its AIRFLOW_HOME (database, logs, ``dags/``).
        port: the API server's port on 127.0.0.1.
        env: the environment its components run with (for ``airflow`` CLI calls against it).
        processes: component name -> its process.
    """

    home: str
    port: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags_folder(self) -> str:
        return os.path.join(self.home, "dags")

    def log_path(self, component: str) -> str:
        return os.path.join(self.home, "components", f"{component}.log")

    # -- life cycle -------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, home: str, *, timeout: float = 180, env: dict[str, str] | None = None) -> "AirflowServer":
        """Migrate a fresh database in ``home``, start the four components and wait until all report healthy.

        Args:
            home: an empty directory for AIRFLOW_HOME.
            timeout: seconds for the whole start-up.
            env: extra environment for every component (``AIRFLOW__...`` settings, ``PYTHONPATH``).

        Raises:
            AirflowServerError: the migration failed, a component exited, or health was not reached in time; the
                message holds the tail of each component's log.
        """
        port = free_port()
        server = cls(home, port, airflow_env(home, port, env))
        os.makedirs(server.dags_folder, exist_ok=True)
        os.makedirs(os.path.dirname(server.log_path("x")), exist_ok=True)
        deadline = time.monotonic() + timeout
        migrate = server.cli("db", "migrate", timeout=timeout)
        if migrate.returncode != 0:
            raise AirflowServerError(f"airflow db migrate failed ({migrate.returncode}):\n"
                                     f"{(migrate.stdout + migrate.stderr)[-3000:]}")
        try:
            for name in COMPONENTS:
                server._spawn(name)
            server.wait_healthy(deadline - time.monotonic())
        except BaseException:
            server.stop()
            raise
        return server

    def _spawn(self, name: str) -> None:
        with open(self.log_path(name), "ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *COMPONENTS[name]], env=self.env, cwd=self.home,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        """Block until ``/api/v2/monitor/health`` reports every component healthy; returns that answer."""
        deadline = time.monotonic() + timeout
        last: Any = "no answer yet"
        while time.monotonic() < deadline:
            self.check_running()
            try:
                health = self.api("GET", "/api/v2/monitor/health", timeout=5)
            except (OSError, AirflowServerError) as exc:
                last = exc
            else:
                last = health
                if health.get("metadatabase", {}).get("status") == "healthy" and all(
                        (health.get(key) or {}).get("status") == "healthy" for key in HEALTH):
                    return health
            time.sleep(0.5)
        raise AirflowServerError(f"Airflow was not healthy after {timeout:.0f} s (last: {last}){self.log_tails()}")

    def check_running(self) -> None:
        """Raise AirflowServerError (with log tails) if a component has exited."""
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise AirflowServerError(f"Airflow component(s) exited: {dead}{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for name in self.processes:
            try:
                with open(self.log_path(name), errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                tail = []
            out.append(f"\n--- {name} ({self.log_path(name)}) ---\n" + "\n".join(tail))
        return "".join(out)

    def stop(self, grace: float = 15) -> None:
        """Stop every component: SIGTERM, a second SIGTERM after 3 s, SIGKILL of its group after ``grace`` s.

        The scheduler's whole group gets the SIGTERM (its LocalExecutor waits for its workers, which must stop
        too); the triggerer alone does (it stops its trigger runner itself). Airflow components take a second signal
        as "stop now": the triggerer otherwise often waits 10 s for its runner.
        """
        for name, proc in self.processes.items():
            if name == "triggerer":
                proc.send_signal(signal.SIGTERM)
            else:
                _signal_group(proc, signal.SIGTERM)
        start = time.monotonic()
        for proc in self.processes.values():
            _wait(proc, start + 3 - time.monotonic())
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            _wait(proc, start + grace - time.monotonic())
            _signal_group(proc, signal.SIGKILL)  # whatever is left of the group: workers a component forked
            _wait(proc, 5)

    def __enter__(self) -> "AirflowServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- airflow CLI and REST API ----------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ARGS`` against this deployment."""
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        """One REST call (``/api/v2/...``); returns the decoded JSON answer (None for an empty one).

        Raises:
            AirflowServerError: the API answered an HTTP error (its body is in the message).
        """
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(_DB_ERROR_RETRIES + 1):
            request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                             headers={"Content-Type": "application/json",
                                                      "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    text = response.read().decode()
                return json.loads(text) if text.strip() else None
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                # SQLite lets one writer at a time: with the scheduler, the DAG processor and the triggerer writing
                # on two busy cores, the API server's write can outwait its lock and answer 500 "Database error"
                # (its transaction rolled back, so the same request can be sent again). Not a nemorun behaviour.
                if exc.code == 500 and "Database error" in detail and attempt < _DB_ERROR_RETRIES:
                    time.sleep(1 + attempt)
                    continue
                raise AirflowServerError(f"{method} {path} -> HTTP {exc.code}: {detail}") from None
        raise AssertionError("unreachable")

    # -- DAGs and runs ----------------------------------------------------------------------------------------------
    def write_dag(self, file_name: str, source: str) -> str:
        """Write a DAG file into the DAGs folder (atomically, so the processor never parses half a file)."""
        path = os.path.join(self.dags_folder, file_name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(source)
        os.replace(tmp, path)
        return path

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any]:
        """Block until the DAG processor has parsed ``dag_id`` (or raise with its import errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                return self.api("GET", f"/api/v2/dags/{dag_id}")
            except AirflowServerError as exc:
                if "HTTP 404" not in str(exc):
                    raise
            time.sleep(0.5)
        errors = self.api("GET", "/api/v2/importErrors")
        raise AirflowServerError(f"DAG {dag_id!r} was not parsed within {timeout:.0f} s; import errors: "
                                 f"{errors}{self.log_tails()}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Unpause ``dag_id`` and start a run of it now; returns the run as the API describes it."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 120) -> dict[str, Any]:
        """Block until the run is ``success`` or ``failed``; returns it."""
        return self.wait_until(lambda: self.run_state(dag_id, run_id), lambda r: r["state"] in TERMINAL_RUN_STATES,
                               timeout, f"run {run_id} of {dag_id} to end")

    def run_state(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]

    def wait_until(self, fetch: Any, done: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
        """Call ``fetch()`` until ``done(value)``; raise with the last value and the log tails after ``timeout``."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            self.check_running()
            value = fetch()
            if done(value):
                return value
            time.sleep(interval)
        raise AirflowServerError(f"timed out after {timeout:.0f} s waiting for {what}; last: {value}"
                                 f"{self.log_tails()}")


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(max(0.1, timeout))
    except subprocess.TimeoutExpired:
        pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
