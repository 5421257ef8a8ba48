"""``python -m nemorun_core.runner JOB_DIR``: run the serialized task in JOB_DIR and record its outcome.

The job directory holds ``task.json`` (written at submission)::

    {"version": 1, "name": "train", "kind": "partial" | "config", "task": <payload form of the config>,
     "sys_path": ["/dir/of/launching/script", ...]}

The runner builds the task without importing Fiddle (``serialize.decode(build=True)``), calls it, and writes, each
atomically (temporary file + rename):

* ``result.json``: ``{"value": <JSON value>}``, or ``{"repr": "...", "pickle": "result.pkl"}`` when the return
  value is not JSON (then ``result.pkl`` holds it, cloudpickled);
* ``status.json``: ``{"exit_code", "started_at", "finished_at", "error", "traceback"}``.

In a multi-process job (torchrun, srun) only global rank 0 writes them; every rank runs the task.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from nemorun_core.executors.files import write_atomic
from nemorun_core.jobfiles import JobFiles

# The job directory's names are defined in nemorun_core.jobfiles; these aliases keep existing imports working.
TASK_FILE = JobFiles.TASK
RESULT_FILE = JobFiles.RESULT
RESULT_PICKLE = JobFiles.RESULT_PICKLE
STATUS_FILE = JobFiles.STATUS


def global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "NEMORUN_RANK"):
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 0


def _record_result(job_dir: str, value: Any) -> None:
    try:
        text = json.dumps({"value": value})
    except (TypeError, ValueError):
        import cloudpickle

        write_atomic(JobFiles(job_dir).result_pickle, cloudpickle.dumps(value))
        text = json.dumps({"repr": repr(value)[:2000], "pickle": JobFiles.RESULT_PICKLE})
    write_atomic(JobFiles(job_dir).result, text)


def run_task(job_dir: str) -> Any:
    """Load ``task.json`` from ``job_dir``, build it and call it; return the task's value."""
    with open(JobFiles(job_dir).task) as f:
        spec = json.load(f)
    for entry in reversed(spec.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from nemorun_core.config.serialize import decode

    built = decode(spec["task"], build=True)
    return built() if spec.get("kind") == "partial" else built


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nemorun_core.runner JOB_DIR", file=sys.stderr)
        return 2
    job_dir = os.path.abspath(args[0])
    writer = global_rank() == 0
    started = time.time()

    def _terminated(signum: int, _frame: Any) -> None:
        # Turn SIGTERM (cancel, scheduler preemption) into an exception so the outcome is still recorded; a second
        # TERM (a supervisor forwarding a cancel that came before this process existed) must not cut the recording.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    status: dict[str, Any] = {"exit_code": 0, "started_at": started, "error": None, "traceback": None}
    try:
        value = run_task(job_dir)
        if writer:
            _record_result(job_dir, value)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        status.update(exit_code=code, error=None if code == 0 else f"exited with status {code}")
    except BaseException as exc:  # the task's own failure: record it, print it, exit non-zero
        import traceback

        tb = traceback.format_exc()
        sys.stderr.write(tb)
        status.update(exit_code=1, error=f"{type(exc).__name__}: {exc}"[:4000], traceback=tb[-20000:])
    status["finished_at"] = time.time()
    if writer:
        write_atomic(JobFiles(job_dir).status, json.dumps(status))
    sys.stdout.flush()
    sys.stderr.flush()
    return int(status["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
