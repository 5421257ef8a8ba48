"""Reading a finished task's return value from its job directory (``result.json`` / ``result.pkl``)."""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

from nemorun_core.errors import ExperimentError
from nemorun_core.experiment.tasks import TaskSpec
from nemorun_core.jobfiles import JobFiles


def read_result(spec: TaskSpec) -> Any:
    """The value the task returned; None for Script tasks (they have no return value).

    Raises:
        ExperimentError: the task has no job handle, or its result file is missing or damaged (naming the file):
            a return value is never silently read as None.
    """
    if spec.kind == "script":
        return None
    if spec.handle is None:
        raise ExperimentError(
            f"task {spec.name!r} has no job handle, so its result cannot be found; it was never submitted, or "
            f"its {JobFiles.HANDLE} was lost"
        )
    where = _location(spec, JobFiles.RESULT)
    raw = spec.executor.fetch_file(spec.handle, JobFiles.RESULT)
    if raw is None:
        raise ExperimentError(
            f"task {spec.name!r} succeeded but left no {JobFiles.RESULT} in {spec.handle.job_dir}; "
            "was the job directory cleaned up?"
        )
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ExperimentError(f"{where}: the result of task {spec.name!r} is damaged (not UTF-8 JSON: {exc}); "
                              "rerun the task to get it again") from None
    if not isinstance(data, dict) or not ("value" in data or isinstance(data.get("pickle"), str)):
        raise ExperimentError(f"{where}: the result of task {spec.name!r} is damaged (a JSON "
                              f"{type(data).__name__} without a 'value'); rerun the task to get it again")
    if "value" in data:
        return data["value"]
    name = os.path.basename(data["pickle"]) or JobFiles.RESULT_PICKLE  # never a path out of the job directory
    blob = spec.executor.fetch_file(spec.handle, name)
    if blob is None:
        raise ExperimentError(f"task {spec.name!r}: {name} is missing in {spec.handle.job_dir}")
    try:
        return pickle.loads(blob)  # written by cloudpickle in the task; classes by value need cloudpickle importable
    except ImportError as exc:
        raise ExperimentError(f"{_location(spec, name)}: the result of task {spec.name!r} needs {exc.name or exc} "
                              "importable here; run this where the task's code is installed") from exc
    except Exception as exc:
        raise ExperimentError(f"{_location(spec, name)}: the result of task {spec.name!r} cannot be unpickled "
                              f"({type(exc).__name__}: {exc}); rerun the task to get it again") from exc


def _location(spec: TaskSpec, name: str) -> str:
    assert spec.handle is not None
    return os.path.join(spec.handle.job_dir, name) if spec.handle.job_dir else name
