"""A pre-started interpreter that starts local Python jobs by forking, instead of a fresh interpreter per job.

A fresh ``python -m nemorun_core.runner`` costs about 20 ms of interpreter start-up and imports before the task's
own code runs; for experiments of many short tasks that is most of the time. The fork server is started once per
submitting process (with the runner's modules already imported) and, for each job, forks a *supervisor* that does
what ``launch.sh`` does: it starts a new session (the job's own process group), sends output to ``log.out``,
enters the working directory, forks one process per rank that runs the runner in-process, waits for them, and
writes ``launcher.json``. The job's handle, files, status, logs and cancel are the same as for ``launch.sh``.

The server reads one JSON request per line on stdin and answers one JSON line on stdout; it exits when stdin
closes (its submitting process is gone). Jobs it started keep running: they are in their own sessions.
Requests carry the job's environment, secrets included, through the pipe only; nothing is written to disk.

Used only where forking is equivalent to a fresh interpreter (see ``LocalExecutor._fork_eligible``): Python tasks,
no launcher, the default interpreter, and no change to ``PYTHON*`` variables other than ``PYTHONPATH`` (applied to
``sys.path``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from nemorun_core.jobfiles import JobFiles

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ForkServer:
    """Client side: one server process per (submitting process, interpreter)."""

    def __init__(self, python: str):
        self.python = python
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        from nemorun_core.secrets import without_held

        env = without_held(dict(os.environ))
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        return subprocess.Popen(
            [self.python, "-m", "nemorun_core.executors.forkserver"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the user's script must not reach it
            env=env, close_fds=True,
        )

    def start(self) -> None:
        """Start the server process if it is not running; returns at once (its imports go on in the background)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()

    def spawn(self, request: dict[str, Any]) -> tuple[int, str]:
        """Start one job; return (supervisor pid, its start time). Raises OSError if the server is unusable."""
        line = (json.dumps(request) + "\n").encode()
        with self._lock:
            for attempt in (1, 2):
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = self._start()
                try:
                    assert self._proc.stdin is not None and self._proc.stdout is not None
                    self._proc.stdin.write(line)
                    self._proc.stdin.flush()
                    answer = self._proc.stdout.readline()
                except (BrokenPipeError, OSError):
                    answer = b""
                if answer:
                    reply = json.loads(answer)
                    if "error" in reply:
                        raise OSError(reply["error"])
                    return int(reply["pid"]), str(reply["start"])
                self._proc = None  # the server died (killed?): start a new one, once
        raise OSError("the local fork server did not answer")


_SERVERS: dict[str, ForkServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(python: str) -> ForkServer:
    """The fork server of this process for ``python`` (created on first use; one per process, like the
    ``multiprocessing`` fork server, so that every executor copy in an experiment shares it)."""
    with _SERVERS_LOCK:
        if python not in _SERVERS:
            _SERVERS[python] = ForkServer(python)
        return _SERVERS[python]


# -- the server -----------------------------------------------------------------------------------------------------
def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by signal N -> 128 + N, as a shell reports it


def _run_rank(job_dir: str, rank_env: dict[str, str]) -> None:
    """In a forked rank process: become the runner, as ``python -m nemorun_core.runner JOB_DIR`` would, with the
    rank environment the request rendered for it (``executors/ranks.py``, the same as in ``launch.sh``)."""
    from nemorun_core import runner

    os.environ.update(rank_env)
    sys.argv = [runner.__file__, job_dir]
    code = 1
    try:
        code = runner.main([job_dir])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


_TERM_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _supervise(req: dict[str, Any], ready: int) -> None:
    """In the forked supervisor: the same steps as launch.sh. Never returns.

    ``ready`` is written (and closed) once this process leads its own session and handles TERM, so that the server
    reports the job only when a cancel (a TERM to the group) can reach it; until then TERM is blocked.
    """
    job_dir = req["job_dir"]
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    fd = os.open(JobFiles(job_dir).log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)

    def finish(codes: list[int]) -> None:
        fd = os.open(JobFiles(job_dir).launcher, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as f:
            f.write(json.dumps({"exit_codes": codes}) + "\n")
        os._exit(0)

    os.environ.clear()
    os.environ.update(req["env"])
    for entry in reversed(req.get("python_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        os.chdir(req["cwd"])
    except OSError:
        print(f"nemorun: cannot enter the working directory {req['cwd']}", file=sys.stderr, flush=True)
        finish([127])

    grace = float(req.get("grace", 10.0))
    terminated = []

    def on_term(signum: int, _frame: Any) -> None:
        # The whole group got the signal; if a rank ignores it, kill the group after the grace period.
        terminated.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, lambda *_: os.killpg(0, signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, max(grace, 0.001))

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_term)
    os.write(ready, b"1")
    os.close(ready)
    ntasks = int(req.get("ntasks", 1))
    rank_envs = req.get("rank_env") or [{}] * ntasks
    pids = []
    for rank in range(ntasks):
        # Blocked across the fork: a TERM arriving now is handled by the rank with the default action (once its
        # handlers are reset), never by a copy of on_term in the rank, which would swallow it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _TERM_SIGNALS)
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM_SIGNALS)
            _run_rank(job_dir, rank_envs[rank])
        pids.append(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM_SIGNALS)
    if terminated:
        # Cancelled before every rank existed: the ranks started since never got the group's signal.
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    codes = [_exit_code(os.waitpid(pid, 0)[1]) for pid in pids]  # waitpid retries on EINTR (PEP 475)
    signal.setitimer(signal.ITIMER_REAL, 0)
    finish(codes)


def _start_time(pid: int) -> str:
    from nemorun_core.executors.procs import proc_stat

    found = proc_stat(pid)
    return found[1] if found else ""  # "": already finished and reaped: the job's files tell its outcome


def serve() -> None:
    # Preload what every job needs, so a fork starts with it imported.
    from nemorun_core import runner  # noqa: F401
    from nemorun_core.config import serialize  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            read_end, write_end = os.pipe()
            signal.pthread_sigmask(signal.SIG_BLOCK, _TERM_SIGNALS)
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(read_end)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM_SIGNALS)
                    _supervise(req, write_end)
                finally:
                    os._exit(1)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM_SIGNALS)
            os.close(write_end)
            try:
                os.read(read_end, 1)  # "" if the supervisor died first: its files tell what happened
            finally:
                os.close(read_end)
            reply = {"pid": pid, "start": _start_time(pid)}
        except Exception as exc:  # a bad request or a failed fork: answer, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write((json.dumps(reply) + "\n").encode())
        out.flush()


if __name__ == "__main__":
    serve()
