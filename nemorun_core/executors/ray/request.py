"""The pure half of the Ray executor: a job's ``submit_job`` arguments, and the submission id of a key.

Nothing here does I/O: :func:`render` is what ``RayExecutor.dryrun`` shows and what ``submit`` sends (it parses the
very text back), so the two cannot drift. Secret environment values are never in it: the request names them, and
submission writes their values into a private file of the job directory that the entrypoint sources.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Any, Mapping, Sequence

from nemorun_core.secrets import is_secret

#: The file of the job directory that holds the secret environment values (mode 0600), sourced by the entrypoint.
SECRETS_FILE = "ray_secrets.sh"
#: Metadata keys nemorun writes on every Ray job it submits (visible in the dashboard and ``list_jobs``).
META_KEY, META_NAME = "nemorun.key", "nemorun.name"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def submission_id(key: str) -> str:
    """The Ray submission id of the job with stable ``key``: readable, path-safe and unique per key.

    ``exp-1234/train/0`` -> ``nemorun-exp-1234-train-0-1f3c9a0b2d``: Ray names log files after the id, so only
    ``[A-Za-z0-9_-]``; the digest keeps two keys that differ only in other characters apart.
    """
    readable = _UNSAFE.sub("-", key).strip("-")[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"nemorun-{readable}-{digest}"


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) variables: secret-named, ``run.Secret`` or key-material values go to the secret file."""
    plain, secret = {}, {}
    for name, value in env.items():
        (secret if is_secret(name, value) else plain)[name] = str(value)
    return plain, secret


def entrypoint(argv: Sequence[str], cwd: str, secrets_path: str | None) -> str:
    """The shell command Ray runs for the job (Ray runs entrypoints with ``/bin/sh -c``).

    ``exec`` keeps the task as the driver process, so Ray's stop signal and exit code are the task's own.
    """
    parts = [f"cd {shlex.quote(cwd)}"]
    if secrets_path:
        parts.append(f". {shlex.quote(secrets_path)}")
    parts.append("exec " + shlex.join(argv))
    return " && ".join(parts)


def render(*, key: str, name: str, argv: Sequence[str], cwd: str, env: Mapping[str, str],
           secret_names: Sequence[str], secrets_path: str | None, runtime_env: Mapping[str, Any] | None,
           num_cpus: float, num_gpus: float, resources: Mapping[str, float] | None) -> str:
    """The ``submit_job`` keyword arguments of one job, as JSON with sorted keys (the request's text)."""
    merged = dict(runtime_env or {})
    env_vars = {**dict(merged.get("env_vars") or {}), **env}
    if env_vars:
        merged["env_vars"] = dict(sorted(env_vars.items()))
    request: dict[str, Any] = {
        "entrypoint": entrypoint(argv, cwd, secrets_path if secret_names else None),
        "submission_id": submission_id(key),
        "metadata": {META_KEY: key, META_NAME: name},
        "entrypoint_num_cpus": num_cpus,
        "entrypoint_num_gpus": num_gpus,
    }
    if merged:
        request["runtime_env"] = merged
    if resources:
        request["entrypoint_resources"] = dict(resources)
    if secret_names:
        # Names only, for people reading the request: the values are in the job directory's private file.
        request["metadata"]["nemorun.secret_env"] = ",".join(sorted(secret_names))
    return json.dumps(request, indent=2, sort_keys=True) + "\n"


def secrets_script(secret: Mapping[str, str]) -> str:
    """The secret file's text: one ``export NAME=value`` line per variable, each value shell-quoted."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(secret.items()))
