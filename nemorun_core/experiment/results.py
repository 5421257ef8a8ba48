"""Reading a finished task's return value from its job directory (``result.json`` / ``result.pkl``)."""

from __future__ import annotations

import json
import pickle
from typing import Any

from nemorun_core.errors import ExperimentError
from nemorun_core.experiment.tasks import TaskSpec


def read_result(spec: TaskSpec) -> Any:
    """The value the task returned; None for Script tasks (they have no return value)."""
    if spec.kind == "script" or spec.handle is None:
        return None
    raw = spec.executor.fetch_file(spec.handle, "result.json")
    if raw is None:
        raise ExperimentError(
            f"task {spec.name!r} succeeded but left no result.json in {spec.handle.job_dir}; "
            "was the job directory cleaned up?"
        )
    data = json.loads(raw)
    if "value" in data:
        return data["value"]
    blob = spec.executor.fetch_file(spec.handle, data.get("pickle", "result.pkl"))
    if blob is None:
        raise ExperimentError(f"task {spec.name!r}: result.pkl is missing in {spec.handle.job_dir}")
    return pickle.loads(blob)  # written by cloudpickle in the task; classes by value need cloudpickle importable
