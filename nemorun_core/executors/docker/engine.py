"""Reaching the Docker engine: one client per process and engine, and one translation of "the engine does not
answer" into :class:`~nemorun_core.errors.BackendUnavailableError`, for every call the executor makes.

Why a translation at all: the SDK lets the transport's own errors through (``requests``' ``ConnectionError`` when
the socket is gone, ``ChunkedEncodingError`` when a log stream is cut, a ``DockerException`` wrapping them when the
client is created), and none of them says which engine, that the job may still be running, or what to do. A caller
that follows a job retries ``BackendUnavailableError`` through a bounded outage (``executors.base.follow_log``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import struct
import threading
from typing import Any, Iterator, Optional

from nemorun_core.errors import BackendUnavailableError, ExecutorError, SubmissionError
from nemorun_core.executors.lines import LineBuffer, decode
from nemorun_core.executors.procs import proc_stat

DEFAULT_SOCKET = "/var/run/docker.sock"
REATTACH = ("a job already started there keeps its containers and may still be running: start the engine again "
            "(or point DockerExecutor(docker_host=...) / $DOCKER_HOST at the right one), then re-attach with "
            "`nemorun experiment status <id>` / `nemorun experiment logs <id>` (or DockerExecutor.find(key, job_dir))")


class EngineUnavailableAtSubmitError(SubmissionError, BackendUnavailableError):
    """The engine did not answer while a job was being submitted; nothing of the job was started.

    Both kinds at once: a :class:`SubmissionError` (the job was not submitted, submitting again is safe: it is
    idempotent by key) and a :class:`BackendUnavailableError` (the cause is an outage, not the job's settings).
    """


def describe(host: str) -> str:
    """The engine's address as a person can check it: ``unix:///run/docker.sock (from $DOCKER_HOST)``."""
    if not host:
        return f"unix://{DEFAULT_SOCKET} (the SDK's default socket; $DOCKER_HOST is not set)"
    if host == os.environ.get("DOCKER_HOST"):
        return f"{host} (from $DOCKER_HOST)"
    return f"{host} (DockerExecutor.docker_host)"


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised ``from``) says the engine could not be reached or stopped answering
    mid-call. Only explicit causes count: an unrelated error raised while handling one is not an outage."""
    import requests.exceptions
    import urllib3.exceptions

    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
             requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError,
             urllib3.exceptions.TimeoutError, ConnectionError, TimeoutError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def _reason(exc: BaseException) -> str:
    """The innermost cause in a few words (``[Errno 111] Connection refused``), not the transport's whole repr."""
    current, last = exc, exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        current = current.__cause__ or current.__context__
    text = str(last) or type(last).__name__
    for known in ("Connection refused", "No such file or directory", "Connection reset", "Broken pipe",
                  "timed out", "Connection aborted"):
        if known.lower() in text.lower():
            return known.lower()
    return text[:200]


def unavailable(host: str, doing: str, exc: BaseException | None = None, *,
                submitting: bool = False) -> BackendUnavailableError:
    """The error for an engine that did not answer while ``doing`` (``"listing the containers of job 'x'"``)."""
    reason = f" ({_reason(exc)})" if exc is not None else ""
    if submitting:
        return EngineUnavailableAtSubmitError(
            f"the Docker engine at {describe(host)} does not answer{reason} while {doing}; nothing of the job was "
            "started: start the engine (or fix DockerExecutor(docker_host=...) / $DOCKER_HOST) and submit again")
    return BackendUnavailableError(f"the Docker engine at {describe(host)} does not answer{reason} while {doing}; "
                                   f"{REATTACH}")


@contextlib.contextmanager
def reaching(host: str, doing: str, *, submitting: bool = False) -> Iterator[None]:
    """Run engine calls; an unreachable engine becomes :func:`unavailable`, every other error passes unchanged."""
    try:
        yield
    except BackendUnavailableError as exc:
        if submitting and not isinstance(exc, SubmissionError):
            raise unavailable(host, doing, exc, submitting=True) from None
        raise
    except Exception as exc:
        if is_unreachable(exc):
            raise unavailable(host, doing, exc, submitting=submitting) from None
        raise


@functools.lru_cache(maxsize=8)
def _client_for(host: str, pid: int) -> Any:
    import docker

    return docker.DockerClient(base_url=host or None)


