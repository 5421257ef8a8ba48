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
from nemorun_core.executors import install
from nemorun_core.executors.base import Job, JobHandle, JobState, JobStatus, SubmitRequest, package_code
from nemorun_core.executors.lines import check_offsets, split_complete
from nemorun_core.executors.slurm import states
from nemorun_core.executors.slurm.executor import JOB_ID_FILE, JOB_KEY_FILE, SCRIPT_FILE, job_files_tar
from nemorun_core.jobfiles import JobFiles
from nemorun_core.secrets import is_secret, redact_text

if TYPE_CHECKING:
    from nemorun_core.executors.slurm.executor import SlurmExecutor

q = shlex.quote
_ENV_MARK = "__NEMORUN_ENV_END__"
_SACCT_MARK = "__NEMORUN_SACCT__"
_JOB_MARK = "__NEMORUN_JOB__"
# What one poll_many round fetches per job at most: a job that logs faster than the poller reads catches up over
# several rounds, and one huge log cannot make a round (or the poller's memory) unbounded.
POLL_MAX_LINES = 5000
POLL_MAX_BYTES = 2 << 20
_SAFE_PATH = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/~+@:")


def check_path(path: str) -> None:
    """Refuse a job directory that ``#SBATCH`` lines and the submit command cannot carry (spaces, quotes...)."""
    bad = sorted(set(path) - _SAFE_PATH)
    if bad:
        raise SubmissionError(
            f"the job directory {path!r} contains {''.join(bad)!r}, which #SBATCH lines cannot carry; "
            "choose a tunnel job_dir without spaces or quotes"
        )


def submit(ex: "SlurmExecutor", job: Job, remote_dir: str, request: SubmitRequest) -> JobHandle:
    """Send ``request`` (the executor's rendered sbatch script and job files, exactly as ``dryrun`` shows them)
    for ``job`` into ``remote_dir``, or return the job this same key already submitted from there (idempotent by
    key).

    One remote command (:func:`_submit_command`) reads the secret environment values as data from stdin, claims
    the job directory for this key, extracts the job's files and the script (as ``sbatch.sh``) and runs ``sbatch``.

    Raises:
        SubmissionError: ``sbatch`` failed (its message, with every secret value redacted), or the directory
            holds another key's job.
        ConfigError: an environment variable cannot be passed (bad name, NUL in its value).
        TunnelError: the cluster could not be reached.
    """
    tunnel = ex.tunnel
    secrets = {k: v for k, v in ex.job_env(job).items() if is_secret(k, v)}
    stdin = _env_block(secrets) + job_files_tar(dict(request.files), request.text)
    result = tunnel.run(_submit_command(remote_dir, job.key), stdin=stdin, check=False, timeout=120)
    out = result.stdout.strip()
    if result.exit_code == _OTHER_KEY_EXIT:
        other = out.rpartition(_OTHER_KEY_MARK)[2].strip() or "(an unreadable key)"
        raise SubmissionError(
            f"the job directory {tunnel.address}:{remote_dir} holds the job of another key ({other!r}); this "
            f"submission's key is {job.key!r}. Two stores (or users) share this tunnel job_dir and chose the same "
            "experiment id: give each its own job_dir, or run the experiment again (a new id). Nothing was submitted.")
    if not result.ok:
        why = (result.stderr or result.stdout).strip() or f"exit status {result.exit_code}"
        raise SubmissionError(f"sbatch of job {job.name!r} on {tunnel.address} failed: "
                              f"{redact_text(why, _secret_fragments(secrets))}")
    job_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
    if not job_id.isdigit():
        raise SubmissionError(f"sbatch of job {job.name!r} printed "
                              f"{redact_text(out, _secret_fragments(secrets))!r}, not a job id")
    return JobHandle.create(ex.backend, job_id, job.key, remote_dir, address=tunnel.address, array=ex.array or "",
                            **ex.log_extras(job, remote_dir))


