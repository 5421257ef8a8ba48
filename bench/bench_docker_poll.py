"""Docker poll rounds at scale (issue 11): engine calls and seconds per round of status + new log lines of N jobs.

    bash scripts/services/docker.sh start; eval "$(bash scripts/services/docker.sh env)"
    .venvs/prefect/bin/python bench/bench_docker_poll.py [--sizes 1,20,100] [--rounds 5]

N busybox containers (``network="none"``) each print a line a second. Once all run and printed, two kinds of rounds,
each from the offset the previous round of its kind reached (what a poller does):

* before: the contract's generic ``Executor.poll_many`` (``status_many`` + ``logs`` per job), logs read through the
  engine's API, as the Docker executor did before (the whole log, and an inspect, per job and round);
* now: ``DockerExecutor.poll_many`` (one container list; new lines read from the engine's log files by position).

Engine calls are the HTTP requests the executor's Docker client sends (its ``APIClient.send``, counted); seconds are
medians over ``--rounds``. The containers are removed at the end.
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

TICKER = 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 1; done'


def _round(poll, offsets: dict, host: str) -> tuple[int, float]:
    """One round from ``offsets`` (advanced in place); (engine calls, seconds)."""
    from nemorun_core.executors.docker import engine

    with engine.counting_requests(host) as counted:
        start = time.perf_counter()
        answer = poll(offsets)
        elapsed = time.perf_counter() - start
    for handle, (_, lines) in answer.items():
        offsets[handle] += len(lines)
    return counted["n"], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,20,100")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    host, image = os.environ.get("NEMORUN_TEST_DOCKER_HOST"), os.environ.get("NEMORUN_TEST_DOCKER_BUSYBOX")
    if not host or not image:
        raise SystemExit('run `bash scripts/services/docker.sh start; eval "$(bash scripts/services/docker.sh env)"`')
    os.environ["NEMORUN_HOME"] = tempfile.mkdtemp(prefix="nemorun-bench-docker-poll-")

    import nemorun_core as run
    from nemorun_core.executors.base import Executor, Job, JobState
    from nemorun_core.executors.docker import engine

    now = run.DockerExecutor(container_image=image, docker_host=host, network="none", cancel_grace_s=0)
    before = run.DockerExecutor(container_image=image, docker_host=host, network="none", cancel_grace_s=0)
    before._engine_logs().pin_root(host, None)  # every log through the engine's API, as before
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        tag = f"bench-poll-{uuid.uuid4().hex[:8]}"
        handles = [now.submit(Job(f"t{i}", f"{tag}/t{i}/0", ["/bin/sh", "-c", TICKER],
                                  tempfile.mkdtemp(prefix="nemorun-bench-job-"))) for i in range(n)]
        try:
            deadline = time.time() + 300
            while not all(s.state is JobState.RUNNING for s in now.status_many(handles).values()):
                if time.time() > deadline:
                    raise SystemExit(f"the {n} containers did not all start in 300 s")
                time.sleep(0.5)
            time.sleep(3)  # a few lines each
            old_offsets, new_offsets = {h: 0 for h in handles}, {h: 0 for h in handles}
            now.poll_many(dict(new_offsets))  # warm-up: the engine's log directory is asked once
            old = [_round(lambda o: Executor.poll_many(before, o), old_offsets, host) for _ in range(args.rounds)]
            new = [_round(now.poll_many, new_offsets, host) for _ in range(args.rounds)]
            rows.append((n, statistics.median(c for c, _ in old), statistics.median(s for _, s in old),
                         statistics.median(c for c, _ in new), statistics.median(s for _, s in new)))
        finally:
            for h in handles:
                now.cancel(h)
            for c in engine.client(host).containers.list(all=True, filters={"label": "nemorun.key"}):
                if c.labels.get("nemorun.key", "").startswith(tag):
                    c.remove(force=True)
    print(f"{'N running':>9} | {'before: calls':>13} {'s/round':>8} | {'now: calls':>10} {'s/round':>8}")
    for n, oc, os_, nc, ns in rows:
        print(f"{n:9d} | {oc:13.0f} {os_:8.3f} | {nc:10.0f} {ns:8.3f}")


if __name__ == "__main__":
    main()
