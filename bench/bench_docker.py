"""Docker executor figures (issue 4): submit-to-running latency, and the overhead over `docker run` of the same image.

    bash scripts/services/docker.sh start; eval "$(bash scripts/services/docker.sh env)"
    .venvs/prefect/bin/python bench/bench_docker.py [--repeats 7]

* `docker run`: ``docker run --rm --pull never --network none IMAGE python3 -c 'print(2)'`` with the docker.io CLI,
  wall time of the whole command (the limit).
* nemorun: ``run.run(run.Script(inline="print(2)", entrypoint="python"), executor=run.DockerExecutor(...))`` in the
  same image with ``network="none"``: call to result (create, start, wait, collect the log, clean up).
* submit-to-running: ``executor.submit(job)`` of a task that sleeps, until ``status`` first says RUNNING.

Medians of ``--repeats`` runs after one warm-up each, all in this process (the Docker SDK client is created once,
as in a long-lived launcher or orchestrator).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _docker_cli(image: str, host: str) -> float:
    docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    start = time.perf_counter()
    subprocess.run([docker, "run", "--rm", "--pull", "never", "--network", "none", image, "python3", "-c",
                    "print(2)"], check=True, capture_output=True, env={**os.environ, "DOCKER_HOST": host})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    host = os.environ.get("NEMORUN_TEST_DOCKER_HOST")
    image = os.environ.get("NEMORUN_TEST_DOCKER_PYTHON")
    if not host or not image:
        raise SystemExit('run `bash scripts/services/docker.sh start; eval "$(bash scripts/services/docker.sh env)"`')
    os.environ["NEMORUN_HOME"] = tempfile.mkdtemp(prefix="nemorun-bench-docker-")

    import nemorun_core as run
    from nemorun_core.executors.base import Job, JobState

    executor = run.DockerExecutor(container_image=image, network="none", docker_host=host)
    task = run.Script(inline="print(2)", entrypoint="python")

    def nemorun_once() -> float:
        start = time.perf_counter()
        run.run(task, executor=executor, tail_logs=False)
        return time.perf_counter() - start

    def to_running_once(i: int) -> float:
        job_dir = tempfile.mkdtemp(prefix="nemorun-bench-job-")
        job = Job(f"sleeper{i}", f"bench-docker/sleeper{i}-{time.time_ns()}/0",
                  ["python", "-c", "import time; time.sleep(3)"], job_dir)
        start = time.perf_counter()
        handle = executor.submit(job)
        while executor.status(handle).state is not JobState.RUNNING:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        executor.cancel(handle)
        return elapsed

    _docker_cli(image, host), nemorun_once(), to_running_once(-1)  # warm-ups
    cli = [_docker_cli(image, host) for _ in range(args.repeats)]
    ours = [nemorun_once() for _ in range(args.repeats)]
    latency = [to_running_once(i) for i in range(args.repeats)]
    c, o, lat = statistics.median(cli), statistics.median(ours), statistics.median(latency)
    print(f"{'measure':62} {'median':>9}")
    print(f"{'docker run --rm (CLI), python3 -c print(2): the limit':62} {c:9.3f} s")
    print(f"{'run.run of the same on DockerExecutor, call to result':62} {o:9.3f} s")
    print(f"{'overhead over docker run (goal <= 1.3x)':62} {o / c:9.2f} x")
    print(f"{'submit() to status RUNNING':62} {lat:9.3f} s")
    print(f"samples: cli={[round(x, 3) for x in cli]} nemorun={[round(x, 3) for x in ours]} "
          f"to_running={[round(x, 3) for x in latency]}")


if __name__ == "__main__":
    main()
