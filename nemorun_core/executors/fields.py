"""Checks of executor settings, written once for every backend: each refuses a bad value before anything is
submitted, with a ``ConfigError`` whose ``path`` names the field (``"SlurmExecutor.nodes"``) and whose message says
the fix.

Only the generic checks live here (a count, a word of a restricted alphabet, an argument list, an interpreter, an
environment); what a value means to one backend (an ``#SBATCH`` line, a Docker image reference) stays with it and
calls these with its own pattern and wording.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Pattern

from nemorun_core.errors import ConfigError
# Re-exported: the constructor-argument checks live in the bottom layer, shared with packagers.
from nemorun_core.initargs import CheckedInit, MissingArgumentError, UnknownArgumentError, check_init_args

__all__ = ["CheckedInit", "MissingArgumentError", "UnknownArgumentError", "check_init_args", "check_arg_list",
           "check_count", "check_env_vars", "check_interpreter", "check_seconds", "check_word"]

# A bare command name (looked up on PATH where the job runs): no spaces, quotes or shell characters.
COMMAND_NAME = re.compile(r"[A-Za-z0-9_.+\-]+")
# An environment variable name, as every shell and ``exec`` accept it.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(value: Any, path: str, *, minimum: int = 1) -> None:
    """Reject a count (nodes, processes, GPUs) that is not an int of at least ``minimum``. ``True`` is not 1.

    Raises:
        ConfigError: ``must be an int >= <minimum>, got <value>``, naming ``path``.
    """
    if not _is_int(value) or value < minimum:
        raise ConfigError(f"must be an int >= {minimum}, got {value!r}", path=path)


def check_seconds(value: Any, path: str, *, what: str = "a number") -> None:
    """Reject a duration (a grace period) that is not a number >= 0.

    Args:
        what: how the message names the value (``"a number of seconds"``).

    Raises:
        ConfigError: ``must be <what> >= 0, got <value>``, naming ``path``.
    """
    if not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"must be {what} >= 0, got {value!r}", path=path)


def check_word(value: Any, path: str, pattern: Pattern[str], message: str) -> None:
    """Reject an optional word that must match ``pattern`` whole (a partition, a runtime name); None passes.

    ``fullmatch`` on purpose: ``$`` in ``re.match`` also matches before a final newline, and a newline in a value
    that goes into a script line would start a line of its own.

    Args:
        message: the error text, with ``{value}`` replaced by the value's ``repr``.

    Raises:
        ConfigError: naming ``path``, with ``message``.
    """
    if value is None:
        return
    if not isinstance(value, str) or not value or not pattern.fullmatch(value):
        raise ConfigError(message.format(value=repr(value)), path=path)


def check_arg_list(value: Any, path: str) -> None:
    """Reject a setting that must be a list of command-line arguments (``srun_args``, mounts) but is not.

    Each argument is passed as one word, quoted, so its content cannot run anything; but a plain string (which
    would be split into characters), a non-string, or a newline or NUL (which no argument can carry through
    a script line or ``exec``) only fails inside the job, after it has waited in a queue.

    Raises:
        ConfigError: naming ``path``, the offending item and the fix.
    """
    if isinstance(value, str):
        raise ConfigError(f"must be a list of strings (one per argument), got the string {value!r}; write "
                          f"{value.split()!r}", path=path)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"must be a list of strings (one per argument), got {value!r}", path=path)
    for i, arg in enumerate(value):
        if not isinstance(arg, str):
            raise ConfigError(f"item {i} must be a string, got {arg!r}; write {str(arg)!r}", path=path)
        if "\n" in arg or "\r" in arg or "\0" in arg:
            raise ConfigError(f"item {i} ({arg!r}) contains a newline or NUL, which no argument can carry",
                              path=path)


def check_interpreter(value: Any, path: str) -> None:
    """Reject a ``python`` setting that cannot start a process: it must be an absolute path or a bare command
    name (``python3``). It is passed as one quoted word, so ``"python3 -u"`` or ``"~/venv/bin/python"`` would
    only fail inside the job (no such command).

    Raises:
        ConfigError: naming ``path`` and the fix.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"must be the interpreter's absolute path or command name, got {value!r}",
                          path=path)
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError(f"{value!r} contains a newline or NUL; give the interpreter's absolute path",
                          path=path)
    if not value.startswith("/") and not COMMAND_NAME.fullmatch(value):
        hint = ("'~' is not expanded there; write the absolute path" if value.startswith("~") else
                "give options in the task's command, not here" if " " in value.strip() else
                "write an absolute path (/opt/venv/bin/python) or a command name on PATH (python3)")
        raise ConfigError(f"{value!r} is neither an absolute path nor a command name: {hint}", path=path)


def check_env_vars(env: Any, path: str) -> None:
    """Reject an environment that is not a dict of variable names to strings, before anything is submitted.

    Args:
        env: the executor's ``env_vars`` (or those merged with a task's env).
        path: what the error names, e.g. ``"SlurmExecutor.env_vars"``.

    Raises:
        ConfigError: naming ``path``, the offending variable and the fix.
    """
    if not isinstance(env, Mapping):
        raise ConfigError(f"must be a dict of name -> string, got {env!r}", path=path)
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a valid environment variable name (letters, digits, _; not starting "
                              "with a digit)", path=path)
        if not isinstance(value, str):
            raise ConfigError(f"value of {name} must be a string, got {value!r}; write {name}={str(value)!r}",
                              path=path)
        if "\0" in value:
            raise ConfigError(f"value of {name} contains a NUL byte", path=path)
