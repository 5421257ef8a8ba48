"""What nemorun_prefect adds over the bare core, against a real Prefect server (issue 5).

    .venvs/prefect/bin/python bench/bench_prefect.py [--repeats 9] [--exp-repeats 5] [--settle 1] [--out FILE]

Starts a ``prefect server start`` process (temporary PREFECT_HOME and SQLite database, 127.0.0.1 on a free port, no
UI, no analytics) and waits until it answers ``/api/health``. Then one child process (``PREFECT_API_URL`` pointed at
that server, a temporary ``NEMORUN_HOME``) measures, each after one warm-up, wall time from the call to the result:

* one task: ``run.run(run.Partial(trivial_fn, x=1), executor=run.LocalExecutor(), tail_logs=False)`` against a flow
  that returns ``run_nemorun_task(<the same Partial>, run.LocalExecutor(), name="t")``;
* Prefect's own cost for comparison: a flow with no task, and a flow calling one empty
  ``@task(cache_policy=NO_CACHE)`` (nemorun_prefect's tasks have no cache policy either);
* 20 trivial tasks, ``max_concurrent=4``: ``with run.Experiment(...)`` to all results against
  ``experiment_flow(exp, max_concurrent=4)``; and Prefect's own: a flow that submits 20 empty ``@task`` runs to its
  (default, thread-pool) task runner and waits for them;
* 10 trivial tasks one after the other: 10 ``run.run`` calls against a flow calling ``run_nemorun_task`` 10 times,
  and a flow calling an empty ``@task`` 10 times.

Every Prefect 3.8 flow run, with default settings, ends by joining its heartbeat thread, which sleeps in 1 s steps:
a flow run of less than a second takes about 1.1 s whatever it does. The one-task flow is measured that way once
(what users get); everything else runs with ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` set to None (in the child's
settings context), so that what nemorun_prefect adds is visible.

Each figure is the median of ``--repeats`` (``--exp-repeats`` for 20 tasks) after one warm-up, the measures of a group
taking turns, each call after a pause of ``--settle`` seconds: right after a burst of state changes the server (on
SQLite) is still writing their events, and a call then may be answered 503, which Prefect's client retries 2 s
later; that is the server's contention, not a cost of the call. ``trivial_fn`` is ``bench/_tasks.py``'s, the same
as ``bench_core.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

CHILD = """
import json, statistics, time
import nemorun_core as run
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from nemorun_prefect import experiment_flow, run_nemorun_task
from _tasks import trivial_fn

REPEATS, EXP_REPEATS, SETTLE = {repeats}, {exp_repeats}, {settle}

# No cache policy, like nemorun_prefect's tasks: Prefect's default one hashes the task's source and inputs.
@task(cache_policy=NO_CACHE)
def empty():
    return 1

@flow
def no_task_flow():
    return 1

@flow
def empty_task_flow():
    return empty()

@flow
def nemorun_task_flow():
    return run_nemorun_task(run.Partial(trivial_fn, x=1), run.LocalExecutor(), name="t")

@flow
def empty_tasks_20_flow():
    return [f.result() for f in [empty.submit() for _ in range(20)]]

@flow
def nemorun_tasks_10_flow():
    return [run_nemorun_task(run.Partial(trivial_fn, x=i), run.LocalExecutor(), name=f"t{{i}}") for i in range(10)]

@flow
def empty_tasks_10_flow():
    return [empty() for _ in range(10)]

def core_10():
    for i in range(10):
        assert run.run(run.Partial(trivial_fn, x=i), executor=run.LocalExecutor(), tail_logs=False) == i + 1

def core_one():
    assert run.run(run.Partial(trivial_fn, x=1), executor=run.LocalExecutor(), tail_logs=False) == 2

def prefect_one():
    assert nemorun_task_flow() == 2

def experiment():
    e = run.Experiment("bench20")
    for i in range(20):
        e.add(run.Partial(trivial_fn, x=i), name=f"t{{i}}")
    return e

def core_20():
    with experiment() as e:
        e.run(max_concurrent=4, quiet=True)
    assert e.results() == {{f"t{{i}}": i + 1 for i in range(20)}}

def prefect_20():
    assert experiment_flow(experiment(), max_concurrent=4) == {{f"t{{i}}": i + 1 for i in range(20)}}

# One warm-up of each, then `repeats` rounds that time each once, with a pause before each call: right after a
# burst of state changes the server is still writing their events into SQLite, and a call then may get a 503 that
# Prefect's client retries 2 s later (not what is measured here).
def interleaved(measures, repeats):
    for fn in measures.values():
        fn()
    samples = {{name: [] for name in measures}}
    for _ in range(repeats):
        for name, fn in measures.items():
            time.sleep(SETTLE)
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
    return samples

