"""nemorun's core figures (issue 2), side by side with NeMo Run 0.11.1 and with the hand-launched limit.

    .venvs/prefect/bin/python bench/bench_core.py [--reference .bench/reference_nemo_run.json] [--out FILE]

Measures, on this machine:

* ``import nemorun_core``: median of 9 fresh interpreters (time inside the interpreter), after one warm-up; also
  ``import nemorun_core`` plus the first ``run.Config`` (which loads Fiddle), for honesty about what a script pays.
* ``run.run(run.Partial(trivial_fn, x=1), executor=run.LocalExecutor())``: call to result, the first call in a
  fresh process and the median of 9 further calls.
* an experiment of 20 trivial tasks with ``max_concurrent=4``: wall time from entering ``with run.Experiment`` to
  all results known; median of 3.
* the limit: the same 20 tasks as ``python -c "from _tasks import trivial_fn; print(trivial_fn(i))"`` processes
  launched by hand, at most 4 at a time: median of 3.

Reference figures come from ``bench/reference_nemo_run.py`` (its JSON output), run in NeMo Run's own venv.
Every measurement runs in a child process with a temporary ``NEMORUN_HOME``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def _child(code: str, home: str, timeout: float = 300) -> dict:
    env = {**os.environ, "NEMORUN_HOME": home, "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout,
                         stdin=subprocess.DEVNULL, cwd=str(BENCH))
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


IMPORT = """
import json, time
t = time.perf_counter()
import nemorun_core as run
a = time.perf_counter() - t
{extra}
print(json.dumps({{"import": a, "total": time.perf_counter() - t}}))
"""

RUN = """
import json, time
import nemorun_core as run
from _tasks import trivial_fn
cfg = run.Partial(trivial_fn, x=1)
times = []
for i in range(10):
    t = time.perf_counter()
    assert run.run(cfg, executor=run.LocalExecutor(), tail_logs=False) == 2
    times.append(time.perf_counter() - t)
print(json.dumps({"first": times[0], "rest": times[1:]}))
"""

EXPERIMENT = """
import json, time
import nemorun_core as run
from _tasks import trivial_fn
run.Partial(trivial_fn, x=0)  # load Fiddle before timing: the by-hand launcher pays no import either
t = time.perf_counter()
with run.Experiment("bench20") as exp:
    for i in range(20):
        exp.add(run.Partial(trivial_fn, x=i), name=f"t{i}")
    exp.run(max_concurrent=4, quiet=True)
results = exp.results()
elapsed = time.perf_counter() - t
assert results == {f"t{i}": i + 1 for i in range(20)}, results
print(json.dumps({"seconds": elapsed}))
"""

BY_HAND = """
import json, subprocess, sys, time
t = time.perf_counter()
running, started = [], 0
while started < 20 or running:
    while started < 20 and len(running) < 4:
        code = f"from _tasks import trivial_fn; print(trivial_fn({started}))"
        running.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL))
        started += 1
    running[0].wait()
    running = [p for p in running if p.poll() is None]
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


RUNNERS_BY_HAND = """
import json, os, shutil, subprocess, sys, tempfile, time
import nemorun_core as run
from _tasks import trivial_fn
# Prepare 20 job directories exactly as the experiment does (outside the timing), then start the same
# `python -m nemorun_core.runner DIR` processes by hand, 4 at a time.
exp = run.Experiment("prep")
for i in range(20):
    exp.add(run.Partial(trivial_fn, x=i), name=f"t{i}")
exp.run(max_concurrent=4, quiet=True)
dirs = [os.path.join(exp.dir, "tasks", f"t{i}") for i in range(20)]
for d in dirs:
    os.remove(os.path.join(d, "result.json"))
t = time.perf_counter()
running, started = [], 0
while started < 20 or running:
    while started < 20 and len(running) < 4:
        running.append(subprocess.Popen([sys.executable, "-m", "nemorun_core.runner", dirs[started]],
                                        stdout=subprocess.DEVNULL))
        started += 1
    running[0].wait()
    running = [p for p in running if p.poll() is None]
elapsed = time.perf_counter() - t
assert all(os.path.exists(os.path.join(d, "result.json")) for d in dirs)
print(json.dumps({"seconds": elapsed}))
"""


