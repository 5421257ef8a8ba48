"""What ``SlurmExecutor`` does on the cluster: submit, find, status, logs, code upload. One remote call each."""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import time
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from nemorun_core.errors import ExecutorError, SubmissionError
from nemorun_core.executors.base import Job, JobHandle, JobState, JobStatus, package_code
from nemorun_core.executors.slurm import states
from nemorun_core.executors.files import rewrite_payload
from nemorun_core.executors.slurm.executor import JOB_ID_FILE, job_files_tar
from nemorun_core.secrets import is_secret_name

if TYPE_CHECKING:
    from nemorun_core.executors.slurm.executor import SlurmExecutor

q = shlex.quote
_FILES_MARK = "__NEMORUN_FILES__"
_SACCT_MARK = "__NEMORUN_SACCT__"
_JOB_MARK = "__NEMORUN_JOB__"
# What one poll_many round fetches per job at most: a job that logs faster than the poller reads catches up over
# several rounds, and one huge log cannot make a round (or the poller's memory) unbounded.
POLL_MAX_LINES = 5000
POLL_MAX_BYTES = 2 << 20
_SAFE_PATH = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/~+@:")


def _check_path(path: str) -> None:
    bad = sorted(set(path) - _SAFE_PATH)
    if bad:
        raise SubmissionError(
            f"the job directory {path!r} contains {''.join(bad)!r}, which #SBATCH lines cannot carry; "
            "choose a tunnel job_dir without spaces or quotes"
        )


def submit(ex: "SlurmExecutor", job: Job) -> JobHandle:
    """Submit ``job``, or return the job already submitted from its directory (idempotent by directory)."""
    tunnel = ex.tunnel
    remote_dir = ex.remote_dir(job)
    _check_path(remote_dir)
    code_dir = upload_code(ex) if ex.packager is not None else None
    files = dict(job.files)
    if "task.json" in files and code_dir:
        files["task.json"] = rewrite_payload(files["task.json"], [code_dir])
    depends = [h.job_id for h in job.depends_on]
    script = ex.render(job, remote_dir, depends, code_dir)
    env = {**ex.env_vars, **job.env}
    secrets = "".join(f"export {k}={q(v)}\n" for k, v in sorted(env.items()) if is_secret_name(k))
    stdin = (secrets + _FILES_MARK + "\n").encode() + job_files_tar(files, script)
    d = q(remote_dir)
    # Secrets arrive as export lines on stdin, so they reach sbatch's environment (and the job's) without touching
    # a file or a command line. The job id file makes a repeated submission of the same job a lookup.
    command = (
        f'while IFS= read -r line; do [ "$line" = {_FILES_MARK} ] && break; eval "$line"; done; '
        f"mkdir -p {d} && cd {d} || exit 90; "
        f"if [ -s {JOB_ID_FILE} ]; then cat {JOB_ID_FILE}; exit 0; fi; "
        f"tar -xf - || exit 91; "
        f"if sbatch --parsable sbatch.sh > {JOB_ID_FILE}.tmp; then mv {JOB_ID_FILE}.tmp {JOB_ID_FILE}; "
        f"cat {JOB_ID_FILE}; else rc=$?; cd / && rm -rf {d}; exit $rc; fi"
    )
    result = tunnel.run(command, stdin=stdin, check=False, timeout=120)
    if not result.ok:
        why = (result.stderr or result.stdout).strip() or f"exit status {result.exit_code}"
        raise SubmissionError(f"sbatch of job {job.name!r} on {tunnel.address} failed: {why}")
    job_id = result.stdout.strip().splitlines()[-1].split(";")[0].strip()
    if not job_id.isdigit():
        raise SubmissionError(f"sbatch of job {job.name!r} printed {result.stdout.strip()!r}, not a job id")
    return JobHandle.create(ex.backend, job_id, job.key, remote_dir, address=tunnel.address, array=ex.array or "")


