"""Keep secrets out of everything nemorun writes: the store, logs, rendered scripts, orchestrator state.

A value is treated as secret when its name says so (``WANDB_API_KEY``, ``db_password``, ``HF_TOKEN``...), when it
looks like key material (a PEM private key), or when the user marks it with :class:`Secret` (for a secret under a
neutral name: ``env_vars={"MY_VALUE": run.Secret(value)}``). Redaction replaces the value, never the name, so a
reader still sees which settings were in use.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # not `typing`: job processes import this module through the serializer
if TYPE_CHECKING:
    from typing import Any

REDACTED = "<redacted>"
SECRET_MARKER = "_secret_"


class Secret(str):
    """A string that nemorun treats as a secret whatever its name: ``run.Secret(os.environ["MY_VALUE"])``.

    It is a ``str`` (an executor passes it to the job like any value), but its ``repr`` never shows it, it is
    redacted in the store, in rendered scripts, in logs and in orchestrator state, and it reaches jobs the way
    secrets do (never on a command line or in a generated script). In plain data it is ``{"_secret_": value}``
    before redaction and ``{"_secret_": "<redacted>"}`` after.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __reduce__(self) -> Any:
        return (Secret, (str(self),))


def is_secret(name: str, value: Any = None) -> bool:
    """Whether the setting ``name`` = ``value`` is secret: marked with :class:`Secret`, named like a secret
    (:func:`is_secret_name`), or holding key material (:func:`looks_secret`)."""
    return isinstance(value, Secret) or is_secret_name(name) or looks_secret(value)

_SECRET_NAME = re.compile(
    r"(secret|token|passw(or)?d|passphrase|api[_\-]?key|access[_\-]?key|private[_\-]?key|credential|auth|cookie|"
    r"session[_\-]?key)",
    re.IGNORECASE,
)
_KEY_MATERIAL = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|^(ghp|gho|github_pat|xox[bap]|sk|hf)_[A-Za-z0-9_]{16,}")


def is_secret_name(name: str) -> bool:
    """Whether a setting called ``name`` holds a secret (by naming convention).

    ``*_env`` settings (``passphrase_env``, ``identity_env``) hold the *name* of a variable that holds the secret:
    they are kept, so that a tunnel loaded from the store still knows where to find its secret.
    """
    if name.lower().endswith("_env"):
        return False
    return bool(_SECRET_NAME.search(name))


def looks_secret(value: Any) -> bool:
    """Whether ``value`` itself looks like key material or a well-known token format."""
    return isinstance(value, str) and bool(_KEY_MATERIAL.search(value.strip()))


def redact(data: Any, *, _name: str = "") -> Any:
    """A copy of plain data (dicts, lists, scalars) with secret values replaced by ``"<redacted>"``."""
    if isinstance(data, Secret):
        return {SECRET_MARKER: REDACTED}
    if isinstance(data, dict):
        if set(data) == {SECRET_MARKER}:
            return {SECRET_MARKER: REDACTED}
        return {k: (REDACTED if isinstance(k, str) and is_secret_name(k) and v not in (None, "", {}, [])
                    else redact(v, _name=str(k))) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, _name=_name) for v in data]
    if isinstance(data, tuple):
        return tuple(redact(v, _name=_name) for v in data)
    if looks_secret(data):
        return REDACTED
    return data