def measure() -> dict:
    with tempfile.TemporaryDirectory() as home:
        _child(IMPORT.format(extra=""), home)  # warm-up: bytecode, disk cache
        imports = [_child(IMPORT.format(extra=""), home)["import"] for _ in range(9)]
        with_config = [
            _child(IMPORT.format(extra="run.Config(dict)"), home)["total"] for _ in range(5)
        ]
        runs = _child(RUN, home)
        _child(EXPERIMENT, home)  # warm-up
        experiment = [_child(EXPERIMENT, home)["seconds"] for _ in range(3)]
        by_hand = [_child(BY_HAND, home)["seconds"] for _ in range(3)]
        runners_by_hand = [_child(RUNNERS_BY_HAND, home)["seconds"] for _ in range(3)]
    return {
        "import_s": statistics.median(imports),
        "import_and_first_config_s": statistics.median(with_config),
        "run_first_call_s": runs["first"],
        "run_median_s": statistics.median(runs["rest"]),
        "experiment20_s": statistics.median(experiment),
        "by_hand20_s": statistics.median(by_hand),
        "runners_by_hand20_s": statistics.median(runners_by_hand),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default=str(REPO / ".bench" / "reference_nemo_run.json"),
                        help="JSON written by bench/reference_nemo_run.py (NeMo Run 0.11.1)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    ours = measure()
    ref = None
    if os.path.exists(args.reference):
        ref = json.loads(Path(args.reference).read_text())
    rows = [
        ("import nemorun_core (median)", ours["import_s"], _ref(ref, "import"), "<= 0.3 s"),
        ("  ... plus first run.Config (loads Fiddle)", ours["import_and_first_config_s"], None, ""),
        ("run.run trivial Partial, median", ours["run_median_s"], _ref(ref, "run"), "<= 0.4 s"),
        ("run.run, first call in a process", ours["run_first_call_s"], _ref(ref, "run_first"), ""),
        ("experiment of 20 tasks, max_concurrent=4", ours["experiment20_s"], _ref(ref, "experiment"),
         ">= 4x faster than NeMo Run"),
        ("20 python -c by hand, 4 at a time (limit)", ours["by_hand20_s"], None, "experiment within 1.5x"),
        ("20 runner job processes by hand, 4 at a time", ours["runners_by_hand20_s"], None,
         "isolates orchestration"),
    ]
    print(f"{'measure':48} {'nemorun':>10} {'NeMo Run':>10}  goal")
    for label, mine, theirs, goal in rows:
        theirs_text = f"{theirs:10.3f}" if isinstance(theirs, (int, float)) else f"{'-':>10}"
        print(f"{label:48} {mine:10.3f} {theirs_text}  {goal}")
    ratio_limit = ours["experiment20_s"] / ours["by_hand20_s"]
    print(f"\nexperiment / by-hand limit: {ratio_limit:.2f}x (goal <= 1.5x)")
    print(f"experiment / the same job processes by hand: {ours['experiment20_s'] / ours['runners_by_hand20_s']:.2f}x")
    exp_ref = _ref(ref, "experiment")
    if isinstance(exp_ref, (int, float)):
        print(f"NeMo Run experiment / nemorun experiment: {exp_ref / ours['experiment20_s']:.1f}x (goal >= 4x)")
    if args.out:
        Path(args.out).write_text(json.dumps({"nemorun": ours, "reference": ref}, indent=1))


def _ref(ref: dict | None, key: str):
    """Pick a figure out of the reference JSON, tolerant of its exact shape."""
    if not ref:
        return None
    try:
        if key == "import":
            return ref["import"]["in_process"]["median_s"]
        if key == "run":
            return ref["run"]["median_s"]
        if key == "run_first":
            return ref["run"]["first_call_s"]
        if key == "experiment":
            return ref["experiment_default_pool"]["median_s"]
    except (KeyError, TypeError):
        return None
    return None


if __name__ == "__main__":
    main()
