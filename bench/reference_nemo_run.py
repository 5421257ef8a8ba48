"""Reference figures for the public NeMo Run 0.11.1, to compare nemorun against.

Run with the reference venv (bash bench/setup_reference.sh):

    .bench/nemo-run-venv/bin/python bench/reference_nemo_run.py [--exp-repeats 3] [--out FILE]

Prints one JSON document with:

  import      ``import nemo_run``: median of 7 fresh interpreters (time inside the interpreter, and the
              whole subprocess wall time including interpreter start-up); one discarded warm-up first, so
              that .pyc compilation after a fresh install is not counted.
  run         ``run.run(run.Partial(trivial_fn, x=1), executor=run.LocalExecutor())``: call-to-return wall
              time, 5 calls in one process (after ``import nemo_run``); median, plus the first call alone.
  experiment  ``with run.Experiment(...) as exp: exp.add(...) x 20; exp.run(sequential=False, detach=False)``:
              wall time from entering the ``with`` to leaving it (NeMo Run waits for LocalExecutor jobs in
              ``Experiment.__exit__``), per repeat; every job must end SUCCEEDED.

Facts taken from NeMo Run 0.11.1's own source (nemo_run/run/api.py, nemo_run/run/experiment.py):
  * ``run.run(fn, executor, ..., detach=False, tail_logs=True)`` wraps an ``Experiment`` and calls
    ``exp.run(detach=detach)``; the wait happens when that ``with`` block exits.
  * ``Experiment.run(sequential=False, detach=False, tail_logs=False, direct=False)`` has no max-concurrency
    parameter. The only related knob is ``Experiment(..., threadpool_workers=16)``, the size of the thread pool
    that *launches* the jobs of one dependency level; it does not limit how many launched local jobs run at
    once. The experiment is measured with the default and with ``threadpool_workers=4``.
  * ``NEMORUN_HOME`` (default ``~/.nemo_run``) is read once at import: every measured process gets a temp
    ``NEMORUN_HOME`` and ``HOME``, so nothing lands in the user's home.

Each measurement runs in a child process with a timeout (its whole process group is killed on expiry), so a
hung reference run cannot hang the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------------------
# children: each runs in its own interpreter, writes its figures as JSON to --out


def _marker(out: Path) -> Path:
    """A file each job appends a line to (see _tasks.trivial_fn); job processes inherit the variable."""
    marker = out.with_suffix(".marker")
    marker.write_text("")
    os.environ["NEMO_RUN_BENCH_MARKER"] = str(marker)
    return marker


def _ran(marker: Path) -> int:
    return len(marker.read_text().splitlines())


def child_run(repeats: int, out: Path) -> None:
    import nemo_run as run
    from _tasks import trivial_fn

    marker = _marker(out)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.run(run.Partial(trivial_fn, x=1), executor=run.LocalExecutor(), detach=False)
        samples.append(time.perf_counter() - t0)
    out.write_text(json.dumps({"samples_s": samples, "jobs_ran": _ran(marker)}))


def child_experiment(tasks: int, threadpool_workers: int | None, out: Path) -> None:
    import nemo_run as run
    from _tasks import trivial_fn

    marker = _marker(out)
    kwargs: dict[str, Any] = {}
    if threadpool_workers is not None:
        kwargs["threadpool_workers"] = threadpool_workers
    t0 = time.perf_counter()
    with run.Experiment("bench-experiment", executor=run.LocalExecutor(), **kwargs) as exp:
        for i in range(tasks):
            exp.add(run.Partial(trivial_fn, x=i), name=f"task-{i}")
        t_launch = time.perf_counter()
        exp.run(sequential=False, detach=False)
        t_run_returned = time.perf_counter()
    wall = time.perf_counter() - t0
    states = [str(job.state) for job in exp.jobs]
    out.write_text(
        json.dumps(
            {
                "wall_s": wall,
                "add_s": t_launch - t0,
                "run_call_s": t_run_returned - t_launch,
                "exit_wait_s": t0 + wall - t_run_returned,
                "states": sorted(set(states)),
                "jobs_ran": _ran(marker),
                "all_succeeded": all(s.endswith("SUCCEEDED") for s in states)
                and len(states) == tasks
                and _ran(marker) == tasks,
            }
        )
    )


def child_import(out: Path) -> None:
    t0 = time.perf_counter()
    import nemo_run  # noqa: F401

    out.write_text(json.dumps({"import_s": time.perf_counter() - t0}))


# ---------------------------------------------------------------------------------------------------------
# parent


class ChildFailed(RuntimeError):
    pass


def run_child(args: list[str], env: dict[str, str], workdir: Path, timeout: float) -> tuple[dict, float]:
    """Run this script as a child with ARGS; return (its JSON, wall seconds of the whole subprocess)."""
    out = Path(tempfile.mkstemp(dir=workdir, suffix=".json")[1])
    log = out.with_suffix(".log")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args, "--child-out", str(out)]
    t0 = time.perf_counter()
    with open(log, "wb") as logf:
        # Own session: on timeout the whole group (NeMo Run's job processes included) is killed.
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ChildFailed(f"{args} timed out after {timeout} s; log: {log}") from None
    wall = time.perf_counter() - t0
    if rc != 0 or out.stat().st_size == 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ChildFailed(f"{args} exited {rc}; log {log}:\n{tail}")
    return json.loads(out.read_text()), wall


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
        "samples_s": [round(s, 4) for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-repeats", type=int, default=7)
    parser.add_argument("--run-repeats", type=int, default=5)
    parser.add_argument("--exp-tasks", type=int, default=20)
    parser.add_argument("--exp-repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to each child process")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp HOME (logs, experiment dirs)")
    # internal
    parser.add_argument("--child", choices=["import", "run", "experiment"])
    parser.add_argument("--child-out", type=Path)
    parser.add_argument("--threadpool-workers", type=int)
    args = parser.parse_args()

    if args.child == "import":
        child_import(args.child_out)
        return 0
    if args.child == "run":
        child_run(args.run_repeats, args.child_out)
        return 0
    if args.child == "experiment":
        child_experiment(args.exp_tasks, args.threadpool_workers, args.child_out)
        return 0

    import importlib.metadata as md

    workdir = Path(tempfile.mkdtemp(prefix="nemo-run-bench-"))
    env = dict(os.environ)
    env.update(
        HOME=str(workdir / "home"),
        NEMORUN_HOME=str(workdir / "nemorun_home"),
        # the task module for the LocalExecutor's job processes, which inherit this environment
        PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
        # NeMo Run's LocalExecutor starts jobs with a bare `python -m nemo_run.core.runners.fdl_runner`, i.e.
        # whatever `python` is first on PATH: it assumes an activated venv. Activate it for the children.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        VIRTUAL_ENV=str(Path(sys.executable).parent.parent),
        NO_COLOR="1",
        TERM="dumb",
    )
    (workdir / "home").mkdir()
    result: dict[str, Any] = {
        "nemo_run_version": md.version("nemo-run"),
        "leptonai_version": md.version("leptonai"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "workdir": str(workdir),
    }
    errors: list[str] = []
    try:
        # (a) import time in fresh interpreters; one warm-up so a cold .pyc compile is not counted
        warm, warm_wall = run_child(["import"], env, workdir, args.timeout)
        inner, outer = [], []
        for _ in range(args.import_repeats):
            data, wall = run_child(["import"], env, workdir, args.timeout)
            inner.append(data["import_s"])
            outer.append(wall)
        result["import"] = {
            "in_process": summary(inner),
            "subprocess_wall": summary(outer),
            "warmup_discarded_s": round(warm["import_s"], 4),
        }

        # (b) run.run(...) on the LocalExecutor
        try:
            data, wall = run_child(["run", "--run-repeats", str(args.run_repeats)], env, workdir, args.timeout)
            result["run"] = {**summary(data["samples_s"]), "first_call_s": round(data["samples_s"][0], 4)}
            if data["jobs_ran"] != args.run_repeats:
                errors.append(f"run: {data['jobs_ran']} of {args.run_repeats} jobs ran")
        except ChildFailed as e:
            errors.append(f"run: {e}")

        # (c) 20-task parallel experiment, default launch pool and a pool of 4
        for label, workers in (("experiment_default_pool", None), ("experiment_threadpool_workers_4", 4)):
            reps = []
            try:
                for _ in range(args.exp_repeats):
                    extra = ["--threadpool-workers", str(workers)] if workers else []
                    data, wall = run_child(
                        ["experiment", "--exp-tasks", str(args.exp_tasks), *extra], env, workdir, args.timeout
                    )
                    if not data["all_succeeded"]:
                        errors.append(f"{label}: not every job SUCCEEDED: {data['states']}")
                    reps.append(data)
                walls = [r["wall_s"] for r in reps]
                result[label] = {
                    "tasks": args.exp_tasks,
                    "threadpool_workers": workers or 16,
                    **summary(walls),
                    "phases_s": [
                        {k: round(r[k], 3) for k in ("add_s", "run_call_s", "exit_wait_s")} for r in reps
                    ],
                    "all_succeeded": all(r["all_succeeded"] for r in reps),
                }
            except ChildFailed as e:
                errors.append(f"{label}: {e}")
        result["max_concurrency_knob"] = (
            "none: Experiment.run(sequential, detach, tail_logs, direct) has no concurrency limit; "
            "Experiment(threadpool_workers=16) only sizes the launch thread pool"
        )
    finally:
        if errors:
            result["errors"] = errors
        if not args.keep and not errors:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
            result.pop("workdir")

    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
