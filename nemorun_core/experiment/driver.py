"""``python -m nemorun_core.experiment.driver HOME EXPERIMENT_ID``: run a detached experiment's task graph.

Started by ``exp.run(detach=True)`` in its own session. It loads the experiment from the store and runs the same
scheduler as an attached run; tasks that already have a handle are watched, not submitted again, so a driver
started again after a crash resumes where the last one stopped. SIGTERM (``exp.cancel()``) stops it from
submitting anything more: unsubmitted tasks end CANCELLED, running ones are cancelled.
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m nemorun_core.experiment.driver NEMORUN_HOME EXPERIMENT_ID", file=sys.stderr)
        return 2
    from nemorun_core.experiment.experiment import Experiment
    from nemorun_core.experiment.scheduler import Scheduler

    exp = Experiment.from_id(args[1], home=args[0])
    meta_options = _options(exp)
    scheduler = Scheduler(exp, limit=meta_options.get("max_concurrent"), tail_logs=False, quiet=False)

    def stop(signum, _frame):  # noqa: ANN001
        scheduler._stop = True
        for spec in exp._tasks.values():
            if spec.handle is not None:
                spec.executor.cancel(spec.handle)

    signal.signal(signal.SIGTERM, stop)
    scheduler.run_to_end()
    return 0


def _options(exp) -> dict:  # noqa: ANN001
    import os

    from nemorun_core.experiment.persist import EXPERIMENT_FILE

    return (exp.store.read_json(os.path.join(exp.dir, EXPERIMENT_FILE)) or {}).get("options", {})


if __name__ == "__main__":
    sys.exit(main())