figures = interleaved({{"prefect_one_default": prefect_one}}, REPEATS)
# The rest without Prefect's flow heartbeat thread, whose join costs up to 1 s at the end of every flow run and
# would hide everything else (it sleeps in 1 s steps).
with temporary_settings(updates={{PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}}):
    figures.update(interleaved({{
        "core_one": core_one, "prefect_one": prefect_one, "no_task_flow": no_task_flow,
        "empty_task_flow": empty_task_flow, "core_10": core_10, "prefect_10": nemorun_tasks_10_flow,
        "empty_tasks_10_flow": empty_tasks_10_flow,
    }}, REPEATS))
    figures.update(interleaved({{
        "core_20": core_20, "prefect_20": prefect_20, "empty_tasks_20_flow": empty_tasks_20_flow,
    }}, EXP_REPEATS))
print("BENCH " + json.dumps(figures))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: str) -> tuple[subprocess.Popen, str]:
    """A ``prefect server start`` in its own process group; returns it and its API URL once it is healthy."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=os.path.join(root, "server-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    log = open(os.path.join(root, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port), "--no-ui", "--analytics-off"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.25)
    stop_server(proc)
    tail = Path(root, "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"prefect server did not come up on {url}; its log ends with:\n{tail}")


def stop_server(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def measure(repeats: int, exp_repeats: int, settle: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="nemorun-bench-prefect-") as root:
        proc, url = start_server(root)
        try:
            env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": os.path.join(root, "client-home"),
                   "NEMORUN_HOME": os.path.join(root, "nemorun-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)])}
            code = CHILD.format(repeats=repeats, exp_repeats=exp_repeats, settle=settle)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800,
                                 stdin=subprocess.DEVNULL, cwd=str(BENCH))
        finally:
            stop_server(proc)
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9, help="measured calls per one-task figure")
    parser.add_argument("--exp-repeats", type=int, default=5, help="measured runs per 20-task figure")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of pause before each measured call")
    parser.add_argument("--out", help="also write the raw figures (every sample) as JSON here")
    args = parser.parse_args()
    raw = measure(args.repeats, args.exp_repeats, args.settle)
    med = {k: statistics.median(v) for k, v in raw.items()}
    rows = [
        ("flow returning run_nemorun_task, Prefect defaults", med["prefect_one_default"]),
        ("(below: flow heartbeats off)", None),
        ("run.run, trivial Partial (bare core)", med["core_one"]),
        ("flow returning run_nemorun_task(same Partial)", med["prefect_one"]),
        ("  Prefect alone: flow with no task", med["no_task_flow"]),
        ("  Prefect alone: flow with one empty @task", med["empty_task_flow"]),
        ("Experiment of 20 tasks, max_concurrent=4 (core)", med["core_20"]),
        ("experiment_flow of the same 20 tasks", med["prefect_20"]),
        ("  Prefect alone: flow with 20 empty tasks submitted", med["empty_tasks_20_flow"]),
        ("10 run.run one after the other (core)", med["core_10"]),
        ("flow calling run_nemorun_task 10 times in a row", med["prefect_10"]),
        ("  Prefect alone: flow calling an empty task 10 times", med["empty_tasks_10_flow"]),
    ]
    print(f"{'measure (median)':52} {'seconds':>9}")
    for label, value in rows:
        print(f"{label:52} {value:9.3f}" if value is not None else label)
    one_over = med["prefect_one"] - med["core_one"]
    print(f"\none task: Prefect path - bare core = {one_over:.3f} s; Prefect's own flow + one task = "
          f"{med['empty_task_flow']:.3f} s; left for nemorun_prefect = {one_over - med['empty_task_flow']:.3f} s")
    print(f"one task, slowest of {args.repeats}: {max(raw['prefect_one']):.3f} s (a 1 s status poll would show "
          "here as about +0.5 s on average)")
    exp_over = med["prefect_20"] - med["core_20"]
    print(f"20 tasks: experiment_flow - Experiment.run = {exp_over:.3f} s; Prefect's own 20 empty tasks = "
          f"{med['empty_tasks_20_flow']:.3f} s; left for nemorun_prefect = "
          f"{exp_over - med['empty_tasks_20_flow']:.3f} s ({(exp_over - med['empty_tasks_20_flow']) / 20 * 1000:.0f}"
          " ms per task)")
    seq = (med["prefect_10"] - med["empty_tasks_10_flow"] - med["core_10"]) / 10
    print(f"10 tasks in a row: per task, nemorun_prefect adds {seq * 1000:.1f} ms over run.run plus an empty Prefect "
          f"task ({(med['empty_tasks_10_flow'] - med['no_task_flow']) / 10 * 1000:.1f} ms each)")
    if args.out:
        Path(args.out).write_text(json.dumps({"samples": raw, "medians": med}, indent=1))


if __name__ == "__main__":
    main()
