"""Issue 6 figures for Airflow: what Airflow's triggerer costs while it follows many nemorun jobs, and how many remote
calls one poll round of many deferred Slurm tasks costs.

    eval "$(bash scripts/services/sshd.sh env)"; eval "$(bash scripts/services/slurm.sh env)"
    .venvs/airflow/bin/python bench/bench_airflow.py [--jobs 100] [--window 60] [--slurm-jobs 20] [--out FILE]

Measures:

* ``triggerer``: a real deployment (``tests/airflow/_server.py``: api-server, scheduler with the LocalExecutor,
  dag-processor, triggerer, SQLite, on 127.0.0.1). The triggerer's memory (RSS, sampled every second, of the
  triggerer process and of its trigger-runner child) and CPU (user + system seconds of both, over the window) are
  measured for ``--window`` seconds idle, then while it follows ``--jobs`` running jobs: one DAG run with that many
  generated ``NemorunOperator(deferrable=True, poll_interval=5)`` tasks, each a ``run.LocalExecutor`` job
  ``run.Script(inline="sleep ...")`` (the project's Slurm cluster runs 4 jobs at a time, so local jobs are the
  ones that can all be running). The window starts once every task is deferred and its trigger assigned to the
  triggerer, plus a 10 s settle. Then the run is marked failed through the REST API: the triggers' kill hook
  cancels the jobs, and the time until all are CANCELLED (read with the core executor) is reported too.
* ``slurm_batching``: ``--slurm-jobs`` jobs on the project's Slurm cluster (over the project's sshd), followed by
  as many ``NemorunJobTrigger`` instances running concurrently on one event loop, as in a triggerer process
  (poll interval 1 s), for ``--rounds-window`` seconds: SSH commands (``ssh_stats``: each is one exec on the pooled
  connection) per ``SlurmExecutor.poll_many`` call, and jobs per call. For comparison, one round through the
  contract's generic ``Executor.poll_many`` (``status_many`` + ``logs`` per job). Jobs are cancelled at the end.
* ``slurm_triggerer``: the same through the real deployment: ``--slurm-jobs`` deferred tasks running Slurm jobs,
  polled by the triggerer process; SSH commands counted from the sshd log (LogLevel VERBOSE) for the trigger
  runner's own connection (``bench/_sshd_log.py``) over a window of ``--rounds-window`` seconds, against the
  number of rounds the poll interval allows.

Every figure goes to stdout as JSON (``--out`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import _sshd_log  # noqa: E402

from tests.airflow._server import AirflowServer  # noqa: E402

SSHD_LOG = "/tmp/nemorun-services/sshd/sshd.log"
HEADER = """
import datetime
from airflow.sdk import DAG
import nemorun_core as run
from nemorun_airflow import NemorunOperator
START = datetime.datetime(2026, 1, 1)
"""


# ---------------------------------------------------------------------------------------------------------------
# the triggerer's footprint


def _processes(server: AirflowServer) -> dict[str, "object"]:
    import psutil

    main = psutil.Process(server.processes["triggerer"].pid)
    children = main.children(recursive=True)
    if len(children) == 1:  # the trigger runner, which runs the triggers' event loop
        return {"triggerer": main, "trigger_runner": children[0]}
    return {"triggerer": main, **{f"child {c.pid}": c for c in children}}


def footprint(server: AirflowServer, window: float) -> dict:
    """RSS (median and max of 1 s samples, MiB) and CPU (s per minute, % of one core) of the triggerer's processes."""
    procs = _processes(server)
    cpu0 = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
    rss: dict[str, list[float]] = {name: [] for name in procs}
    t0 = time.monotonic()
    while time.monotonic() - t0 < window:
        for name, p in procs.items():
            rss[name].append(p.memory_info().rss / 2**20)
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    cpu = {name: sum(p.cpu_times()[:2]) - cpu0[name] for name, p in procs.items()}
    total_cpu = sum(cpu.values())
    total_rss = [sum(v) for v in zip(*rss.values())]
    return {
        "window_s": round(elapsed, 1),
        "rss_mib": {name: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)} for name, v in rss.items()},
        "rss_total_mib": {"median": round(statistics.median(total_rss), 1), "max": round(max(total_rss), 1)},
        "cpu_s": {name: round(v, 2) for name, v in cpu.items()},
        "cpu_s_per_min": round(total_cpu * 60 / elapsed, 2),
        "cpu_percent_of_one_core": round(100 * total_cpu / elapsed, 2),
    }


