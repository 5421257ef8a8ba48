"""Checks of executor settings, written once for every backend: each refuses a bad value before anything is
submitted, with a ``ConfigError`` whose ``path`` names the field (``"SlurmExecutor.nodes"``) and whose message says
the fix.

Only the generic checks live here (a count, a word of a restricted alphabet, an argument list, an interpreter, an
environment); what a value means to one backend (an ``#SBATCH`` line, a Docker image reference) stays with it and
calls these with its own pattern and wording.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Mapping, Pattern

from nemorun_core.errors import ConfigError, UnknownParameterError, did_you_mean

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


class UnknownArgumentError(UnknownParameterError, TypeError):
    """A keyword an executor (or tunnel) does not take: a ``ConfigError`` with a did-you-mean, and still the
    ``TypeError`` Python raises for an unexpected argument."""

    def __init__(self, name: str, target: str, valid: list[str]):
        self.name, self.target, self.valid = name, target, list(valid)
        hint = did_you_mean(name, valid) or (f"; it takes {', '.join(valid)}" if valid else "; it takes none")
        ConfigError.__init__(self, f"{target} got an unexpected argument {name!r}{hint}")


class MissingArgumentError(ConfigError, TypeError):
    """A required setting left out; ``names`` are the missing parameters."""

    def __init__(self, message: str, names: list[str], *, path: str | None = None):
        self.names = names
        super().__init__(message, path=path)


_SIGNATURES: dict[type, Any] = {}


def _init_signature(cls: type) -> Any:
    sig = _SIGNATURES.get(cls)
    if sig is None:
        import inspect

        sig = inspect.signature(cls.__init__)
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # drop self
        _SIGNATURES[cls] = sig
    return sig


def check_init_args(cls: type, args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Refuse a misspelled or missing constructor argument of ``cls`` with an error that says the fix.

    Called by :class:`CheckedInit` (the metaclass of ``Executor``) so it covers every executor class, third-party ones included. Only unknown
    keywords and missing required parameters are reported here; anything else (too many positional arguments)
    is left to ``__init__``, which raises Python's own ``TypeError``.

    ``cls.arg_examples`` (optional, ``{"container_image": "'python:3.11-slim'"}``) gives the example value the
    message shows for a missing parameter.

    Raises:
        UnknownArgumentError: ``LocalExecutor got an unexpected argument 'env'; did you mean 'env_vars'?``.
        MissingArgumentError: ``DockerExecutor.container_image: is required: pass it, e.g.
            DockerExecutor(container_image='python:3.11-slim')``.
    """
    import inspect

    try:
        sig = _init_signature(cls)
    except (TypeError, ValueError):  # no introspectable signature: leave it to __init__
        return
    params = sig.parameters
    kinds = {p.kind for p in params.values()}
    name = cls.__name__
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        accepted = [n for n, p in params.items()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not n.startswith("_")]
        for key in kwargs:
            if key not in params or params[key].kind is inspect.Parameter.POSITIONAL_ONLY:
                raise UnknownArgumentError(key, name, accepted)
    positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    given = set(positional[:len(args)]) | set(kwargs)
    missing = [n for n, p in params.items()
               if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in given]
    if missing:
        examples = getattr(cls, "arg_examples", None) or {}
        shown = ", ".join(f"{n}={examples.get(n, '...')}" for n in missing)
        if len(missing) == 1:
            raise MissingArgumentError(f"is required: pass it, e.g. {name}({shown})", missing,
                                       path=f"{name}.{missing[0]}")
        raise MissingArgumentError(f"needs {', '.join(missing)}: pass them, e.g. {name}({shown})", missing,
                                   path=name)


class CheckedInit(abc.ABCMeta):
    """The metaclass of ``Executor``: every construction (``cls(...)``, not a copy or an unpickle) first runs
    :func:`check_init_args`."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        check_init_args(cls, args, kwargs)
        return super().__call__(*args, **kwargs)

    @property
    def __signature__(cls) -> Any:
        # inspect.signature(cls) would otherwise show __call__'s (*args, **kwargs): the config layer and the CLI
        # read the constructor's parameters from it.
        try:
            return _init_signature(cls)
        except (TypeError, ValueError) as e:
            raise AttributeError("__signature__") from e
