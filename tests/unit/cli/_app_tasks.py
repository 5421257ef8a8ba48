"""Task functions for ``test_app.py``, and a launcher of small experiments.

``python _app_tasks.py KIND`` (run in this directory, with ``NEMORUN_HOME`` set) runs one experiment the way a
user's script would and prints its id. The tasks are referenced through this module's import name, so the
store records ``_app_tasks:greet`` and not a pickled ``__main__`` function.
"""

import sys
import time


def greet(name: str = "world", lines: int = 5) -> str:
    for i in range(lines):
        print(f"line {i} {name}", flush=True)
    return f"hello {name}"


def prep(n: int = 3) -> int:
    print(f"prep {n}", flush=True)
    return n * 2


def train(steps: int = 2) -> dict:
    import nemorun_core

    for step in range(steps):
        print(f"step {step}", flush=True)
        nemorun_core.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    return {"steps": steps}


def explode() -> None:
    print("about to fail", flush=True)
    raise RuntimeError("planned failure")


def nap(seconds: float = 60.0) -> None:
    print(f"napping {seconds}", flush=True)
    time.sleep(seconds)


def launch(kind: str) -> str:
    import nemorun_core as run

    import _app_tasks as tasks  # the importable name, not __main__

    if kind == "ok":
        exp = run.Experiment("ok", title="cli ok", description="one greeting task", tags=["cli", "ok"])
        exp.add(tasks.greet, name="greet", lines=5)
        exp.run(quiet=True)
    elif kind == "multi":
        exp = run.Experiment("multi", title="cli multi", tags=["cli"])
        first = exp.add(tasks.prep, name="prep", n=4)
        exp.add(tasks.train, name="train", steps=3, dependencies=[first])
        exp.run(quiet=True)
    elif kind == "fail":
        exp = run.Experiment("fail", title="cli fail", tags=["cli", "bad"])
        exp.add(tasks.explode, name="explode")
        exp.run(quiet=True)
    elif kind in ("sleep", "short"):
        # A short grace period: the cancel test checks that the whole process group is gone soon after.
        executor = run.LocalExecutor(cancel_grace_s=1.0)
        exp = run.Experiment(kind, title=f"cli {kind}")
        exp.add(tasks.nap, name="nap", seconds=60.0 if kind == "sleep" else 1.5, executor=executor)
        exp.run(detach=True, quiet=True)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    return exp.id


if __name__ == "__main__":
    print(launch(sys.argv[1]))
