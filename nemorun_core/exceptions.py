"""``nemo_run.exceptions``: nemorun's errors (:mod:`nemorun_core.errors` is the module to import in new code)."""

from nemorun_core.errors import (  # noqa: F401
    NemorunError,
    ConfigError,
    UnknownParameterError,
    ConfigTypeError,
    ValidationError,
    BuildError,
    SerializationError,
    OverrideError,
    ExecutorError,
    BackendUnavailableError,
    SubmissionError,
    JobFailedError,
    ExperimentError,
    PluginError,
)

__all__ = [
    "BackendUnavailableError",
    "BuildError",
    "ConfigError",
    "ConfigTypeError",
    "ExecutorError",
    "ExperimentError",
    "JobFailedError",
    "NemorunError",
    "OverrideError",
    "PluginError",
    "SerializationError",
    "SubmissionError",
    "UnknownParameterError",
    "ValidationError",
]