def _tis(server: AirflowServer, dag_id: str, run_id: str) -> list[dict]:
    return server.task_instances(dag_id, run_id)


def _wait_deferred(server: AirflowServer, dag_id: str, run_id: str, n: int, timeout: float) -> float:
    """Block until all ``n`` tasks are deferred with a trigger assigned to a triggerer; returns the seconds taken."""
    t0 = time.monotonic()

    def ready(tis: list[dict]) -> bool:
        failed = [ti["task_id"] for ti in tis if ti["state"] in ("failed", "upstream_failed", "success")]
        if failed:
            raise RuntimeError(f"tasks ended before deferring: {failed[:5]}{server.log_tails()}")
        return len(tis) == n and all(ti["state"] == "deferred" and ti.get("triggerer_job") for ti in tis)

    server.wait_until(lambda: _tis(server, dag_id, run_id), ready, timeout, f"{n} tasks to defer", interval=2)
    return time.monotonic() - t0


def _cancel_run_and_wait(server: AirflowServer, dag_id: str, run_id: str, handles: list, timeout: float) -> dict:
    """Mark the run failed (the triggers' kill hook cancels the jobs); time until every job is CANCELLED."""
    import nemorun_core as run
    from nemorun_core.executors.base import JobState

    executor = run.LocalExecutor()
    t0 = time.monotonic()
    server.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
    states: dict = {}
    while time.monotonic() - t0 < timeout:
        states = {}
        for st in executor.status_many(handles).values():
            states[st.state.value] = states.get(st.state.value, 0) + 1
        if states.get(JobState.CANCELLED.value, 0) == len(handles):
            break
        time.sleep(0.5)
    return {"seconds": round(time.monotonic() - t0, 1), "states": states}


def triggerer(server: AirflowServer, args: argparse.Namespace) -> dict:
    import nemorun_core as run
    from nemorun_airflow.operators import job_dir_for, job_key

    out: dict = {"jobs": args.jobs}
    time.sleep(10)  # let start-up work (first DAG-folder scan, job heartbeats) settle
    out["idle"] = footprint(server, args.window)

    dag_id = "bench_triggerer"
    ticks = int(args.window * 3 + 600) // 5  # outlives the measurement: the jobs are cancelled at the end
    script = f"for i in $(seq 1 {ticks}); do echo tick $i; sleep 5; done"
    server.write_dag(f"{dag_id}.py", HEADER + textwrap.dedent(f"""
        with DAG({dag_id!r}, schedule=None, start_date=START, max_active_tasks={args.jobs}) as dag:
            for i in range({args.jobs}):
                NemorunOperator(task_id=f"job{{i}}", task=run.Script(inline={script!r}), deferrable=True,
                                poll_interval=5)
    """))
    server.wait_for_dag(dag_id, timeout=180)
    run_id = server.trigger(dag_id, run_id=f"bench-{uuid.uuid4().hex[:8]}")["dag_run_id"]
    out["all_deferred_after_s"] = round(_wait_deferred(server, dag_id, run_id, args.jobs, timeout=900), 1)
    executor = run.LocalExecutor()
    handles = []
    for i in range(args.jobs):
        key = job_key(dag_id, run_id, f"job{i}")
        handles.append(executor.find(key, job_dir_for(key)))
    if any(h is None for h in handles):
        raise RuntimeError("a deferred task has no job")
    states = {st.state.value for st in executor.status_many(handles).values()}
    if states != {"RUNNING"}:
        raise RuntimeError(f"the jobs are not all running: {states}")
    time.sleep(10)
    out["watching"] = footprint(server, args.window)
    out["jobs_running_after_window"] = sum(st.state.value == "RUNNING"
                                           for st in executor.status_many(handles).values())
    # the triggers really followed the jobs: their lines are in the task logs
    logs = [json.dumps(server.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/job{i}/logs/1"
                                         "?full_content=true")) for i in (0, args.jobs - 1)]
    out["trigger_streamed_job_lines"] = all('"tick 2"' in log for log in logs)
    out["cancel_by_failing_the_run"] = _cancel_run_and_wait(server, dag_id, run_id, handles, timeout=180)
    return out


# ---------------------------------------------------------------------------------------------------------------
# remote calls per poll round on one Slurm cluster


