"""The error hierarchy of nemorun.

Every error says what was wrong, where (a config path, a field, a job), and what to do next. Messages are built
by the raiser; callers never need to parse them: the structured parts are attributes.
"""

from __future__ import annotations

# typing is imported only by type checkers: every job process imports this module (see nemorun_core/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Sequence


def did_you_mean(name: str, candidates: Iterable[str], *, n: int = 1, cutoff: float = 0.5) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when nothing is close."""
    import difflib  # only on the error path
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=cutoff)
    if not matches:
        return ""
    if len(matches) == 1:
        return f"; did you mean {matches[0]!r}?"
    return "; did you mean one of " + ", ".join(repr(m) for m in matches) + "?"


class NemorunError(Exception):
    """Base class of every error nemorun raises on purpose."""


class ConfigError(NemorunError, ValueError):
    """A configuration is invalid. ``path`` is the dotted path inside the config tree, when known."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UnknownParameterError(ConfigError, AttributeError):
    """An argument name that the configured function or class does not accept."""

    def __init__(self, name: str, target: str, valid: Sequence[str], *, path: str | None = None):
        self.name = name
        self.target = target
        self.valid = list(valid)
        hint = did_you_mean(name, valid) or (
            f"; valid parameters: {', '.join(valid)}" if valid else "; it takes no parameters"
        )
        super().__init__(f"no parameter {name!r} for {target}{hint}", path=path)


class ConfigTypeError(ConfigError, TypeError):
    """A value that does not fit the parameter's annotation."""

    def __init__(self, path: str, expected: str, got: object, *, detail: str = ""):
        self.expected = expected
        self.got = got
        shown = repr(got)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        extra = f" ({detail})" if detail else ""
        super().__init__(f"expected {expected}, got {shown}{extra}", path=path)


class ValidationError(ConfigError):
    """A validation rule rejected a configuration before anything was submitted."""


class BuildError(ConfigError):
    """Building a configuration raised; ``path`` names the node whose construction failed."""

    def __init__(self, path: str, target: str, cause: BaseException):
        self.target = target
        self.cause = cause
        field = _own_field(target, cause) if path else None
        if field is not None:  # the class's own check named one of its fields: name it at its place in the config
            path = f"{path}.{field}"
            message = str(cause)[len(cause.path) + 2:]  # type: ignore[attr-defined]
        else:  # at the root the cause's own words name the class and field already
            message = f"building {target} failed: {type(cause).__name__}: {cause}"
        super().__init__(message, path=path or "<root>")


def _own_field(target: str, cause: BaseException) -> str | None:
    """``"nodes"`` when ``cause`` is a ConfigError whose path is ``"<target>.nodes"`` (the class's own validation)."""
    where = getattr(cause, "path", None) if isinstance(cause, ConfigError) else None
    prefix = f"{target.rsplit('.', 1)[-1]}."
    if not where or not where.startswith(prefix) or not str(cause).startswith(f"{where}: "):
        return None
    field = where[len(prefix):]
    return field if field.replace("_", "a").replace(".", "a").isalnum() else None


class SerializationError(ConfigError):
    """A configuration could not be written to or read from YAML/TOML/JSON/code."""


class OverrideError(ConfigError):
    """A command-line override could not be parsed or applied."""


class ExecutorError(NemorunError):
    """An executor refused a job or a backend call failed."""


class BackendUnavailableError(ExecutorError):
    """The backend (a cluster over SSH, a container engine, an API) could not be reached for now.

    Says nothing about the job itself, which may still be running: callers that follow a job retry this error with
    backoff for a bounded outage (see ``nemorun_core.executors.base.follow_log``) before giving up.
    """


class SubmissionError(ExecutorError):
    """A job could not be submitted; nothing was started."""


class JobFailedError(NemorunError, RuntimeError):
    """A job ended in FAILED or CANCELLED. Carries the job name, its state, exit status, log path and log tail."""

    def __init__(
        self,
        name: str,
        state: str,
        *,
        exit_code: int | None = None,
        log_path: str | None = None,
        log_tail: Sequence[str] = (),
        message: str = "",
    ):
        self.name = name
        self.state = state
        self.exit_code = exit_code
        self.log_path = log_path
        self.log_tail = list(log_tail)
        parts = [f"job {name!r} {state.lower()}"]
        if exit_code is not None:
            parts.append(f"with exit status {exit_code}")
        text = " ".join(parts)
        if message:
            text += f": {message}"
        if log_path:
            text += f"\n  log: {log_path}"
        if self.log_tail:
            text += "\n  last lines of the log:\n" + "\n".join("    " + line for line in self.log_tail)
        super().__init__(text)


class ExperimentError(NemorunError):
    """An experiment was misused: unknown task name, bad dependency, not found in the store."""


class PluginError(NemorunError):
    """A plugin rejected a task in ``setup``; nothing was submitted."""