def find(ex: "SlurmExecutor", key: str) -> JobHandle | None:
    """The job submitted under ``key``: from its job id file, else by its job name in the queue."""
    job = Job(name=key.split("/")[1] if "/" in key else key, key=key, command=[], job_dir="")
    remote_dir = ex.remote_dir(job)
    name = ex.job_name(job)
    result = ex.tunnel.run(
        f"cat {q(remote_dir + '/' + JOB_ID_FILE)} 2>/dev/null || squeue -h -n {q(name)} -o %i | head -n1",
        check=False)
    job_id = result.stdout.strip().split("_")[0]
    if not job_id.isdigit():
        return None
    return JobHandle.create(ex.backend, job_id, key, remote_dir, address=ex.tunnel.address, array=ex.array or "")


def status_many(ex: "SlurmExecutor", handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
    """One remote call for all ``handles`` (``squeue`` for live jobs, ``sacct`` for finished ones), and one more
    only when some have failed: their runner's own error, from ``status.json``."""
    if not handles:
        return {}
    out = _parse_states(handles, ex.tunnel.run(_states_command(handles), check=False).stdout)
    failed = [h for h, st in out.items() if st.state is JobState.FAILED]
    if failed:
        _add_task_errors(ex, failed, out)
    return out


def _states_command(handles: Sequence[JobHandle]) -> str:
    ids = ",".join(q(i) for i in sorted({h.job_id for h in handles}))
    return (f"squeue -h -j {ids} -o {q(states.SQUEUE_FORMAT)} 2>/dev/null; echo {_SACCT_MARK}; "
            f"sacct -X -n -P -j {ids} -o {states.SACCT_FIELDS} 2>/dev/null")


def _parse_states(handles: Sequence[JobHandle], text: str) -> dict[JobHandle, JobStatus]:
    queued_text, _, accounted_text = text.partition(_SACCT_MARK)
    queued, accounted = states.parse_squeue(queued_text), states.parse_sacct(accounted_text)
    return {h: states.combine(h.job_id, queued, accounted, h.extra("array") or "") for h in handles}


def poll_many(ex: "SlurmExecutor", offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
    """Status and new log lines of every job in ONE remote command: what a poller (an Airflow trigger) needs.

    The script runs ``squeue`` and ``sacct`` for all jobs first, then prints, per job, its ``status.json`` (for a
    failed task's own error) and the lines of ``log.out`` from its offset, each base64-encoded between markers, so
    no byte a job writes (a marker, NUL, invalid UTF-8) can confuse the parsing. A job gets at most
    :data:`POLL_MAX_LINES` lines and :data:`POLL_MAX_BYTES` bytes per round; the rest comes in later rounds (so a
    terminal job's log is complete once a round returns fewer lines than the cap). A last line without its newline
    is held back while the job runs (it may still grow) and returned once the job is terminal; a single line longer
    than the byte cap is returned cut, with a note, so the poller still moves past it. A job whose log does not exist
    (yet) has no new lines; an unknown job is ``UNKNOWN``.

    Raises:
        ExecutorError: an offset is not an int >= 0, or the answer lacks a job's section (the message has stderr).
        TunnelError: the cluster could not be reached.
    """
    handles = list(offsets)
    if not handles:
        return {}
    for handle, offset in offsets.items():
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ExecutorError(f"poll_many: the offset of job {handle.job_id} ({handle.key}) must be a line number "
                                f">= 0, got {offset!r}")
    show = "| base64 | tr -d '\\n'; echo"
    script = [
        _states_command(handles),
        f'_p() {{ echo {_JOB_MARK}; cat "$1/status.json" 2>/dev/null {show}; '
        f'tail -n "+$2" "$1/log.out" 2>/dev/null | head -n {POLL_MAX_LINES} | head -c {POLL_MAX_BYTES} {show}; }}',
        *(f"_p {q(h.job_dir)} {offsets[h] + 1}" for h in handles),
    ]
    result = ex.tunnel.run("\n".join(script), check=False)
    head, *sections = result.stdout.split(f"\n{_JOB_MARK}\n")
    if len(sections) != len(handles):
        raise ExecutorError(f"poll_many on {ex.tunnel.address}: the answer has {len(sections)} job sections for "
                            f"{len(handles)} jobs (exit status {result.exit_code}): {result.stderr.strip()[-500:]}")
    statuses = _parse_states(handles, head)
    out = {}
    for handle, section in zip(handles, sections):
        status_b64, _, log_b64 = section.partition("\n")
        status = statuses[handle]
        if status.state is JobState.FAILED:
            status = _with_task_error(status, _unb64(status_b64))
        out[handle] = (status, _new_lines(_unb64(log_b64), status.is_terminal))
    return out


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _new_lines(data: bytes, terminal: bool) -> list[str]:
    """Complete lines of one round's chunk (see ``poll_many`` for the partial last line and the byte cap)."""
    lines = data.decode("utf-8", "replace").split("\n")
    partial = lines.pop()  # "" when the chunk ends with a newline
    if partial:
        if len(data) >= POLL_MAX_BYTES:
            if not lines:
                lines.append(f"{partial} [line cut by nemorun: longer than {POLL_MAX_BYTES} bytes]")
        elif terminal:
            lines.append(partial)
    return lines


def _with_task_error(status: JobStatus, status_json: bytes) -> JobStatus:
    """For a failed Python task, the runner's own error (``status.json``) says more than Slurm's FAILED."""
    try:
        error = json.loads(status_json).get("error")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return status
    return JobStatus(status.state, status.native, error, status.exit_code) if error else status


def _add_task_errors(ex: "SlurmExecutor", handles: list[JobHandle], out: dict[JobHandle, JobStatus]) -> None:
    """One more remote call: the runner's own error of each failed job, from its ``status.json``."""
    marker = "__NEMORUN_STATUS__"
    command = "; ".join(f"echo {marker}; cat {q(h.job_dir + '/status.json')} 2>/dev/null" for h in handles)
    chunks = ex.tunnel.run(command, check=False).stdout.split(marker)[1:]
    for handle, chunk in zip(handles, chunks):
        out[handle] = _with_task_error(out[handle], chunk.encode())


def logs(ex: "SlurmExecutor", handle: JobHandle, *, follow: bool, offset: int) -> Iterator[str]:
    """Lines of ``log.out`` from line ``offset``; each fetch asks only for what is new (``tail -n +N``).

    A log that does not exist (yet) has no lines. While following, a last line without its newline waits until it
    is complete or the job has ended.
    """
    def fetch(line_no: int, final: bool) -> list[str]:
        text = ex.tunnel.run(f"tail -n +{line_no + 1} {q(handle.job_dir + '/log.out')} 2>/dev/null",
                             check=False).stdout
        lines = text.split("\n")
        partial = lines.pop()  # "" when the text ends with a newline, or is empty
        return [*lines, partial] if partial and final else lines

    line_no = offset
    while True:
        lines = fetch(line_no, final=not follow)
        yield from lines
        line_no += len(lines)
        if not follow:
            return
        if not lines:
            if ex.status(handle).is_terminal:
                yield from fetch(line_no, final=True)  # written between the last fetch and the end
                return
            time.sleep(1.0)  # a remote poll: once a second is plenty for people reading logs


def upload_code(ex: "SlurmExecutor") -> str:
    """Package the code (once per experiment run), upload it unless the cluster has it; return its directory."""
    from nemorun_core.experiment.store import default_home

    package = package_code(ex.packager, os.path.join(default_home(), "packages"))
    tunnel = ex.tunnel
    root = f"{tunnel.job_dir.rstrip('/')}/code"
    target = f"{root}/{package.digest}"
    if not tunnel.exists(target):
        archive = f"{target}.tar.gz"
        tunnel.put(package.path, archive)
        tmp = f"{target}.tmp.{os.getpid()}.{time.time_ns()}"  # concurrent uploads of one digest do not collide
        tunnel.run(
            f"mkdir -p {q(tmp)} && tar -xzf {q(archive)} -C {q(tmp)} --no-same-owner "
            f"&& (mv -T {q(tmp)} {q(target)} 2>/dev/null || rm -rf {q(tmp)}) && rm -f {q(archive)}")
    return target
