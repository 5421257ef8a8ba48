"""Tasks for the reference benchmark. They live in an importable module (bench/ on PYTHONPATH) because NeMo
Run's LocalExecutor runs each task in a fresh process that must import the function by name."""

import os


def trivial_fn(x: int) -> int:
    """Return ``x + 1``: the job costs nothing, so what is measured is NeMo Run's own overhead.

    When NEMO_RUN_BENCH_MARKER names a file, one line is appended to it, so the benchmark can check that every
    job really ran (``run.run`` returns nothing to check).
    """
    marker = os.environ.get("NEMO_RUN_BENCH_MARKER")
    if marker:
        # One short O_APPEND write per process: concurrent jobs cannot interleave inside a line.
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"{x}\n")
    return x + 1