def client(host: str, doing: str = "connecting", *, submitting: bool = False) -> Any:
    """A client of the engine at ``host``; one per process and engine (the pid in the key: a forked child must not
    share its parent's connections). Creating it asks the engine for its API version, so it fails when the engine
    is down: with :func:`unavailable`, or an ExecutorError for any other refusal."""
    from docker.errors import DockerException

    with reaching(host, doing, submitting=submitting):
        try:
            return _client_for(host, os.getpid())
        except DockerException as exc:
            if is_unreachable(exc):
                raise
            raise ExecutorError(f"cannot use the Docker engine at {describe(host)}: {exc}; start it, or set "
                                "DockerExecutor(docker_host=...) / $DOCKER_HOST") from None


def started_at(host: str) -> float | None:
    """When the engine process behind a local unix socket started (epoch seconds), else None.

    The engine's API does not say when it started, and a container that the engine stopped while shutting down
    looks like one stopped with ``docker stop``. The socket's peer (``SO_PEERCRED``) is the engine's process on
    this machine, and its start time tells whether a container ended before the engine (re)started.
    """
    path = _socket_path(host)
    if path is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
        if pid <= 0:
            return None
        found = proc_stat(pid)
        if found is None:
            return None
        ticks = int(found[1])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, struct.error):
        return None


def _socket_path(host: str) -> str | None:
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):] or DEFAULT_SOCKET
    return None


# -- engine calls shared by the executor ------------------------------------------------------------------------
def list_labelled(host: str, label: str) -> list[dict[str, Any]]:
    """Every container (running or not) with ``label`` (``key`` or ``key=value``): one engine call."""
    from docker.errors import DockerException

    with reaching(host, f"listing the containers labelled {label}"):
        try:
            return list(client(host).api.containers(all=True, filters={"label": label}))
        except DockerException as exc:
            if is_unreachable(exc):
                raise
            raise ExecutorError(f"cannot list containers on the Docker engine at {describe(host)}: "
                                f"{exc}") from None


def inspect(host: str, cid: str) -> dict[str, Any]:
    """The engine's view of container ``cid``; ``{}`` when the engine answers but cannot say (a removed container)."""
    from docker.errors import DockerException

    with reaching(host, f"inspecting container {cid[:12]}"):
        try:
            return client(host).api.inspect_container(cid)
        except DockerException as exc:
            if is_unreachable(exc):
                raise
            return {}


class EngineStart:
    """The engine's start time, looked up once per status round and only when a container ended by a signal."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._value: Optional[float] = None
        self._looked = False

    def get(self) -> Optional[float]:
        if not self._looked:
            self._value, self._looked = started_at(self.host), True
        return self._value


def follow_lines(client: Any, container_id: str, offset: int) -> Iterator[str]:
    """The container's output from line ``offset`` as it comes, until the container exits."""
    stream = client.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=True)
    line_no, buffer = 0, LineBuffer()
    for chunk in stream:
        for raw in buffer.feed(chunk):
            if line_no >= offset:
                yield decode(raw)
            line_no += 1
    if line_no >= offset:
        yield from map(decode, buffer.final())


def stop_in_background(client: Any, ids: list[str], grace: int) -> None:
    """Ask the engine to stop containers (SIGTERM, SIGKILL after ``grace`` s) without waiting for it: the engine
    carries the stop out on its own once the request has arrived."""
    from docker.errors import DockerException

    def stop_all() -> None:
        for cid in ids:
            try:
                client.api.stop(cid, timeout=grace)
            except DockerException:
                pass
            except Exception as exc:  # noqa: BLE001 - a daemon thread: an engine gone meanwhile is not its error
                if not is_unreachable(exc):
                    raise

    threading.Thread(target=stop_all, name="nemorun-docker-stop", daemon=True).start()


@contextlib.contextmanager
def counting_requests(host: str) -> Iterator[dict[str, int]]:
    """Count the HTTP requests this process's client of the engine at ``host`` sends while the block runs
    (``counted["n"]``): how the benchmarks and tests check what a poll round costs the engine."""
    api = client(host).api
    counted = {"n": 0}
    real = api.send

    def send(*args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return real(*args, **kwargs)

    api.send = send
    try:
        yield counted
    finally:
        del api.send
