"""``LocalExecutor``: run a job as real processes on this machine.

Each job is started as a small POSIX ``sh`` supervisor (``launch.sh`` in the job directory, which is exactly what
``dryrun`` returns) in a new session, so the job has its own process group. The supervisor starts one process per
task (``ntasks_per_node``) or one launcher process (torchrun), waits for all of them and writes ``launcher.json``
(the exit codes). Output goes to ``log.out``. Because the supervisor, not the submitting Python process,
is the parent of the task processes, a job keeps running and its outcome is still recorded when the submitting
process dies; its status is then read from files and ``/proc``, never left RUNNING forever.

A shell supervisor (about 1 ms to start) rather than a Python one (about 12 ms) keeps the per-task overhead of an
experiment of many small tasks close to that of starting the task processes by hand. Python tasks go one step
further: a pre-started interpreter forks the supervisor and the rank processes (``forkserver.py``), which does the
same as ``launch.sh`` without a fresh interpreter per job; ``fork_server=False`` runs ``launch.sh`` itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, ClassVar, Iterator, Optional, Sequence

from nemorun_core.errors import ConfigError, SubmissionError
from nemorun_core.executors import ranks
from nemorun_core.executors.base import (
    Executor,
    Job,
    JobHandle,
    JobState,
    JobStatus,
    Capability,
    LocalJobFiles,
    SubmitRequest,
    describe_exit,
    resolve_argv,
    runner_command,
)
# check_arg_list / check_interpreter were defined here first: kept importable from this module.
from nemorun_core.executors.fields import (check_arg_list, check_count, check_env_vars,  # noqa: F401
                                           check_interpreter, check_seconds)
from nemorun_core.executors.files import read_json, read_lines, write_atomic
from nemorun_core.executors.lines import LineBuffer, decode
from nemorun_core.executors.procs import ended, proc_stat, signal_probe
from nemorun_core.jobfiles import JobFiles
from nemorun_core.packaging.base import check_packager, packages_code
from nemorun_core.secrets import is_secret, without_held

# The job directory's names, from their one definition (kept as module names for existing imports).
LAUNCH_SCRIPT = JobFiles.LAUNCH_SCRIPT
LAUNCHER_FILE = JobFiles.LAUNCHER
HANDLE_FILE = JobFiles.HANDLE
CANCEL_FILE = JobFiles.CANCEL
LOG_FILE = JobFiles.LOG
@dataclasses.dataclass(frozen=True)
class LocalPlan:
    """What :meth:`LocalExecutor.prepare` decided for one job: all its request depends on beyond the job and the
    executor's settings.

    Attributes:
        cwd: the absolute working directory the supervisor enters before it starts the task.
        master_port: the rendezvous port of a job of several processes (``MASTER_PORT``, see ``ranks``); None
            for other jobs, and where a plan does not say, the job's preferred port.
    """

    cwd: str
    master_port: Optional[int] = None


@dataclasses.dataclass(kw_only=True)
class LocalExecutor(LocalJobFiles, Executor):
    """Run tasks as processes on this machine.

    Args:
        env_vars: environment variables for the task's processes (added to the submitting process's environment;
            a ``PYTHONPATH`` here is put in front of the inherited one rather than replacing it).
        working_dir: directory the task runs in; defaults to the current directory at submission.
        ntasks_per_node: processes started for the task; each gets the rank environment of ``ranks.py``
            (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``...).
            With a launcher (``Torchrun``) this is the launcher's processes per node instead.
        nodes: nodes to emulate on this machine (NeMo Run's ``nodes``): ``nodes * ntasks_per_node`` processes, each
            with its node's ``NODE_RANK`` in the rank environment; with a launcher, one launcher process per node
            (``torchrun --nnodes`` with ``--node-rank`` 0..nodes-1, meeting at 127.0.0.1). For testing multi-node
            code on one machine; every process shares this machine's GPUs.
        retries: when a process of the job fails, start all of them again, up to this many times (NeMo Run's
            ``retries``); the attempts append to one log, and the last attempt's exit codes are the job's.
        launcher: ``None``, ``"torchrun"`` or a launcher object such as ``run.Torchrun()``.
        cancel_grace_s: seconds between SIGTERM and SIGKILL when a job is cancelled.
        python: interpreter for Python tasks; defaults to the submitting interpreter.
        fork_server: start Python tasks by forking a pre-started interpreter (same processes, files and status as
            ``launch.sh``, without 20 ms of interpreter start-up per job). Used only where that is equivalent: no
            launcher, the default interpreter, no ``PYTHON*`` variable other than ``PYTHONPATH`` in the task's
            environment.
        packager: None or the pass-through ``run.Packager()`` (NeMo Run's spelling): a local task runs in its
            working directory, on the code already there, so nothing is packaged.
    """

    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    working_dir: Optional[str] = None
    ntasks_per_node: int = 1
    nodes: int = 1
    retries: int = 0
    launcher: Any = None
    cancel_grace_s: float = 10.0
    python: Optional[str] = None
    fork_server: bool = True
    packager: Any = None

    backend: ClassVar[str] = "local"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOGS, Capability.CANCEL, Capability.DETACH, Capability.STATUS_MANY, Capability.WAIT,
         Capability.FIND, Capability.FETCH_FILES})

    def __post_init__(self) -> None:
        self.check()

    # -- validation -------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Reject bad settings with an error naming the field and the fix (called at creation and submission)."""
        check_env_vars(self.env_vars, "LocalExecutor.env_vars")
        check_count(self.ntasks_per_node, "LocalExecutor.ntasks_per_node")
        check_count(self.nodes, "LocalExecutor.nodes")
        check_count(self.retries, "LocalExecutor.retries", minimum=0)
        if self.working_dir is not None and not isinstance(self.working_dir, str):
            raise ConfigError(f"must be a path string, got {self.working_dir!r}", path="LocalExecutor.working_dir")
        if self.python is not None:
            check_interpreter(self.python, "LocalExecutor.python")
        check_seconds(self.cancel_grace_s, "LocalExecutor.cancel_grace_s")
        check_packager(self.packager, "LocalExecutor.packager")
        if packages_code(self.packager):
            raise ConfigError(f"a local task runs in its working directory, on the code already there, so it takes "
                              f"packager=None or the pass-through run.Packager(), not {type(self.packager).__name__}; "
                              "to run packaged code on this machine use run.DockerExecutor(packager=...)",
                              path="LocalExecutor.packager")
        from nemorun_core.launchers import resolve_launcher

        resolve_launcher(self.launcher)  # raises on an unknown launcher name

    # -- prepare (I/O) and render (pure): what dryrun shows is what submit sends ---------------------------------
    def prepare(self, job: Job, *, dry: bool = False) -> "LocalPlan":
        """Decide what the job's request depends on beyond the job and the settings: its working directory and,
        for several processes without a launcher, their rendezvous port.

        The directory is made absolute against this process's current directory in both modes. With ``dry`` (for
        :meth:`dryrun`) nothing is checked on the file system or the network and nothing is written, and the port
        is the job's preferred one (``ranks.preferred_port``); without it (for :meth:`submit`) the directory must
        exist and the port is one free on this machine now (the preferred one unless it is taken).

        Raises:
            ConfigError: a bad setting.
            SubmissionError: (not ``dry``) the working directory does not exist.
        """
        self.check()
        cwd = os.path.abspath(job.cwd or self.working_dir or os.getcwd())
        if not dry and not os.path.isdir(cwd):
            raise SubmissionError(
                f"working directory {cwd!r} does not exist; create it or set LocalExecutor(working_dir=...)"
            )
        port = None
        if self._rank_processes():
            preferred = ranks.preferred_port(job.key)
            port = preferred if dry else ranks.free_port(preferred)
        return LocalPlan(cwd=cwd, master_port=port)

    def _rank_processes(self) -> bool:
        """Whether the job's processes get the rank environment: several of them, and no launcher (which sets
        its workers' own)."""
        from nemorun_core.launchers import resolve_launcher

        return resolve_launcher(self.launcher) is None and ranks.is_distributed(self.nodes, self.ntasks_per_node)

    def render(self, job: Job, plan: "LocalPlan") -> SubmitRequest:
        """The job's request: ``launch.sh`` (kept in the job directory as ``JobFiles.LAUNCH_SCRIPT``) and the files
        written beside it. Pure: the same job and plan give the same text. Secret values are not in it."""
        env = self._env(job)
        argv = self._argv(job)
        rank_envs = None
        if self._rank_processes():
            port = plan.master_port if plan.master_port is not None else ranks.preferred_port(job.key)
            rank_envs = ranks.process_envs(self.nodes, self.ntasks_per_node, ranks.LOOPBACK, port)
        text = render_launch_script(job, argv, plan.cwd, env, self.ntasks_per_node, self.launcher,
                                    self.cancel_grace_s, rank_envs=rank_envs, nodes=self.nodes, retries=self.retries)
        return SubmitRequest(
            self.backend,
            text,
            files=dict(job.files),
            meta={"argv": argv, "cwd": plan.cwd, "env": sorted(env), "ntasks_per_node": self.ntasks_per_node,
                  "nodes": self.nodes, "cancel_grace_s": self.cancel_grace_s,
                  "rank_env": rank_envs or [{}] * self.ntasks_per_node},
            sent_as=JobFiles.LAUNCH_SCRIPT,
        )

    # -- rendering helpers (pure) -----------------------------------------------------------------------------------
    def _python(self) -> str:
        return self.python or sys.executable

    def _argv(self, job: Job) -> list[str]:
        return resolve_argv(job.command, self._python())

    def _env(self, job: Job) -> dict[str, str]:
        """The job's environment (the executor's, then the task's), checked like ``env_vars``: a bad name or a
        NUL in a value is refused here, naming the variable, not by ``exec`` inside the supervisor."""
        env = {**self.env_vars, **job.env}
        check_env_vars(env, f"LocalExecutor.env_vars (with the env of task {job.name!r})")
        return env

    def dryrun(self, job: Job) -> SubmitRequest:
        """Exactly the ``launch.sh`` that :meth:`submit` writes and runs: ``render(job, prepare(job, dry=True))``.

        Pure apart from reading this process's current directory (the default working directory)."""
        return self.render(job, self.prepare(job, dry=True))

    # -- the contract -----------------------------------------------------------------------------------------------
    def submit(self, job: Job) -> JobHandle:
        """Write the job's files and its rendered ``launch.sh`` into the job directory and start it.

        What runs is the request :meth:`render` made, the text :meth:`dryrun` shows: ``launch.sh`` itself, or (for
        Python tasks, see ``fork_server``) a forked supervisor given that request's working directory, ranks and
        grace period. Idempotent by key (the job directory's ``handle.json``).
        """
        self.check()
        existing = self.find(job.key, job.job_dir)
        if existing is not None:
            return existing
        request = self.render(job, self.prepare(job))
        env = self._env(job)
        os.makedirs(job.job_dir, exist_ok=True)
        written: list[str] = []
        try:
            for name, content in request.files.items():
                path = os.path.join(job.job_dir, name)
                if _same_content(path, content):
                    continue  # already there (the experiment store keeps task.json in the job dir): no rewrite
                write_atomic(path, content)
                written.append(path)
            script = os.path.join(job.job_dir, request.sent_as)
            write_atomic(script, request.text)
            written.append(script)
            proc_env = {**without_held(dict(os.environ)), **env, "NEMORUN_JOB_DIR": job.job_dir, "NEMORUN_JOB_KEY": job.key}
            if env.get("PYTHONPATH") and os.environ.get("PYTHONPATH"):
                # The task's entries come first; the inherited ones stay, so nemorun itself remains importable.
                proc_env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], os.environ["PYTHONPATH"]])
            log_path = os.path.join(job.job_dir, LOG_FILE)
            pid, start = self._start(job, script, request, env, proc_env, log_path)
            written.append(log_path)
        except OSError as exc:
            for path in written:
                try:
                    os.remove(path)
                except OSError:
                    pass
            raise SubmissionError(f"could not start job {job.name!r}: {exc}") from exc
        handle = JobHandle.create(self.backend, str(pid), job.key, job.job_dir, start=start, pgid=str(pid))
        try:
            write_atomic(os.path.join(job.job_dir, HANDLE_FILE), handle.to_json())
        except OSError as exc:
            # Without its handle file nobody could find the job again (a full disk): stop it rather than leave a
            # job running that a retry would start a second time.
            self.cancel(handle)
            raise SubmissionError(f"could not record job {job.name!r} (it was stopped again): {exc}") from exc
        return handle

    def batch_key(self) -> tuple[str, str]:
        return (self.backend, "")  # every local job is a process of this machine: one /proc scan serves them all

    def status_calls(self, n: int) -> int:
        """None: a local job's status is read from ``/proc`` and its job directory, never from a service."""
        return 0

    @property
    def nodes_and_tasks(self) -> tuple[int, int]:
        return self.nodes, self.ntasks_per_node

    def info(self) -> str:
        """``"LocalExecutor on this machine"`` (NeMo Run's method)."""
        return f"{type(self).__qualname__} on this machine"

    def warm_up(self) -> None:
        """Start this process's fork server in the background (no wait), if Python jobs will use it."""
        if self.fork_server and self.launcher is None and self.python in (None, sys.executable):
            from nemorun_core.executors.forkserver import server_for

            server_for(self._python()).start()

    def _fork_eligible(self, job: Job, env: dict[str, str]) -> bool:
        from nemorun_core.launchers import resolve_launcher

        return (
            self.fork_server
            and job.command[:3] == runner_command(job.job_dir)[:3]
            and resolve_launcher(self.launcher) is None
            and not self.retries  # the fork server runs each rank once; launch.sh restarts them
            and self.python in (None, sys.executable)
            and not any(k.startswith("PYTHON") and k != "PYTHONPATH" for k in env)
        )

    def _start(self, job: Job, script: str, request: SubmitRequest, env: dict[str, str],
               proc_env: dict[str, str], log_path: str) -> tuple[int, str]:
        """Start the job's supervisor; return its pid (also its process group) and start time.

        The fork server gets the rendered request's own working directory, ranks and grace period: it does what
        ``launch.sh`` says, not what a second rendering of the job would."""
        if self._fork_eligible(job, env):
            from nemorun_core.executors.forkserver import server_for

            spawn = {"job_dir": job.job_dir, "cwd": request.meta["cwd"], "env": proc_env,
                     "ntasks": len(request.meta["rank_env"]), "grace": request.meta["cancel_grace_s"],
                     "rank_env": request.meta["rank_env"],
                     "python_path": [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]}
            try:
                return server_for(self._python()).spawn(spawn)
            except OSError:
                pass  # no usable fork server here: the shell supervisor does the same, only slower
        # Private to the user, like every file of the store (the job's output may show what it works on).
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            proc = subprocess.Popen(
                ["/bin/sh", script],
                cwd=job.job_dir,  # the script cds to the task's directory; a bad one is reported in the log
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=proc_env,
                start_new_session=True,  # own session and process group: cancel reaches every process
                close_fds=True,
            )
        return proc.pid, _start_time(proc.pid) or ""

    def find(self, key: str, job_dir: str) -> JobHandle | None:
        data = read_json(os.path.join(job_dir, HANDLE_FILE))
        if data is None:
            return None
        handle = JobHandle.from_dict(data)
        return handle if handle.key == key else None

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        return {h: self._status(h) for h in handles}

    def _status(self, handle: JobHandle) -> JobStatus:
        d = handle.job_dir
        if _alive(handle):
            return JobStatus(JobState.RUNNING, "running")
        # The supervisor writes launcher.json before it exits, so once it is gone the file is final.
        finished = read_json(os.path.join(d, LAUNCHER_FILE))
        cancelled = os.path.exists(os.path.join(d, CANCEL_FILE))
        runner = read_json(os.path.join(d, JobFiles.STATUS)) or {}
        if finished is None:
            if cancelled:
                return JobStatus(JobState.CANCELLED, "killed", "cancelled; the job was killed after the grace period")
            if runner.get("exit_code") == 0:
                return JobStatus(JobState.SUCCEEDED, "exited", "the supervisor vanished after the task succeeded", 0)
            if not os.path.exists(os.path.join(d, HANDLE_FILE)):
                return JobStatus(JobState.UNKNOWN, "", f"no job in {d}")
            return JobStatus(
                JobState.FAILED, "lost",
                runner.get("error") or "the job's processes are gone without recording an exit status (killed?)",
            )
        codes = [int(c) for c in finished.get("exit_codes", [])] or [1]
        code = next((c for c in codes if c != 0), 0)
        if code == 0:
            return JobStatus(JobState.SUCCEEDED, "exited", "", 0)
        if cancelled:
            return JobStatus(JobState.CANCELLED, "exited", "cancelled", code)
        message = runner.get("error") or describe_exit(code, "command not found or working directory missing; see the log")
        if len(codes) > 1:
            message += f" (exit statuses by rank: {codes})"
        return JobStatus(JobState.FAILED, "exited", message, code)

    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        path = os.path.join(handle.job_dir, LOG_FILE)
        position, line_no, buffer = 0, 0, LineBuffer()
        while True:
            chunk = _read_from(path, position)
            position += len(chunk)
            for raw in buffer.feed(chunk):
                if line_no >= offset:
                    yield decode(raw)
                line_no += 1
            if chunk and follow:
                continue
            finished = not _alive(handle)
            if follow and not finished:
                self.wait_any([handle], 0.2)
                continue
            if follow:
                # Output written just before the end may land after our last read: read once more.
                chunk = _read_from(path, position)
                if chunk:
                    position += len(chunk)
                    for raw in buffer.feed(chunk):
                        if line_no >= offset:
                            yield decode(raw)
                        line_no += 1
                    continue
            # A finished job's output may end without a newline; a running job's partial line waits for its end.
            if finished and line_no >= offset:
                yield from map(decode, buffer.final())
            return

    def cancel(self, handle: JobHandle) -> None:
        if self._status(handle).is_terminal:
            return
        try:
            write_atomic(os.path.join(handle.job_dir, CANCEL_FILE), json.dumps({"requested_at": time.time()}))
        except OSError:
            pass
        if not _alive(handle):
            return
        try:
            os.killpg(int(handle.extra("pgid") or handle.job_id), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    def wait_any(self, handles: Sequence[JobHandle], timeout: float) -> None:
        fds = []
        try:
            for h in handles:
                if not _alive(h):
                    return  # something already finished: no need to wait
                try:
                    fds.append(os.pidfd_open(int(h.job_id)))
                except (AttributeError, OSError):
                    time.sleep(min(timeout, 0.05))  # no pidfd (old kernel, not Linux): short sleeps instead
                    return
            if fds:
                select.select(fds, [], [], timeout)
            else:
                time.sleep(timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def log_location(self, handle: JobHandle) -> str:
        return os.path.join(handle.job_dir, LOG_FILE)

    def log_tail(self, handle: JobHandle, lines: int = 20) -> list[str]:
        return read_lines(os.path.join(handle.job_dir, LOG_FILE), last=lines)


def _comment(text: str) -> str:
    """``text`` as one ``#`` line of the script: a newline in a name or value would end the comment and make
    the rest a command."""
    return "# " + text.replace("\r", "\\r").replace("\n", "\\n")


def _same_content(path: str, content: str) -> bool:
    try:
        with open(path) as f:
            return f.read() == content
    except (FileNotFoundError, UnicodeDecodeError):
        return False


def _read_from(path: str, position: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(position)
            return f.read()
    except FileNotFoundError:
        return b""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), to detect PID reuse."""
    try:
        found = proc_stat(pid)
    except OSError:
        return None
    return (found[1] or None) if found else None


def _alive(handle: JobHandle) -> bool:
    """Whether the job's supervisor process still runs (not a zombie, not a reused PID)."""
    pid = int(handle.job_id)
    try:
        found = proc_stat(pid)
    except OSError:  # no /proc (macOS): fall back to a signal-0 probe
        return signal_probe(pid)
    if found is None or ended(found[0]):
        return False
    expected = handle.extra("start")
    return not expected or found[1] == expected


def render_launch_script(
    job: Job,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    ntasks: int,
    launcher: Any,
    grace: float,
    *,
    rank_envs: Optional[Sequence[dict[str, str]]] = None,
    nodes: int = 1,
    retries: int = 0,
) -> str:
    """Render ``launch.sh`` for a job. Pure. Secret values never appear in it: the submitting process passes the
    environment to the supervisor; the script lists variable names only.

    ``rank_envs`` is each process's rank environment (``ranks.process_envs``); None: that of the job's preferred
    port when it has several processes and no launcher. ``nodes`` emulated nodes: ``nodes * ntasks`` processes,
    or one launcher process per node. ``retries``: start them all again, up to that many times, while one fails."""
    from nemorun_core.launchers import resolve_launcher, wrap_command

    q = shlex.quote
    lines = [
        "#!/bin/sh",
        _comment(f"nemorun local job {job.name}"),
        _comment(f"key: {job.key}"),
        _comment(f"output: {os.path.join(job.job_dir, LOG_FILE)}"),
    ]
    if env:
        lines.append("# environment (from the submitting process):")
        for name in sorted(env):
            shown = "<secret>" if is_secret(name, env[name]) else env[name]
            lines.append(_comment(f"  {name}={shown}"))
    launcher_obj = resolve_launcher(launcher)
    if launcher_obj is not None:
        commands = [wrap_command(launcher_obj, argv, nodes=nodes, nproc_per_node=ntasks, node_rank=node,
                                 master_addr=ranks.LOOPBACK, profile_dir=job.job_dir) for node in range(nodes)]
        prefixes = ["".join(f"{name}={q(value)} " for name, value in ranks.node_env(node, nodes).items())
                    for node in range(nodes)]
    else:
        commands = [argv] * (nodes * ntasks)
        if rank_envs is None:
            rank_envs = ranks.process_envs(nodes, ntasks, ranks.LOOPBACK, ranks.preferred_port(job.key))
        prefixes = ["".join(f"{name}={q(value)} " for name, value in one.items()) for one in rank_envs]
    lines += [
        f"job_dir={q(job.job_dir)}",
        # One short write, no helper processes; readers look at it only once this process is gone, when it is whole.
        "finish() {",
        f'  umask 077; printf \'{{"exit_codes": [%s]}}\\n\' "$1" > "$job_dir/{JobFiles.LAUNCHER}"',
        "}",
        # On TERM (cancel), the whole group already got the signal; escalate to KILL after the grace period.
        "killer=",
        # The killer kills its own sleep when it is called off, so nothing of the job outlives it.
        f"trap '[ -n \"$killer\" ] || {{ (sleep {grace:g} & s=$!; trap \"kill $s; exit 0\" TERM; wait $s; "
        f"kill -KILL 0) & killer=$!; }}' TERM INT HUP",
        f"cd {q(cwd)} || {{ echo \"nemorun: cannot enter the working directory\" {q(cwd)} >&2; "
        "finish 127; exit 127; }",
        # wait returns early when a trapped signal arrives: wait again until the process is really gone.
        'reap() { while :; do wait "$1"; rc=$?; kill -0 "$1" 2>/dev/null || return "$rc"; done; }',
    ]
    start = len(lines)  # the lines that start and reap the processes: one attempt
    for i, (cmd, prefix) in enumerate(zip(commands, prefixes)):
        lines.append(f"{prefix}{' '.join(q(a) for a in cmd)} &")
        lines.append(f"pid{i}=$!")
    # A cancel (TERM to the group) that came before a rank was started never reached it: forward it now. (A TERM
    # landing in a rank between its fork and its exec can still be dropped by the shell; the KILL at the end of
    # the grace period ends such a job. The fork server, which runs plain Python jobs, has no such window.)
    lines.append('[ -n "$killer" ] && kill -TERM ' + " ".join(f'"$pid{i}"' for i in range(len(commands)))
                 + " 2>/dev/null")
    codes = []
    for i in range(len(commands)):
        lines.append(f'reap "$pid{i}"; rc{i}=$?')
        codes.append(f"$rc{i}")
    if retries:
        # Start every process again while one failed, unless the job was cancelled: attempts share the log.
        body = ["  " + line for line in lines[start:]]
        del lines[start:]
        lines += ["attempt=1", "while :; do", *body,
                  f'  ok=1; for rc in {" ".join(codes)}; do [ "$rc" -eq 0 ] || ok=; done',
                  f'  {{ [ -n "$ok" ] || [ -n "$killer" ] || [ "$attempt" -gt {retries} ]; }} && break',
                  f'  echo "nemorun: attempt $attempt of {retries + 1} ended with exit codes {" ".join(codes)}; '
                  'starting it again" >&2',
                  "  attempt=$((attempt + 1))", "done"]
    lines.append('[ -n "$killer" ] && kill "$killer" 2>/dev/null')
    lines.append(f'finish "{", ".join(codes)}"')
    return "\n".join(lines) + "\n"