def redact_text(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of the given secret values in ``text`` (for log lines and error messages)."""
    for value in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def restore(data: Any) -> Any:
    """Undo :func:`redact` where this process can: a redacted value comes back from the environment variable of
    the same name, when there is one (how a job loaded from the store, or by an orchestrator, gets its secrets)."""

    if isinstance(data, dict):
        return {k: _restored(k, v) for k, v in data.items()}
    if isinstance(data, list):
        return [restore(v) for v in data]
    if isinstance(data, tuple):
        return tuple(restore(v) for v in data)
    return data


def _restored(key: Any, value: Any) -> Any:
    import os

    if isinstance(key, str) and key in os.environ:
        if value == REDACTED:
            return os.environ[key]
        if value == {SECRET_MARKER: REDACTED}:
            return {SECRET_MARKER: os.environ[key]}
    return restore(value)


HELD_PREFIX = "NEMORUN_SECRET_"


def without_held(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables :func:`hold_in_env` set: they are for this process's tunnels, not for jobs
    started from it (a local job inherits the environment of the flow or task that launched it)."""
    return {k: v for k, v in env.items() if not k.startswith(HELD_PREFIX)}


def hold_in_env(owner: str, field: str, value: str) -> str:
    """Put a secret in this process's environment and return the variable's name, for ``*_env`` settings.

    How a secret from an orchestrator's store (a Prefect block, an Airflow connection) reaches a tunnel without
    being written anywhere: the tunnel's serialized config keeps only the name (``identity_env``,
    ``passphrase_env``), which is derived from ``owner`` (the block or connection name) and ``field``, never from
    the value. The same owner and field always give the same name, so a process that loads the block or
    connection again (a restarted flow run, the Airflow triggerer) sets the same variable and re-attaches.

    Example:
        >>> SSHTunnel(..., identity_env=hold_in_env("conn:slurm_default", "private_key", key_text))
    """
    import os

    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{owner}_{field}").strip("_").upper()
    name = f"{HELD_PREFIX}{slug}"
    os.environ[name] = value
    return name


def secret_values(data: Any) -> list[str]:
    """The secret strings in plain data: values under secret names, and values that look like key material.

    What :func:`redact` would replace, as a list (longest first), for callers that must also scrub free text such as
    log lines with :func:`redact_text`, or register the values with an orchestrator's own log masker.
    """
    found: set[str] = set()

    def visit(value: Any, secret: bool) -> None:
        if isinstance(value, Secret):
            secret = True
        if isinstance(value, dict):
            if set(value) == {SECRET_MARKER}:
                secret = True
            for k, v in value.items():
                visit(v, secret or (isinstance(k, str) and is_secret_name(k)))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v, secret)
        elif isinstance(value, str) and value and value != REDACTED and (secret or looks_secret(value)):
            found.add(value)

    visit(data, False)
    return sorted(found, key=lambda s: (-len(s), s))


def secret_digests(values: list[str]) -> dict[str, Any]:
    """Salted SHA-256 digests of secret values, for a process that must mask them without being given them.

    An orchestrator hands these (not the values) to a process that logs a job's output, such as Airflow's
    triggerer; :func:`redact_digested` then finds the values in text. Digests do not reveal a long random token; a
    short, guessable password could be found from its digest by trying candidates, like any password hash.
    """
    import hashlib
    import os

    salt = os.urandom(16)
    by_length: dict[str, list[str]] = {}
    for value in values:
        data = value.encode()
        if len(data) >= 4:
            by_length.setdefault(str(len(data)), []).append(hashlib.sha256(salt + data).hexdigest()[:32])
    return {"salt": salt.hex(), "sha256": {k: sorted(set(v)) for k, v in by_length.items()}} if by_length else {}


def redact_digested(text: str, digests: dict[str, Any]) -> str:
    """Replace every substring of ``text`` whose digest is in ``digests`` (from :func:`secret_digests`).

    Costs one hash per position of ``text`` and secret length: fine for log lines, not for megabytes.
    """
    import hashlib

    table = digests.get("sha256") if digests else None
    if not table:
        return text
    salt = bytes.fromhex(digests["salt"])
    data = text.encode()
    spans = []
    for length_text, known in table.items():
        length, wanted = int(length_text), set(known)
        for i in range(len(data) - length + 1):
            if hashlib.sha256(salt + data[i:i + length]).hexdigest()[:32] in wanted:
                spans.append((i, i + length))
    if not spans:
        return text
    out, last = [], 0
    for start, end in sorted(spans):
        if start >= last:
            out.append(data[last:start])
            out.append(REDACTED.encode())
            last = end
        elif end > last:
            last = end  # overlapping matches: one redaction covers both
    out.append(data[last:])
    return b"".join(out).decode(errors="replace")
