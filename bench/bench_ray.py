"""Ray figures (issue 14): RayJob against Ray's JobSubmissionClient on the same cluster, and polling cost.

    bash scripts/services/ray.sh start; eval "$(bash scripts/services/ray.sh env)"
    .venvs/prefect/bin/python bench/bench_ray.py [--repeats 5] [--jobs 100] [--tasks 20]

* start-to-RUNNING: ``RayJob.start(command=...)`` of a job that sleeps, until ``status()`` first says RUNNING;
  beside it ``client.submit_job(entrypoint=...)`` until ``client.get_job_status`` says RUNNING.
* start-to-result: the same with a trivial job (``echo 2``), until SUCCEEDED and its log is read.
* status of N jobs: ``RayExecutor.status_many`` of N submitted jobs, with the HTTP requests it sent counted
  (``client.counting_requests``): one ``list_jobs`` whatever N.
* experiment: ``--tasks`` trivial Python tasks on ``RayExecutor``, 4 at a time (``max_concurrent=4``), against the
  same jobs submitted directly with the client, 4 at a time.

Medians of ``--repeats`` runs after one warm-up each, in this process (one client per address, as in a long-lived
launcher). Poll interval 0.1 s on both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

POLL = 0.1


def _until(check, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(POLL)


def _direct(client, entrypoint: str, until: str) -> float:
    from ray.job_submission import JobStatus

    t = time.perf_counter()
    sid = client.submit_job(entrypoint=entrypoint, submission_id=f"bench-direct-{uuid.uuid4().hex[:10]}")
    if until == "RUNNING":
        _until(lambda: client.get_job_status(sid) in (JobStatus.RUNNING, JobStatus.SUCCEEDED))
    else:
        _until(lambda: client.get_job_status(sid).is_terminal())
    if until == "SUCCEEDED":
        client.get_job_logs(sid)
    elapsed = time.perf_counter() - t
    client.stop_job(sid)
    return elapsed


def _rayjob(cluster, command: str, until: str) -> float:
    from nemorun_core.executors.base import JobState
    from nemorun_core.run.ray import RayJob

    job = RayJob(name=f"bench-{uuid.uuid4().hex[:10]}", cluster=cluster)
    t = time.perf_counter()
    job.start(command=command)
    if until == "RUNNING":
        _until(lambda: job.status().state in (JobState.RUNNING, JobState.SUCCEEDED))
    else:
        _until(lambda: job.status().is_terminal)
        job.logs(follow=False, emit=lambda line: None)
    elapsed = time.perf_counter() - t
    job.stop()
    return elapsed


def _median(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


def _experiment(address: str, tasks: int) -> float:
    import nemorun_core as run

    ex = run.RayExecutor(address=address)
    t = time.perf_counter()
    with run.Experiment("bench-ray") as exp:
        for i in range(tasks):
            exp.add(run.Partial(int, str(i)), name=f"t{i}", executor=ex)
        exp.run(max_concurrent=4)
    assert [exp.result(f"t{i}") for i in range(tasks)] == list(range(tasks))
    return time.perf_counter() - t


def _direct_batch(client, tasks: int) -> float:
    t = time.perf_counter()
    waiting = list(range(tasks))
    running: list[str] = []
    while waiting or running:
        while waiting and len(running) < 4:
            i = waiting.pop()
            running.append(client.submit_job(entrypoint=f"python -c 'print(int({i}))'",
                                             submission_id=f"bench-batch-{uuid.uuid4().hex[:10]}"))
        statuses = {j.submission_id: j.status for j in client.list_jobs()}
        running = [sid for sid in running if not statuses[sid].is_terminal()]
        time.sleep(POLL)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    address = os.environ.get("NEMORUN_TEST_RAY_ADDRESS")
    if not address:
        raise SystemExit("NEMORUN_TEST_RAY_ADDRESS is not set: eval \"$(bash scripts/services/ray.sh env)\"")
    os.environ.setdefault("NEMORUN_HOME", tempfile.mkdtemp(prefix="bench-ray-"))

    import nemorun_core as run
    from nemorun_core.executors.base import Job
    from nemorun_core.executors.ray import client as C
    from nemorun_core.run.ray import RayCluster

    client = C.client(address)
    cluster = RayCluster(name="bench", address=address)
    rows = []
    for label, command, until in (("start to RUNNING", "sleep 30", "RUNNING"),
                                  ("start to result", "echo 2", "SUCCEEDED")):
        direct = _median(lambda: _direct(client, command, until), args.repeats)
        ours = _median(lambda: _rayjob(cluster, command, until), args.repeats)
        rows.append((label, direct, ours))

    ex = run.RayExecutor(address=address)
    scope = uuid.uuid4().hex[:8]
    tmp = tempfile.mkdtemp(prefix="bench-ray-jobs-")
    # Submitted in waves of 5 (each Ray job has a supervisor process: 100 at once would not fit a small machine);
    # list_jobs answers for ended jobs as for running ones.
    handles = []
    for i in range(args.jobs):
        handles.append(ex.submit(Job(f"j{i}", f"bench-{scope}/j{i}/0", ["/bin/sh", "-c", "true"],
                                     os.path.join(tmp, f"j{i}"))))
        if len(handles) % 5 == 0:
            _until(lambda: all(s.is_terminal for s in ex.status_many(handles[-5:]).values()))
    with C.counting_requests(address) as counted:
        t = time.perf_counter()
        statuses = ex.status_many(handles)
        status_s = time.perf_counter() - t
    assert len(statuses) == args.jobs and all(s.is_terminal for s in statuses.values())

    experiment_s = _experiment(address, args.tasks)
    direct_batch_s = _direct_batch(client, args.tasks)

    print("| measure | JobSubmissionClient | nemorun | ratio |")
    print("|---|---|---|---|")
    for label, direct, ours in rows:
        print(f"| {label} | {direct:.2f} s | {ours:.2f} s | {ours / direct:.2f}x |")
    print(f"| {args.tasks} tasks, 4 at a time | {direct_batch_s:.1f} s | {experiment_s:.1f} s | "
          f"{experiment_s / direct_batch_s:.2f}x |")
    print(f"\nstatus_many of {args.jobs} jobs: {counted['n']} HTTP request(s), {status_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
