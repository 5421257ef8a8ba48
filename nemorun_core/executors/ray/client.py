"""The one place nemorun talks to a Ray cluster's Jobs API: Ray's own ``JobSubmissionClient``, imported lazily.

A client is made once per dashboard address and process (making one costs a version request), and every call goes
through :func:`calling`, which turns "the dashboard does not answer" into :class:`BackendUnavailableError` naming
the address, and Ray's "no such job" (HTTP 404) into ``None`` for the callers that ask about a job that may not
exist. :func:`counting_requests` counts the HTTP requests one client sends: how the contract tests and the
benchmarks check that the status of N jobs is one request.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, TypeVar

from nemorun_core.errors import BackendUnavailableError, ExecutorError

T = TypeVar("T")

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


class NoSuchJob(ExecutorError):
    """The cluster has no job with that submission id (Ray answered 404)."""


def normalize(address: str) -> str:
    """``127.0.0.1:8265`` -> ``http://127.0.0.1:8265`` (no trailing slash): one key per dashboard."""
    address = address.strip().rstrip("/")
    return address if "://" in address else f"http://{address}"


def client(address: str) -> Any:
    """The ``JobSubmissionClient`` of the dashboard at ``address`` (made on first use: one version request).

    Raises:
        BackendUnavailableError: the dashboard does not answer.
        ExecutorError: ``ray[default]`` is not installed (the message says how to install it).
    """
    address = normalize(address)
    with _LOCK:
        found = _CLIENTS.get(address)
    if found is not None:
        return found
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ExecutorError("the Ray executor needs Ray's job SDK, which is not installed; install it: "
                            "pip install 'nemorun[ray]'") from None
    made = calling(address, "connecting", lambda: JobSubmissionClient(address))
    with _LOCK:
        return _CLIENTS.setdefault(address, made)


def forget(address: str) -> None:
    """Drop the cached client of ``address`` (its cluster was stopped: a new one may get the same address)."""
    with _LOCK:
        _CLIENTS.pop(normalize(address), None)


def calling(address: str, what: str, call: Callable[[], T]) -> T:
    """Run one Jobs API call; map Ray's errors to nemorun's.

    Raises:
        BackendUnavailableError: the dashboard at ``address`` does not answer (refused, reset, timed out).
        NoSuchJob: Ray answered 404 for the job.
        ExecutorError: any other refusal, with Ray's own words.
    """
    import requests

    try:
        return call()
    except (ConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise BackendUnavailableError(f"the Ray dashboard at {normalize(address)} does not answer ({what}): {exc}; "
                                      "is the cluster running? (RayCluster.status())") from None
    except RuntimeError as exc:
        text = str(exc)
        if "status code 404" in text:
            raise NoSuchJob(text) from None
        raise ExecutorError(f"the Ray cluster at {normalize(address)} refused {what}: {text}") from None


def or_none(address: str, what: str, call: Callable[[], T]) -> T | None:
    """:func:`calling`, with ``None`` for a job the cluster does not have."""
    try:
        return calling(address, what, call)
    except NoSuchJob:
        return None


@contextlib.contextmanager
def counting_requests(address: str) -> Iterator[dict[str, int]]:
    """Count the HTTP requests this process's client of ``address`` sends while the block runs (``counted["n"]``).

    Wraps the client's request method for the block's length (a test and benchmark seam, not for production)."""
    api = client(address)
    counted = {"n": 0}
    real = api._do_request

    def request(*args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return real(*args, **kwargs)

    api._do_request = request
    try:
        yield counted
    finally:
        del api._do_request