def _slurm_executor():
    import nemorun_core as run

    e = os.environ
    tunnel = run.SSHTunnel(host=e["NEMORUN_TEST_SSH_HOST"], port=int(e["NEMORUN_TEST_SSH_PORT"]),
                           user=e["NEMORUN_TEST_SSH_USER"], identity=e["NEMORUN_TEST_SSH_KEY"],
                           known_hosts=e["NEMORUN_TEST_SSH_KNOWN_HOSTS"], job_dir=e["NEMORUN_TEST_SLURM_JOB_DIR"])
    return run.SlurmExecutor(tunnel=tunnel, partition=e["NEMORUN_TEST_SLURM_PARTITION"],
                             account=e["NEMORUN_TEST_SLURM_ACCOUNT"], python=e["NEMORUN_TEST_SLURM_PYTHON"],
                             time="00:10:00")


def slurm_batching(args: argparse.Namespace) -> dict:
    from nemorun_airflow.triggers import NemorunJobTrigger
    from nemorun_core.executors.base import Executor, Job
    from nemorun_core.executors.slurm.executor import SlurmExecutor
    from nemorun_core.experiment.jobref import executor_config
    from nemorun_core.tunnel._ssh_pool import ssh_stats

    executor = _slurm_executor()
    tag = uuid.uuid4().hex[:8]
    handles = [executor.submit(Job(f"t{i}", f"bench-af-{tag}/t{i}/0",
                                   ["bash", "-c", "for i in $(seq 1 300); do echo tick $i; sleep 1; done"],
                                   "/nonexistent-local")) for i in range(args.slurm_jobs)]
    address = executor.tunnel.address
    calls: list[dict] = []
    real_poll_many = SlurmExecutor.poll_many

    def counted(self, offsets):  # the triggers build their own executors: count at the class
        before = ssh_stats(address).commands_run
        t = time.perf_counter()
        try:
            return real_poll_many(self, offsets)
        finally:
            calls.append({"jobs": len(offsets), "commands": ssh_stats(address).commands_run - before,
                          "s": time.perf_counter() - t})

    async def follow() -> None:
        config = executor_config(executor)
        triggers = [NemorunJobTrigger(handle=h.to_dict(), executor=config, poll_interval=1.0) for h in handles]

        async def drain(trigger):
            async for _event in trigger.run():
                pass

        tasks = [asyncio.ensure_future(drain(t)) for t in triggers]
        await asyncio.sleep(args.rounds_window)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        SlurmExecutor.poll_many = counted
        commands0 = ssh_stats(address).commands_run
        t0 = time.monotonic()
        asyncio.run(follow())
        elapsed = time.monotonic() - t0
        commands = ssh_stats(address).commands_run - commands0
        SlurmExecutor.poll_many = real_poll_many
        states: dict[str, int] = {}
        for st in executor.status_many(handles).values():
            states[st.state.value] = states.get(st.state.value, 0) + 1
        before = ssh_stats(address).commands_run
        t = time.perf_counter()
        Executor.poll_many(executor, {h: 0 for h in handles})  # the contract's generic default, for comparison
        generic = {"commands": ssh_stats(address).commands_run - before, "s": round(time.perf_counter() - t, 3)}
    finally:
        SlurmExecutor.poll_many = real_poll_many
        for h in handles:
            executor.cancel(h)
    return {
        "jobs": len(handles), "window_s": round(elapsed, 1), "job_states_during": states,
        "poll_many_calls": len(calls), "jobs_per_call": sorted({c["jobs"] for c in calls}),
        "commands_per_call": sorted({c["commands"] for c in calls}),
        "ssh_commands_in_window": commands,
        "poll_many_s_median": round(statistics.median(c["s"] for c in calls), 3) if calls else None,
        "generic_poll_many_one_round": generic,
    }


