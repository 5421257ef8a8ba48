"""Slurm job states -> JobState, and parsing of ``squeue`` / ``sacct`` output. Pure."""

from __future__ import annotations

from nemorun_core.executors.base import JobState, JobStatus

# One mapping for every state squeue and sacct print (Slurm 22.05 names; first word only: "CANCELLED by 0").
STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SPECIAL_EXIT": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
}

_MESSAGES = {
    "OUT_OF_MEMORY": "out of memory (raise mem= or lower the batch size)",
    "TIMEOUT": "reached its time limit (raise time=)",
    "NODE_FAIL": "a node failed",
    "BOOT_FAIL": "a node failed to boot",
    "PREEMPTED": "preempted",
    "DEADLINE": "missed its deadline",
}

# Pending reasons after which the job can never start: reported as terminal, not left PENDING forever.
NEVER_STARTS = {
    "DependencyNeverSatisfied": "a dependency failed, so this job can never start",
    "PartitionDown": None,  # may come back: stays PENDING, with the reason shown
}

SQUEUE_FORMAT = "%i|%T|%r"
SACCT_FIELDS = "JobIDRaw,JobID,State,ExitCode,Reason"


def parse_exit(text: str) -> int | None:
    """sacct's ``ExitCode`` is ``code:signal``; a signal N reads as 128 + N, as a shell reports it."""
    try:
        code, _, signal = text.partition(":")
        code_i, signal_i = int(code), int(signal or 0)
    except ValueError:
        return None
    return 128 + signal_i if signal_i else code_i


def status_of(native: str, reason: str = "", exit_text: str = "") -> JobStatus:
    """A JobStatus from one squeue/sacct record."""
    word = native.split()[0] if native.strip() else "UNKNOWN"
    word = word.rstrip("+")
    state = STATES.get(word, JobState.UNKNOWN)
    reason = "" if reason in ("None", "(null)") else reason
    exit_code = parse_exit(exit_text) if exit_text else None
    if state is JobState.PENDING and reason in NEVER_STARTS and NEVER_STARTS[reason]:
        return JobStatus(JobState.CANCELLED, native, f"{reason}: {NEVER_STARTS[reason]}", exit_code)
    message = _MESSAGES.get(word, "")
    if reason and state is not JobState.SUCCEEDED:
        message = f"{message}; {reason}" if message else reason
    if state is JobState.FAILED and not message and exit_code:
        message = f"exited with status {exit_code}"
    return JobStatus(state, native, message, exit_code)


def parse_squeue(text: str) -> dict[str, JobStatus]:
    """``squeue -h -o '%i|%T|%r'`` -> job id -> status (array elements as ``123_4``)."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = status_of(parts[1], parts[2] if len(parts) > 2 else "")
    return out


def parse_sacct(text: str) -> dict[str, JobStatus]:
    """``sacct -X -n -P -o JobIDRaw,JobID,State,ExitCode,Reason`` -> id -> status, keyed by both id forms.

    A requeued job has several records; the last one wins (sacct prints them oldest first).
    """
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 4 and parts[0]:
            status = status_of(parts[2], parts[4] if len(parts) > 4 else "", parts[3])
            out[parts[0]] = status
            out[parts[1]] = status
    return out


def array_elements(spec: str) -> set[int]:
    """The element indices of an array spec: ``"0-9%2"``, ``"1,3,5"``, ``"0-10:2"``."""
    out: set[int] = set()
    for part in spec.split("%")[0].split(","):
        rng, _, step = part.partition(":")
        first, _, last = rng.partition("-")
        out.update(range(int(first), int(last or first) + 1, int(step or 1)))
    return out


def combine(job_id: str, queued: dict[str, JobStatus], accounted: dict[str, JobStatus],
            array: str = "") -> JobStatus:
    """The status of ``job_id`` (which may be an array or het job: elements ``ID_N`` / ``ID+N``) from both sources.

    squeue knows live jobs precisely; sacct knows finished ones. An array or het job is the worst of its parts:
    any part failed -> FAILED, any cancelled -> CANCELLED, any still live -> RUNNING/PENDING, all done -> SUCCEEDED.
    """
    # squeue keeps ended jobs for a while with no reason; sacct has the reason (DependencyNeverSatisfied...).
    # (Only jobs that really ended: a pending job that can never start is terminal for us but not yet for sacct.)
    queued = {k: s for k, s in queued.items()
              if not (k in accounted and STATES.get(s.native.split()[0] if s.native else "", JobState.UNKNOWN)
                      .is_terminal)}
    parts = [s for key, s in queued.items() if _belongs(key, job_id)]
    seen = {key for key in queued if _belongs(key, job_id)}
    parts += [s for key, s in accounted.items() if _belongs(key, job_id) and key not in seen]
    if not parts:
        return JobStatus(JobState.UNKNOWN, "", f"job {job_id} is in neither squeue nor sacct (yet)")
    if array:
        # sacct may first show an array as one record: it has ended only when every element has its own record.
        missing = [i for i in array_elements(array) if f"{job_id}_{i}" not in accounted]
        live = [s for s in parts if not s.is_terminal]
        if missing and not live:
            return JobStatus(JobState.RUNNING, "", f"waiting for {len(missing)} array element(s) to be accounted")
    if len(parts) == 1:
        return parts[0]
    for state in (JobState.FAILED, JobState.CANCELLED, JobState.RUNNING, JobState.PENDING, JobState.UNKNOWN):
        for part in parts:
            if part.state is state:
                return part
    return parts[0]


def _belongs(key: str, job_id: str) -> bool:
    return key == job_id or key.startswith(f"{job_id}_") or key.startswith(f"{job_id}+")
