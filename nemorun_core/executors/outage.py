"""Riding out a backend outage while following a job: retry what is safe to retry, for a bounded time.

A job on a cluster keeps running when the SSH session to its login node is cut, when sshd restarts, or when the
network blinks. Whoever follows the job (``exp.run(tail_logs=True)``, ``Experiment.wait``, ``nemorun experiment logs
-f``, an orchestrator's worker) must then wait and try again rather than give up, because giving up leaves a
running job unwatched. What may be retried is exactly ``BackendUnavailableError``: the backend could not be reached,
which says nothing about the job. Everything else (authentication, host keys, a failed command) is raised at once.

The wait is bounded (``NEMORUN_OUTAGE_TIMEOUT`` seconds, default 300) with exponential backoff capped at a few
seconds; past it, :class:`OutageError` says that the job is, as far as we know, still running and how to re-attach.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, TypeVar

from nemorun_core.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTAGE_ENV = "NEMORUN_OUTAGE_TIMEOUT"
DEFAULT_OUTAGE_S = 300.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0


class OutageError(BackendUnavailableError):
    """The backend stayed unreachable longer than the outage limit while a job was followed.

    Attributes:
        jobs: what was being followed, for example ``"task 'train' (slurm job 42, key exp_1/train/0)"``.
        limit: the outage limit in seconds.
    """

    def __init__(self, message: str, *, jobs: str = "", limit: float = 0.0):
        self.jobs = jobs
        self.limit = limit
        super().__init__(message)


def outage_limit(value: float | None = None) -> float:
    """The outage limit in seconds: ``value`` if given, else ``$NEMORUN_OUTAGE_TIMEOUT``, else 300.

    Raises:
        ConfigError: a negative or unparsable limit, naming where it came from.
    """
    source = "outage_timeout"
    if value is None:
        text = os.environ.get(OUTAGE_ENV, "").strip()
        if not text:
            return DEFAULT_OUTAGE_S
        source = f"${OUTAGE_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{source}={text!r} is not a number of seconds; set it to e.g. 300") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or value != value:
        raise ConfigError(f"{source} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class Outage:
    """Retries calls through one bounded outage at a time; a call that succeeds ends the outage.

    One instance per follower (not shared between threads): it remembers when the current outage began, so a
    follower that alternates between several calls (status, logs, wait) counts one outage, not one per call.

    Args:
        limit: seconds an outage may last before giving up (see :func:`outage_limit`; None reads the environment).
        describe: what is being followed, for the final error (called only then, so it may read current state).
        reattach: how to follow again later, for the final error, e.g. ``"`nemorun experiment logs ID TASK -f`"``
            (or a function returning it, called only then).
        sleep: the seam for waiting between attempts (tests, or a caller with its own clock).
    """

    def __init__(self, limit: float | None = None, *, describe: Callable[[], str] = lambda: "the job",
                 reattach: str | Callable[[], str] = "", sleep: Callable[[float], None] = time.sleep):
        self.limit = outage_limit(limit)
        self.describe = describe
        self.reattach = reattach
        self._sleep = sleep
        self._since: float | None = None
        self._backoff = FIRST_BACKOFF_S

    @property
    def ongoing(self) -> bool:
        """Whether the last call failed with the backend unreachable (and no call has succeeded since)."""
        return self._since is not None

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried with backoff while it raises ``BackendUnavailableError``, within the outage limit.

        Raises:
            OutageError: the backend stayed unreachable past the limit (the original error is its cause).
            Exception: whatever else ``fn`` raises, unchanged and at once.
        """
        while True:
            try:
                result = fn()
            except OutageError:
                raise  # a nested follower already waited its limit: do not wait again
            except BackendUnavailableError as exc:
                self.failed(exc)
                continue
            self.recovered()
            return result

    def failed(self, exc: BackendUnavailableError) -> None:
        """Record a failed attempt: wait the next backoff, or raise OutageError once past the limit."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
            log.warning("backend unreachable (%s); retrying for up to %g s", exc, self.limit)
        waited = now - self._since
        if waited >= self.limit:
            raise self._give_up(exc, waited) from exc
        self._sleep(min(self._backoff, max(self.limit - waited, 0.0)))
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    def recovered(self) -> None:
        if self._since is not None:
            log.warning("backend reachable again after %.1f s", time.monotonic() - self._since)
        self._since = None
        self._backoff = FIRST_BACKOFF_S

    def _give_up(self, exc: BaseException, waited: float) -> OutageError:
        jobs = self.describe()
        reattach = self.reattach() if callable(self.reattach) else self.reattach
        hint = f"; re-attach with {reattach}" if reattach else ""
        return OutageError(
            f"the backend was unreachable for {waited:.0f} s (outage limit {self.limit:g} s, set with "
            f"outage_timeout= or ${OUTAGE_ENV}): {exc}. Following stopped, but {jobs} is, as far as we know, "
            f"still running{hint}", jobs=jobs, limit=self.limit)
