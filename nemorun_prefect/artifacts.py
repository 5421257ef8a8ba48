"""Prefect artifacts of nemorun runs: a task's configuration and log link when it is submitted, the metrics it
logged when it ends, an experiment's job table.

* :func:`task_submitted`: a markdown artifact, key ``nemorun-<flow>-<task>-config``, with the job (key, backend, id,
  directory, log), the task's configuration and the executor's, as YAML. Created once per job: a retry or restart
  that re-attaches to the job does not create another.
* :func:`log_link`: a link artifact, key ``nemorun-<flow>-<task>-log``, to where the job's log is
  (:meth:`Executor.log_location`: a URL as it is, a local path as a ``file://`` URL); a location that is neither
  (``host:path`` on a cluster, a command) becomes a markdown artifact that shows it. Created with the config one.
  A backend with a UI of its own (``Executor.job_url``) gets a second link, key ``nemorun-<flow>-<task>-backend``.
* :func:`metrics_table`: a table artifact, key ``nemorun-<flow>-<task>-metrics``, one row per record the task
  logged with ``nemorun_core.log_metrics`` (``step`` first, then the metrics, ``time`` last), created when the job
  ended, if it logged any (the last :data:`METRICS_ROWS` records).
* :func:`experiment_table`: a table artifact, key ``nemorun-<flow>-jobs``, one row per experiment task, the columns
  read first first (task, state, duration, message; then backend, job id, exit code, log), created when an
  experiment flow ends: by the flow itself, or, when the flow run is cancelled or crashes, by its hook once the
  jobs are cancelled (so they show as CANCELLED).

Keys follow Prefect's rule (lowercase letters, digits, dashes) and stay the same from one flow run to the next, so
Prefect shows each key's artifacts as the versions of one artifact. Secrets never reach them: configurations are
shown as :func:`nemorun_core.secrets.redact` leaves them (values of secret-named settings and key material replaced by
``<redacted>``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from nemorun_core.errors import SerializationError
from nemorun_core.executors.base import Executor, JobHandle, JobStatus
from nemorun_core.orchestration import job_duration, job_metrics, known_secrets, scrub
from nemorun_core.secrets import redact

#: The most metric records shown in a metrics table (the latest ones).
METRICS_ROWS = 500


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from ``parts``: lowercase, every run of other characters turned into one dash."""
    text = "-".join(parts).lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", text)).strip("-") or "nemorun"