def slurm_triggerer(server: AirflowServer, args: argparse.Namespace) -> dict:
    """Deferred Slurm tasks in the real triggerer; its SSH commands from the sshd log over a window."""
    import psutil

    e = os.environ
    dag_id = "bench_slurm_triggerer"
    interval = 5.0
    server.write_dag(f"{dag_id}.py", HEADER + textwrap.dedent(f"""
        tunnel = run.SSHTunnel(host={e['NEMORUN_TEST_SSH_HOST']!r}, port={int(e['NEMORUN_TEST_SSH_PORT'])},
                               user={e['NEMORUN_TEST_SSH_USER']!r}, identity={e['NEMORUN_TEST_SSH_KEY']!r},
                               known_hosts={e['NEMORUN_TEST_SSH_KNOWN_HOSTS']!r},
                               job_dir={e['NEMORUN_TEST_SLURM_JOB_DIR']!r})
        executor = run.SlurmExecutor(tunnel=tunnel, partition={e['NEMORUN_TEST_SLURM_PARTITION']!r},
                                     account={e['NEMORUN_TEST_SLURM_ACCOUNT']!r}, time="00:10:00")
        with DAG({dag_id!r}, schedule=None, start_date=START, max_active_tasks={args.slurm_jobs}) as dag:
            for i in range({args.slurm_jobs}):
                NemorunOperator(task_id=f"s{{i}}", task=run.Script(inline="sleep 300"), executor=executor,
                                deferrable=True, poll_interval={interval})
    """))
    server.wait_for_dag(dag_id, timeout=180)
    run_id = server.trigger(dag_id, run_id=f"bench-slurm-{uuid.uuid4().hex[:8]}")["dag_run_id"]
    out: dict = {"jobs": args.slurm_jobs, "poll_interval_s": interval}
    try:
        out["all_deferred_after_s"] = round(_wait_deferred(server, dag_id, run_id, args.slurm_jobs, timeout=600), 1)
        time.sleep(2 * interval)  # the runner has connected and polls
        runner = psutil.Process(server.processes["triggerer"].pid).children(recursive=True)
        port = int(e["NEMORUN_TEST_SSH_PORT"])
        ports = set().union(*(_sshd_log.own_ports(port, p.pid) for p in runner)) if runner else set()
        start = _sshd_log.size(SSHD_LOG)
        t0 = time.monotonic()
        time.sleep(args.rounds_window)
        end = _sshd_log.size(SSHD_LOG)
        elapsed = time.monotonic() - t0
        counts = _sshd_log.count(SSHD_LOG, start, end, ports=ports)
        out.update({"window_s": round(elapsed, 1), "trigger_runner_ssh_ports": sorted(ports),
                    "sshd_commands_ours": counts["ours"]["commands"],
                    "sshd_connections_ours": counts["ours"]["connections"],
                    "sshd_commands_all_clients": counts["all"]["commands"],
                    "rounds_at_most": int(elapsed // interval) + 1})
    finally:
        _cancel_slurm_run(server, dag_id, run_id, args.slurm_jobs)
    return out


def _cancel_slurm_run(server: AirflowServer, dag_id: str, run_id: str, n: int) -> None:
    """Fail the run (the triggers' kill hook cancels the jobs), then cancel whatever job of the run is left."""
    from nemorun_airflow.operators import job_key

    try:
        server.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
    finally:
        executor = _slurm_executor()
        for i in range(n):
            for attempt in range(3):
                handle = executor.find(job_key(dag_id, run_id, f"s{i}", attempt=attempt), "")
                if handle is not None:
                    executor.cancel(handle)


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of each footprint window")
    parser.add_argument("--slurm-jobs", type=int, default=20)
    parser.add_argument("--rounds-window", type=float, default=20.0, help="seconds of each Slurm polling window")
    parser.add_argument("--skip", action="append", default=[], choices=["triggerer", "slurm", "slurm_triggerer"])
    parser.add_argument("--out")
    args = parser.parse_args()
    import structlog  # Airflow's loggers: quiet the in-process triggers' job lines

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    results: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    if "slurm" not in args.skip:
        results["slurm_batching"] = slurm_batching(args)
        print(json.dumps(results["slurm_batching"]), file=sys.stderr, flush=True)
    if not {"triggerer", "slurm_triggerer"} <= set(args.skip):
        home = tempfile.mkdtemp(prefix="nemorun-bench-airflow-")
        os.environ["NEMORUN_HOME"] = os.path.join(home, "nemorun")  # this process finds the workers' jobs
        t0 = time.monotonic()
        server = AirflowServer.start(os.path.join(home, "airflow"), timeout=300, env={
            "PYTHONPATH": str(REPO), "NEMORUN_HOME": os.environ["NEMORUN_HOME"]})
        results["deployment_healthy_after_s"] = round(time.monotonic() - t0, 1)
        try:
            if "triggerer" not in args.skip:
                results["triggerer"] = triggerer(server, args)
                print(json.dumps(results["triggerer"]), file=sys.stderr, flush=True)
            if "slurm_triggerer" not in args.skip:
                results["slurm_triggerer"] = slurm_triggerer(server, args)
        finally:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)  # kept when a step failed: its logs say why
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
