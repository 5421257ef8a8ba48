"""The console and naming options of ``run.Experiment`` and ``run.run`` that NeMo Run's users pass.

NeMo Run's ``Experiment(title, executor=, id=, base_dir=, log_level=, clean_mode=, threadpool_workers=,
skip_status_at_exit=, enable_goodbye_message=)`` sits beside the spec's ``Experiment(name=, title=, description=,
tags=, home=)``; this module checks those arguments and says what each one does here, so a value that cannot be
honoured is an error rather than ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Iterator

from nemorun_core.errors import ExperimentError, did_you_mean
from nemorun_core.experiment.store import check_name

_EXPERIMENT_ARGS = ("executor", "name", "title", "description", "tags", "id", "home", "base_dir", "log_level",
                    "clean_mode", "threadpool_workers", "skip_status_at_exit", "enable_goodbye_message")

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL, "FATAL": logging.CRITICAL}
_LOGGER = "nemorun_core"


def resolve_naming(first: Any, name: str | None, title: str | None) -> tuple[str | None, str | None]:
    """(name, title) from ``Experiment``'s first argument and its ``name=`` / ``title=``.

    The first argument is NeMo Run's title; beside ``title=`` it is the spec's name (``Experiment("sweep",
    title="LR sweep")``). A title that is a valid name is the name too; otherwise the name is left None for the
    caller to derive. The name is not checked here.

    Raises:
        ExperimentError: all three were given, or the title is not a string.
    """
    if first is not None:
        if name is not None and title is not None:
            raise ExperimentError(f"Experiment({first!r}, name={name!r}, title={title!r}): the first argument is "
                                  "the title or the name; pass at most two of the three")
        if title is not None:
            name = first
        else:
            title = first
    if title is not None and not isinstance(title, str):
        raise ExperimentError(f"Experiment title must be a str, got {title!r}")
    if name is None and title is not None:
        try:
            name = check_name(title, "experiment name")  # Experiment("sweep"): both the name and the title
        except ExperimentError:
            pass
    return name, title


def unknown_argument(name: str) -> ExperimentError:
    hint = did_you_mean(name, _EXPERIMENT_ARGS) or ""
    return ExperimentError(f"Experiment() got an unexpected argument {name!r}{hint}; its arguments: "
                           f"{', '.join(_EXPERIMENT_ARGS)}")


def check_log_level(value: Any, where: str) -> int:
    """The ``logging`` level for ``value`` (a level name in any case, or a level number).

    Raises:
        ExperimentError: not a level, naming the accepted names.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ExperimentError(f"{where}: log_level must be a level name such as 'INFO' or 'WARN', got {value!r}")
    if isinstance(value, int):
        return value
    level = _LEVELS.get(value.strip().upper())
    if level is None:
        raise ExperimentError(f"{where}: log_level {value!r} is not a level; use one of "
                              f"{', '.join(sorted(_LEVELS))}")
    return level


def check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExperimentError(f"{what} must be a positive int, got {value!r}")
    return value


@contextlib.contextmanager
def log_level_scope(level: int) -> Iterator[None]:
    """Set the level of nemorun's loggers (``nemorun_core.*``) for the block, as NeMo Run's ``log_level`` does."""
    logger = logging.getLogger(_LOGGER)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@dataclasses.dataclass(frozen=True)
class Console:
    """What an experiment prints while it runs and when its ``with`` block ends.

    Attributes:
        log_level: nemorun's logging level during a run; above INFO the per-task progress lines are not printed.
        clean_mode: print nothing beyond what the tasks print (no progress, no status table, no closing hint).
        skip_status_at_exit: do not print the status table when the ``with`` block ends after a run.
        goodbye: print how to find the experiment again when the ``with`` block ends after a run.
    """

    log_level: int = logging.INFO
    clean_mode: bool = False
    skip_status_at_exit: bool = False
    goodbye: bool = True

    @property
    def quiet(self) -> bool:
        return self.clean_mode or self.log_level > logging.INFO


def goodbye(exp_id: str, tasks: list[str]) -> str:
    """The closing hint: how to find the experiment again from Python and from the command line."""
    first = tasks[0] if tasks else "TASK"
    return (f"# experiment {exp_id} ran tasks {', '.join(tasks)}; inspect it later with:\n"
            f"#   exp = run.Experiment.from_id({exp_id!r}); exp.status(); exp.logs({first!r})\n"
            f"#   nemorun experiment status {exp_id}    nemorun experiment logs {exp_id} {first}")