def readable_yaml(value: Any) -> str:
    """YAML of a config or executor for people, secrets redacted.

    The portable form (names only) when there is one; otherwise the payload form with its cloudpickled parts
    left out (a function defined inside another one, a lambda).
    """
    import yaml

    from nemorun_core.config import serialize

    try:
        data = serialize.encode(value)
    except SerializationError:
        data = _without_pickles(serialize.encode(value, payload=True))
    return yaml.safe_dump(redact(data), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _without_pickles(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("<cloudpickled>" if k == "_pickle_" else _without_pickles(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_without_pickles(v) for v in data]
    return data


def _flow_name() -> str:
    from prefect.runtime import flow_run

    return flow_run.flow_name or "no-flow"


def task_markdown(spec: Any, handle: JobHandle) -> str:
    """The markdown of :func:`task_submitted` (no Prefect call: tests and other renderers use it too)."""
    executor = spec.executor
    rows = [("task", spec.name), ("job key", handle.key), ("backend", handle.backend), ("job id", handle.job_id),
            ("job directory", handle.job_dir), ("log", executor.log_location(handle) or "")]
    table = "\n".join(f"| {name} | `{value}` |" for name, value in rows if value)
    return (f"# nemorun task `{spec.name}`\n\n| | |\n|---|---|\n{table}\n\n"
            f"## Configuration ({spec.kind})\n\n```yaml\n{readable_yaml(spec.task)}```\n\n"
            f"## Executor ({executor.backend})\n\n```yaml\n{readable_yaml(executor)}```\n")


def task_submitted(spec: Any, handle: JobHandle) -> Any:
    """Create the markdown artifact of a task just submitted (in the current task or flow run); return its id.

    A failure is logged, not raised (returns None): the job runs whether or not its artifact could be made.
    """
    from prefect.artifacts import create_markdown_artifact

    try:
        return create_markdown_artifact(
            markdown=task_markdown(spec, handle), key=artifact_key("nemorun", _flow_name(), spec.name, "config"),
            description=f"nemorun task {spec.name!r}: job {handle.key} on {handle.backend}")
    except Exception as exc:
        _warn("could not create the configuration artifact of task %r: %s: %s", spec.name, type(exc).__name__, exc)
        return None


def log_url(location: str | None) -> str | None:
    """A URL for a location: see :func:`nemorun_core.orchestration.location_url`."""
    from nemorun_core.orchestration import location_url

    return location_url(location)


def log_link(spec: Any, handle: JobHandle) -> Any:
    """Create the log-link artifact of a task just submitted (see the module docstring); return its id, or None
    when the executor names no log location or the artifact could not be made (logged, not raised)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    page = log_url(spec.executor.job_url(handle))
    if page is not None:
        try:
            create_link_artifact(link=page, link_text=f"{spec.name}: {handle.backend} job {handle.job_id}",
                                 key=artifact_key("nemorun", _flow_name(), spec.name, "backend"),
                                 description=f"the backend's page of nemorun job {handle.key}")
        except Exception as exc:
            _warn("could not create the backend link of task %r: %s: %s", spec.name, type(exc).__name__, exc)
    location = spec.executor.log_location(handle)
    if not location:
        return None
    key = artifact_key("nemorun", _flow_name(), spec.name, "log")
    description = f"log of nemorun job {handle.key} ({handle.backend} {handle.job_id})"
    try:
        url = log_url(location)
        if url is not None:
            return create_link_artifact(link=url, link_text=f"{spec.name}: {location}", key=key,
                                        description=description)
        return create_markdown_artifact(markdown=f"log of `{spec.name}`: `{location}`", key=key,
                                        description=description)
    except Exception as exc:
        _warn("could not create the log artifact of task %r: %s: %s", spec.name, type(exc).__name__, exc)
        return None


def metric_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a metrics table: the last :data:`METRICS_ROWS` records, each with the columns of all of them
    (``step`` first, ``time`` last, the metrics between in the order first seen; a record's missing ones None)."""
    records = records[-METRICS_ROWS:]
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(k for k in record if k not in ("step", "time")))
    columns = (["step"] if any("step" in r for r in records) else []) + list(names) + ["time"]
    return [{c: record.get(c) for c in columns} for record in records]


def metrics_table(name: str, executor: Executor, handle: JobHandle) -> Any:
    """Create the metrics table artifact of an ended job (in the current task run), if it logged metrics; return
    its id, or None (no metrics, the executor cannot read job files, or an error: logged, not raised)."""
    from prefect.artifacts import create_table_artifact

    try:
        records = job_metrics(executor, handle)
        if not records:
            return None
        rows = scrub(redact(metric_rows(records)), known_secrets(executor))
        return create_table_artifact(table=rows, key=artifact_key("nemorun", _flow_name(), name, "metrics"),
                                     description=f"metrics logged by nemorun job {handle.key} "
                                                 f"({len(records)} records shown)")
    except Exception as exc:
        _warn("could not create the metrics artifact of task %r: %s: %s", name, type(exc).__name__, exc)
        return None


def _warn(message: str, *args: Any) -> None:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        get_run_logger().warning(message, *args)
    except MissingContextError:
        from prefect.logging import get_logger

        get_logger("nemorun_prefect").warning(message, *args)


def job_rows(specs: list[Any], flow_run_id: str) -> list[dict[str, Any]]:
    """One row per task of an experiment flow run, read back from the backends (the latest job each task recorded).

    Tasks that were never submitted get the state ``NOT SUBMITTED``. The flow run's job records
    (:func:`nemorun_prefect.tasks.job_records`) are read once; one ``status_many`` call per executor config.
    """
    from nemorun_prefect.tasks import job_records

    records = job_records(flow_run_id)
    found: list[tuple[Any, JobHandle]] = []
    rows: dict[str, dict[str, Any]] = {}
    for spec in specs:
        recorded = records.get(spec.name)
        handle = recorded.ref.job_handle() if recorded is not None and recorded.ref.handle else None
        # The columns a person reads first come first; long paths last.
        rows[spec.name] = {"task": spec.name, "state": "NOT SUBMITTED", "duration (s)": None, "message": "",
                           "backend": spec.executor.backend, "job id": "", "exit code": None, "log": ""}
        if handle is not None:
            found.append((spec, handle))
    for executor, group in _by_executor(found):
        statuses = executor.status_many([h for _, h in group])
        for spec, handle in group:
            status: JobStatus = statuses[handle]
            rows[spec.name].update({"job id": handle.job_id, "state": status.state.value,
                                    "exit code": status.exit_code, "log": executor.log_location(handle) or "",
                                    "duration (s)": job_duration(executor, handle),
                                    "message": (status.message or "")[:300]})
    return list(rows.values())


def _by_executor(found: list[tuple[Any, JobHandle]]) -> list[tuple[Executor, list[tuple[Any, JobHandle]]]]:
    groups: list[tuple[Executor, list[tuple[Any, JobHandle]]]] = []
    for spec, handle in found:
        for executor, members in groups:
            if executor == spec.executor:
                members.append((spec, handle))
                break
        else:
            groups.append((spec.executor, [(spec, handle)]))
    return groups


def experiment_table(specs: list[Any], flow_run_id: Any, flow_name: str | None = None) -> Any:
    """Create the job-table artifact of experiment flow run ``flow_run_id`` (linked to that flow run, from inside
    it or from its cancellation hook, which runs outside any run); return its id.

    Args:
        specs: the experiment's task specs.
        flow_run_id: the flow run.
        flow_name: its flow's name (default: the current flow run's).

    A failure (a backend that cannot be reached...) is logged, not raised (returns None): the flow's outcome is
    that of its tasks.
    """
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    flow_name = flow_name or _flow_name()
    try:
        rows = job_rows(specs, str(flow_run_id))
        with get_client(sync_client=True) as client:
            return client.create_artifact(ArtifactCreate(
                key=artifact_key("nemorun", flow_name, "jobs"), type="table", data=json.dumps(rows),
                description=f"nemorun jobs of flow run {flow_run_id} ({flow_name})", flow_run_id=flow_run_id)).id
    except Exception as exc:
        _warn("could not create the job table artifact: %s: %s", type(exc).__name__, exc)
        return None


__all__ = ["METRICS_ROWS", "artifact_key", "experiment_table", "job_rows", "log_link", "log_url", "metric_rows",
           "metrics_table", "readable_yaml", "task_markdown", "task_submitted"]
