"""A snapshot of the environment an experiment was launched from, for reproducibility.

Python and platform, installed packages, the git commit and dirty state of the code, the host and the command line.
Environment variables are not recorded: they routinely hold secrets. The command line is, with the values of
secret-looking arguments (``--token X``, ``password=X``, key material) redacted.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and changed files of the git work tree containing ``path``; None outside git."""
    top = _git(["rev-parse", "--show-toplevel"], path)
    if not top:
        return None
    porcelain = _git(["status", "--porcelain", "--untracked-files=no"], top) or ""
    changed = [line[3:] for line in porcelain.splitlines() if line.strip()]
    return {
        "root": top,
        "commit": _git(["rev-parse", "HEAD"], top),
        "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], top),
        "dirty": bool(changed),
        "changed_files": changed[:200],
    }


def packages() -> dict[str, str]:
    """Installed distributions, name -> version, read from the ``*.dist-info`` / ``*.egg-info`` directory names on
    sys.path (their standard ``name-version`` form) rather than by parsing every METADATA file: a hundredth of
    the cost, which matters because the snapshot runs beside the experiment's first jobs."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                if name.endswith(suffix) and "-" in name:
                    dist, _, version = name[: -len(suffix)].partition("-")
                    found.setdefault(dist.lower().replace("_", "-"), version)
    return dict(sorted(found.items()))


def redacted_argv(argv: list[str]) -> list[str]:
    """``argv`` with secret values replaced: ``--token X`` / ``--token=X`` / ``db.password=X`` (by the name, as
    :func:`nemorun_core.secrets.is_secret` judges it) and any argument that is key material itself."""
    from nemorun_core.secrets import REDACTED, is_secret, is_secret_name, looks_secret

    out: list[str] = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        previous = argv[i - 1] if i else ""
        if eq and is_secret(name.lstrip("-").rsplit(".", 1)[-1], value):
            out.append(f"{name}={REDACTED}")
        elif (previous.startswith("-") and "=" not in previous and is_secret_name(previous.lstrip("-"))) \
                or looks_secret(arg):
            out.append(REDACTED)
        else:
            out.append(arg)
    return out


def snapshot() -> dict[str, Any]:
    """Collect the snapshot. Takes tens of milliseconds (the package list); never raises."""
    main = sys.modules.get("__main__")
    script = os.path.abspath(main.__file__) if main is not None and getattr(main, "__file__", None) else None
    code_dir = os.path.dirname(script) if script else os.getcwd()
    try:
        user = getpass.getuser()
    except Exception:
        user = None
    return {
        "captured_at": time.time(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "host": socket.gethostname(),
        "user": user,
        "cwd": os.getcwd(),
        "argv": redacted_argv(list(sys.argv)),
        "script": script,
        "git": git_state(code_dir),
        "packages": packages(),
    }
