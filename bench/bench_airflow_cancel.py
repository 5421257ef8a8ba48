"""Issue 12 figure for Airflow: marking a running task failed to its job ended, synchronous and deferrable, beside the
backend's own cancel latency (the reference).

    .venvs/airflow/bin/python bench/bench_airflow_cancel.py [--repeats 3] [--poll-interval 2] [--out FILE]

Measures, on a real deployment (``tests/airflow/_server.py``: api-server, scheduler with the LocalExecutor,
dag-processor, triggerer; SQLite; 127.0.0.1):

* ``reference``: the backend's own cancel latency: a ``run.LocalExecutor`` job submitted directly, then
  ``executor.cancel(handle)`` until ``executor.status`` says it is terminal (status read every 10 ms).
* ``sync`` / ``deferrable``: a ``NemorunOperator(deferrable=False / True, poll_interval=--poll-interval)`` task whose
  local job runs for minutes; once its job runs (and, deferred, its trigger runs in the triggerer), the task is marked
  failed through the REST API (``PATCH .../taskInstances/job {"new_state": "failed"}``, what the UI sends), and the
  time from sending that request to the job's status being terminal is measured (status read every 50 ms, by the
  core executor from this process), with the duration of the request itself, and when the task's own kill hook ran
  (the worker's ``on_kill`` / the trigger's, from the "task killed" line of the task log): what the latency was
  before the listener cancelled in the API server.

The goal (issue 12): the backend's cancel latency plus one poll (``--poll-interval``) at most. Every figure goes to
stdout as JSON (``--out`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DAG = """
import datetime
from airflow.sdk import DAG
import nemorun_core as run
from nemorun_airflow import NemorunOperator
from tests.airflow import _jobs
for deferrable in (False, True):
    with DAG(f"nr_cancel_{'deferrable' if deferrable else 'sync'}", schedule=None, max_active_runs=4,
             start_date=datetime.datetime(2026, 1, 1), params={"marker": ""}):
        NemorunOperator(task_id="job", task=run.Partial(_jobs.count_run, marker="", value=1, seconds=600),
                        overrides=["marker={{ params.marker }}"], deferrable=deferrable, poll_interval=POLL)
"""


def reference(repeats: int) -> list[float]:
    """The backend's own cancel latency: cancel() to a terminal status of a directly submitted local job."""
    import nemorun_core as run
    from nemorun_core.executors.base import Job, JobState

    executor = run.LocalExecutor()
    out = []
    for i in range(repeats + 1):
        job = Job(f"ref{i}", f"bench-cancel/ref{i}-{time.time_ns()}/0",
                  [sys.executable, "-c", "import time; time.sleep(600)"], tempfile.mkdtemp(prefix="nemorun-bench-"))
        handle = executor.submit(job)
        while executor.status(handle).state is not JobState.RUNNING:
            time.sleep(0.01)
        time.sleep(1.0)  # as for the tasks below: a job past its start-up
        start = time.monotonic()
        executor.cancel(handle)
        while not executor.status(handle).is_terminal:
            time.sleep(0.01)
        if i:  # the first one warms up
            out.append(time.monotonic() - start)
    return out


def mark_failed_once(server, dag_id: str, n: int, deferrable: bool, work: str) -> dict:
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key
    from nemorun_core.executors.base import JobState

    marker = os.path.join(work, f"{dag_id}-{n}.runs")
    run_id = server.trigger(dag_id, conf={"marker": marker}, run_id=f"cancel-{n}-{time.time_ns()}")["dag_run_id"]
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job"
    executor = run.LocalExecutor()
    key = job_key(dag_id, run_id, "job")

    def ready():
        ti = server.api("GET", base)
        handle = executor.find(key, job_dir_for(key))
        if handle is None or executor.status(handle).state is not JobState.RUNNING:
            return None
        if deferrable and not (ti["state"] == "deferred" and ti["triggerer_job"]):
            return None
        if not deferrable and ti["state"] != "running":
            return None
        return handle

    handle = server.wait_until(ready, lambda h: h is not None, 240, f"{dag_id} run {n} to follow its job")
    time.sleep(1.0)  # past the start-up: a steady following task
    start, wall = time.monotonic(), time.time()
    server.api("PATCH", base, {"new_state": "failed"}, timeout=60)
    request = time.monotonic() - start
    while not executor.status(handle).is_terminal:
        if time.monotonic() - start > 120:
            raise RuntimeError(f"job {handle.key} still running 120 s after its task was marked failed")
        time.sleep(0.05)
    latency = time.monotonic() - start
    return {"latency_s": round(latency, 3), "request_s": round(request, 3),
            "state": executor.status(handle).state.value, "kill_hook_s": kill_hook_delay(server, base, wall)}


def kill_hook_delay(server, base: str, wall: float, timeout: float = 15) -> float | None:
    """Seconds from the mark to the task's own kill hook (the worker's ``on_kill``, or the trigger's): when the job
    would have been cancelled without the listener. Read from the task log's "task killed" line; None: not found."""
    import datetime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.api("GET", f"{base}/logs/1?full_content=true")
        for entry in log.get("content") or []:
            if isinstance(entry, dict) and "task killed (" in str(entry.get("event", "")) and entry.get("timestamp"):
                stamp = datetime.datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
                return round(stamp.timestamp() - wall, 3)
        time.sleep(1.0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--out")
    args = parser.parse_args()

    from tests.airflow._server import AirflowServer

    work = tempfile.mkdtemp(prefix="nemorun-bench-airflow-cancel-")
    home = os.path.join(work, "nemorun-home")
    os.environ["NEMORUN_HOME"] = home  # where the workers' job dirs are: this process finds the jobs there
    figures: dict = {"poll_interval_s": args.poll_interval}
    ref = reference(args.repeats)
    figures["reference"] = {"median_s": round(statistics.median(ref), 3), "runs_s": [round(x, 3) for x in ref]}
    env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p),
           "NEMORUN_HOME": home}
    with AirflowServer.start(os.path.join(work, "airflow"), env=env) as server:
        server.write_dag("nr_cancel.py", f"POLL = {args.poll_interval!r}\n" + textwrap.dedent(DAG))
        for mode in ("sync", "deferrable"):
            dag_id = f"nr_cancel_{mode}"
            server.wait_for_dag(dag_id)
            runs = [mark_failed_once(server, dag_id, n, mode == "deferrable", work) for n in range(args.repeats)]
            hooks = [r["kill_hook_s"] for r in runs if r["kill_hook_s"] is not None]
            figures[mode] = {"median_s": statistics.median(r["latency_s"] for r in runs),
                             "kill_hook_median_s": statistics.median(hooks) if hooks else None, "runs": runs}
    print(f"{'backend cancel latency (local, reference)':58} {figures['reference']['median_s']:7.3f} s")
    for mode in ("sync", "deferrable"):
        print(f"{'marked failed -> job ended, ' + mode:58} {figures[mode]['median_s']:7.3f} s  "
              f"(goal: <= reference + one poll = {figures['reference']['median_s'] + args.poll_interval:.3f} s; "
              f"the task's own kill hook came after {figures[mode]['kill_hook_median_s']} s)")
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