# The submit command's exit status when the directory belongs to another key, and the line before that key.
_OTHER_KEY_EXIT = 93
_OTHER_KEY_MARK = "__NEMORUN_OTHER_KEY__"
# The shell variables the submit command reads the environment into: names no user variable may take.
_ENV_VARS_PREFIX = "__nemorun_"


def _env_block(env: Mapping[str, str]) -> bytes:
    """The secret environment as the submit command reads it on stdin: one ``NAME BASE64`` line per variable,
    then an end marker.

    The values cross as base64 data, never as shell text: nothing a value holds (newlines, quotes, ``$(...)``)
    is ever parsed, and every byte arrives, trailing newlines included.
    """
    lines = []
    for name, value in sorted(env.items()):
        if name.startswith(_ENV_VARS_PREFIX):
            raise SubmissionError(f"environment variable {name!r}: names starting with {_ENV_VARS_PREFIX!r} are "
                                  "nemorun's own; rename it")
        lines.append(f"{name} {base64.b64encode(value.encode()).decode()}\n")
    return ("".join(lines) + _ENV_MARK + "\n").encode()


def _submit_command(remote_dir: str, key: str) -> str:
    """The remote side of :func:`submit`; its stdin is :func:`_env_block` followed by the job's tar.

    - ``umask 077``: the directories and files it creates, and those the job writes (sbatch passes the umask on),
      are the cluster user's alone.
    - Each ``NAME BASE64`` line is decoded and assigned with ``export "$name=$value"``, which parses nothing of
      the value; ``$(...)`` would drop trailing newlines, hence the ``x`` appended and removed. The variables reach
      sbatch's environment, so the job's, without touching a file or a command line.
    - The directory is claimed for ``key`` by hard-linking a ``key`` file into it (atomic, and it fails if one is
      there). A directory with another key's ``key`` is refused (exit 93), so two experiments that chose the same
      directory never attach to each other's jobs; the same key finds its ``slurm_job_id`` and returns it, so a
      repeated submission is a lookup.
    """
    d, k, v = q(remote_dir), q(key), _ENV_VARS_PREFIX
    return (
        "umask 077; "
        f"while IFS=' ' read -r {v}name {v}b64; do [ \"${v}name\" = {_ENV_MARK} ] && break; "
        f"case \"${v}name\" in ''|[0-9]*|*[!A-Za-z0-9_]*) echo 'nemorun: bad environment line' >&2; exit 92;; esac; "
        f"{v}value=$(printf %s \"${v}b64\" | base64 -d && printf x) || exit 92; "
        f"export \"${v}name=${{{v}value%x}}\"; done; unset {v}name {v}b64 {v}value; "
        f"mkdir -p {d} && cd {d} || exit 90; "
        f"printf %s {k} > .key.$$ && {{ ln .key.$$ {JOB_KEY_FILE} 2>/dev/null; rm -f .key.$$; }}; "
        f"if [ \"$(cat {JOB_KEY_FILE} 2>/dev/null)\" != {k} ]; then "
        f"echo {_OTHER_KEY_MARK}; cat {JOB_KEY_FILE}; exit {_OTHER_KEY_EXIT}; fi; "
        f"if [ -s {JOB_ID_FILE} ]; then cat {JOB_ID_FILE}; exit 0; fi; "
        "tar -xf - || exit 91; "
        f"if sbatch --parsable {SCRIPT_FILE} > {JOB_ID_FILE}.tmp; then mv {JOB_ID_FILE}.tmp {JOB_ID_FILE}; "
        f"cat {JOB_ID_FILE}; else rc=$?; cd / && rm -rf {d}; exit $rc; fi"
    )


def _secret_fragments(secrets: Mapping[str, str]) -> list[str]:
    """What to redact from text that may quote secrets: each value, and each line of a multi-line value (an error
    may quote one line of a PEM key)."""
    out = set()
    for value in secrets.values():
        out.add(value)
        out.update(line.strip() for line in value.splitlines() if len(line.strip()) >= 8)
    return sorted(out, key=len, reverse=True)


