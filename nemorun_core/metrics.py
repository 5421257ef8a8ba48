"""``log_metrics``: report metrics from inside a task; ``Experiment.metrics(name)`` reads them back.

Metrics are JSON lines in ``metrics.jsonl`` in the job directory. The runner's working directory is not the job
directory, so the path comes from ``NEMORUN_JOB_DIR``, which every executor sets for the task's processes.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from nemorun_core.jobfiles import JobFiles

METRICS_FILE = JobFiles.METRICS  # kept for existing imports; the name is defined in nemorun_core.jobfiles


def log_metrics(metrics: Mapping[str, Any], *, step: int | None = None) -> None:
    """Append one record of metrics (JSON-serializable values) for the current task.

    Args:
        metrics: name -> value, e.g. ``{"loss": 0.12, "accuracy": 0.97}``.
        step: optional training step, stored beside the values.

    Raises:
        TypeError: a value is not JSON-serializable.
    """
    record: dict[str, Any] = {"time": time.time(), **dict(metrics)}
    if step is not None:
        record["step"] = step
    line = json.dumps(record)  # fail here, in the task, if a value cannot be stored
    job_dir = os.environ.get("NEMORUN_JOB_DIR")
    if not job_dir:
        # Outside a nemorun job (a notebook, a unit test): metrics have nowhere to go, say so once per call.
        import warnings

        warnings.warn("log_metrics called outside a nemorun job (NEMORUN_JOB_DIR is not set); metrics dropped",
                      stacklevel=2)
        return
    rank = os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0"
    if rank != "0":
        return
    # O_APPEND writes of one short line are atomic, so concurrent writers do not interleave records.
    fd = os.open(JobFiles(job_dir).metrics, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_metrics(text: str) -> list[dict[str, Any]]:
    """Parse ``metrics.jsonl`` text, skipping a torn last line."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
