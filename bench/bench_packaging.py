"""Packaging figures (issue 3): GitArchivePackager and PatternPackager against plain ``git archive | gzip -n``.

    .venvs/prefect/bin/python bench/bench_packaging.py [--files 5000] [--repeats 5] [--out FILE]

Builds a temporary git repository of ``--files`` text files (log-normal sizes, median about 3 KB, a few large
ones; 10 top-level packages of 5 subpackages), commits it, then reports the median of ``--repeats`` wall times of:

* the limit: ``git archive HEAD | gzip -n > x.tgz`` (gzip's default level 6), run through ``sh``;
* for scale: the same with ``gzip -n -1``, the level our archives use;
* ``GitArchivePackager().package(repo, out)`` (includes the work-tree check: ``git status``);
* ``PatternPackager(include=["**"], exclude=[".git/"]).package(repo, out)`` over the same tree;

and the ratio packager / limit, the archive sizes, and whether a second ``package()`` of unchanged code gives the
same digest (and the same digest from both packagers: the canonical archive depends on the files only).
``--level N`` runs the packagers at another gzip level (Python's zlib, in-process), to compare levels.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nemorun_core as run  # noqa: E402

WORDS = ("def class import return self for in if else while with as model data train loss step config value "
         "tensor batch layer optimizer torch numpy").split()


def make_repo(root: str, files: int) -> int:
    """Write and commit ``files`` files under ``root``; return their total size in bytes."""
    rnd = random.Random(0)
    dirs = [f"pkg{i}/sub{j}" for i in range(10) for j in range(5)]
    total = 0
    for n in range(files):
        directory = os.path.join(root, dirs[n % len(dirs)])
        os.makedirs(directory, exist_ok=True)
        size = int(rnd.lognormvariate(8, 1.0))
        lines, length = [], 0
        while length < size:
            line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 12))) + "\n"
            lines.append(line)
            length += len(line)
        with open(os.path.join(directory, f"mod{n}.py"), "w") as f:
            f.write("".join(lines))
        total += length
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return total


def median_time(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: page cache, git's packed objects, Python imports
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the figures as JSON here")
    parser.add_argument("--level", type=int, help="gzip level for the packagers (default: the shipped one); "
                        "for comparing levels only, since the level changes every digest")
    args = parser.parse_args()
    if args.level is not None:
        from nemorun_core.packaging import _archive

        _archive.COMPRESSLEVEL = args.level
    with tempfile.TemporaryDirectory(prefix="nemorun-bench-pkg-") as tmp:
        repo, out = os.path.join(tmp, "repo"), os.path.join(tmp, "out")
        os.makedirs(repo)
        source_bytes = make_repo(repo, args.files)

        def shell(level: str) -> int:
            target = os.path.join(tmp, f"plain{level}.tgz")
            subprocess.run(f"git archive HEAD | gzip -n {level} > {target}", shell=True, cwd=repo, check=True)
            return os.path.getsize(target)

        git_packager = run.GitArchivePackager()
        pattern_packager = run.PatternPackager(include=["**"], exclude=[".git/"])
        limit, limit_size = median_time(lambda: shell(""), args.repeats)
        fast, fast_size = median_time(lambda: shell("-1"), args.repeats)
        git_time, git_pkg = median_time(lambda: git_packager.package(repo, out), args.repeats)
        pattern_time, pattern_pkg = median_time(lambda: pattern_packager.package(repo, out), args.repeats)
        again = git_packager.package(repo, out)
        figures = {
            "files": args.files, "source_mb": round(source_bytes / 1e6, 1), "repeats": args.repeats,
            "git_archive_gzip_n_s": round(limit, 3), "git_archive_gzip_n_mb": round(limit_size / 1e6, 2),
            "git_archive_gzip_n1_s": round(fast, 3), "git_archive_gzip_n1_mb": round(fast_size / 1e6, 2),
            "git_archive_packager_s": round(git_time, 3), "git_archive_packager_mb": round(git_pkg.size / 1e6, 2),
            "pattern_packager_s": round(pattern_time, 3), "pattern_packager_mb": round(pattern_pkg.size / 1e6, 2),
            "git_ratio": round(git_time / limit, 2), "pattern_ratio": round(pattern_time / limit, 2),
            "second_package_same_digest": again.digest == git_pkg.digest,
            "git_and_pattern_same_digest": git_pkg.digest == pattern_pkg.digest,
            "digest": git_pkg.digest,
        }
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