def find(ex: "SlurmExecutor", key: str) -> JobHandle | None:
    """The job submitted under ``key``: from its directory's job id file when the directory's ``key`` is this
    one, else by its job name among this user's queued jobs."""
    job = Job(name=key.split("/")[1] if "/" in key else key, key=key, command=[], job_dir="")
    remote_dir = ex.remote_dir(job, ex.job_root())
    name = ex.job_name(job)
    d = q(remote_dir)
    result = ex.tunnel.run(
        f"{{ [ \"$(cat {d}/{JOB_KEY_FILE} 2>/dev/null)\" = {q(key)} ] && cat {d}/{JOB_ID_FILE} 2>/dev/null; }} "
        f"|| squeue --me -h -n {q(name)} -o %i | head -n1",
        check=False)
    job_id = result.stdout.strip().split("_")[0]
    if not job_id.isdigit():
        return None
    return JobHandle.create(ex.backend, job_id, key, remote_dir, address=ex.tunnel.address, array=ex.array or "",
                            **ex.log_extras(job, remote_dir))


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
    failed task's own error) and the lines of its log (``log.out`` or the ``job_details`` path) from its offset, each base64-encoded between markers, so
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
    check_offsets(offsets)
    show = "| base64 | tr -d '\\n'; echo"
    script = [
        _states_command(handles),
        f'_p() {{ echo {_JOB_MARK}; cat "$1/{JobFiles.STATUS}" 2>/dev/null {show}; '
        f'tail -n "+$2" "$3" 2>/dev/null | head -n {POLL_MAX_LINES} | head -c {POLL_MAX_BYTES} {show}; }}',
        *(f"_p {q(h.job_dir)} {offsets[h] + 1} {q(ex.log_file(h))}" for h in handles),
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
    """Complete lines of one round's chunk (see ``poll_many`` for the partial last line and the byte cap): a chunk
    the byte cap truncated never ends with a real last line, even when the job has ended."""
    return split_complete(data, final=terminal and len(data) < POLL_MAX_BYTES, max_bytes=POLL_MAX_BYTES)


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
    command = "; ".join(f"echo {marker}; cat {q(JobFiles(h.job_dir).status)} 2>/dev/null" for h in handles)
    chunks = ex.tunnel.run(command, check=False).stdout.split(marker)[1:]
    for handle, chunk in zip(handles, chunks):
        out[handle] = _with_task_error(out[handle], chunk.encode())


def logs(ex: "SlurmExecutor", handle: JobHandle, *, follow: bool, offset: int) -> Iterator[str]:
    """Lines of the job's log (``log.out`` or the ``job_details`` path) from line ``offset``; each fetch asks
    only for what is new (``tail -n +N``).

    A log that does not exist (yet) has no lines. While following, a last line without its newline waits until it
    is complete or the job has ended.
    """
    def fetch(line_no: int, final: bool) -> list[str]:
        text = ex.tunnel.run(f"tail -n +{line_no + 1} {q(ex.log_file(handle))} 2>/dev/null",
                             check=False).stdout
        return split_complete(text, final=final)

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
    """Package the code (once per experiment run), upload and extract it unless the cluster has it (once per
    content digest, by the rules of ``executors/install.py``); return its directory."""
    from nemorun_core.home import default_home

    package = package_code(ex.packager, os.path.join(default_home(), "packages"))
    tunnel = ex.tunnel
    target = install.target_dir(f"{ex.job_root().rstrip('/')}/code", package.digest)
    if not tunnel.exists(target):
        archive = install.archive_path(target)
        tunnel.put(package.path, archive)
        # chmod: tar keeps the archive's modes when run by root; the code is as private as the job directories.
        fill = f'tar -xzf {q(archive)} -C "$tmp" --no-same-owner && chmod -R go-rwx "$tmp"'
        tunnel.run(f"{install.install_command(target, install.staging_dir(target), fill)} && rm -f {q(archive)}")
    return target
