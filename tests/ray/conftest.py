"""Shared by the Ray tests: the service head (scripts/services/ray.sh), and a way to run a test's body where a
local Ray cluster may start (a loopback-only network namespace: Ray binds the machine's routable address
otherwise, which tests must never do)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.integration import services

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def ray_service() -> services.RayService:
    """The Ray head of the test run; an error (not a skip) when scripts/services/ray.sh was not started."""
    return services.ray()


def in_loopback_namespace(code: str, home: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a new network namespace that has only loopback (``unshare -n``, lo up), with
    ``NEMORUN_HOME=home``. Every Ray process it starts is in that namespace and listens on 127.0.0.1 only; the
    code must stop what it starts (the namespace ends with its last process)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise RuntimeError("the local Ray cluster tests need root and unshare (util-linux) for a loopback-only "
                           "network namespace")
    script = os.path.join(home, "body.py")
    os.makedirs(home, exist_ok=True)
    with open(script, "w") as f:
        f.write(textwrap.dedent(code))
    env = {**os.environ, "NEMORUN_HOME": home,
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$0" "$1"', sys.executable,
                           script], capture_output=True, text=True, env=env, timeout=timeout, cwd=home)
