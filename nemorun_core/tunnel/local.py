"""``LocalTunnel``: the tunnel contract on this machine (subprocesses and the local filesystem).

Lets executors that normally talk to a login node over SSH (Slurm) run against a scheduler on this machine, and gives
tests the same contract without a server. Paths behave as they would over SSH: ``~`` is the user's home directory.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from typing import IO

from nemorun_core.tunnel.base import CommandResult, Forward, RemoteCommandError, Tunnel, TunnelError

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _path(path: str) -> str:
    return os.path.expanduser(path)


class _NoForward(Forward):
    """A "forward" to a port of this machine: the port is already reachable as it is."""

    def __init__(self, port: int):
        self.local_port = port

    def close(self) -> None:
        pass


@dataclasses.dataclass
class LocalTunnel(Tunnel):
    """Run commands and move files on this machine.

    Args:
        job_dir: base directory for job directories and uploaded code (``~`` expanded when used).
    """

    job_dir: str

    @property
    def address(self) -> str:
        return "local"

    def run(self, command: str, *, timeout: float | None = None, check: bool = True,
            stdin: bytes | None = None) -> CommandResult:
        """Run ``command`` with bash (``sh`` when there is none), in the current directory; blocks until it exits.

        Args:
            command: shell command line.
            timeout: seconds to wait (None: no limit). On expiry the command and everything it started (its
                process group) are killed and TunnelError is raised.
            check: raise RemoteCommandError on a non-zero exit status.
            stdin: bytes for its standard input, which is closed in every case (over SSH it stays open when
                no stdin is given).

        Raises:
            RemoteCommandError: non-zero exit with ``check``.
            TunnelError: the command could not be started, or ran past ``timeout``.
        """
        shell = shutil.which("bash") or "/bin/sh"
        try:
            # A new session, so a timeout can kill the whole process group: killing only the shell would leave
            # its children holding the output pipes open, and communicate() would wait for them.
            proc = subprocess.Popen([shell, "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise TunnelError(f"cannot start {shell} for `{command}`: {exc}") from exc
        try:
            out, err = proc.communicate(stdin or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc)
            proc.communicate()
            raise TunnelError(f"on local: `{command}` did not finish within {timeout} s; it was killed") from None
        except BaseException:
            self._kill_group(proc)
            proc.wait()
            raise
        result = CommandResult(command=command, exit_code=proc.returncode,
                               stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"))
        if check and not result.ok:
            raise RemoteCommandError(result, self.address)
        return result

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _atomic_write(self, remote_path: str, write: Callable[[IO[bytes]], None], mode: int) -> None:
        path = _path(remote_path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)  # private, like a job directory on a cluster
        # The temporary lives beside the target: os.replace is atomic only within one filesystem.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                os.fchmod(f.fileno(), mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        """Write ``data`` atomically (temporary + rename), creating parent directories."""
        self._atomic_write(remote_path, lambda f: f.write(data), mode)

    def put(self, local_path: str, remote_path: str) -> None:
        """Copy a file atomically, creating parent directories; keeps its permission bits."""
        mode = os.stat(local_path).st_mode & 0o777
        with open(local_path, "rb") as src:
            self._atomic_write(remote_path, lambda f: shutil.copyfileobj(src, f, 1 << 20), mode)

    def get(self, remote_path: str, local_path: str) -> None:
        """Copy a file; ``local_path`` is replaced atomically.

        Raises:
            FileNotFoundError: there is no ``remote_path``.
        """
        with open(_path(remote_path), "rb") as src:
            self._atomic_write(local_path, lambda f: shutil.copyfileobj(src, f, 1 << 20), 0o600)

    def read_bytes(self, remote_path: str, offset: int = 0, limit: int | None = None) -> bytes | None:
        """Bytes from ``offset`` (at most ``limit``); None when the file does not exist."""
        try:
            with open(_path(remote_path), "rb") as f:
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except FileNotFoundError:
            return None

    def exists(self, remote_path: str) -> bool:
        """Whether the path exists (a broken symlink does not)."""
        return os.path.exists(_path(remote_path))

    def forward(self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1") -> Forward:
        """Nothing to forward: a port on this machine is reachable as it is (``local_port == remote_port``).

        Raises:
            TunnelError: a different ``local_port`` or a non-loopback ``remote_host`` was asked for.
        """
        if remote_host not in _LOOPBACK or local_port not in (0, remote_port):
            raise TunnelError(f"LocalTunnel cannot forward 127.0.0.1:{local_port} to {remote_host}:{remote_port}: "
                              f"it only exposes ports of this machine as they are (local_port=0 or {remote_port})")
        return _NoForward(remote_port)

    def home(self) -> str:
        """This user's home directory (``~`` as ``os.path.expanduser`` sees it); no command is run."""
        return os.path.expanduser("~").rstrip("/") or "/"

    def close(self) -> None:
        """Nothing to release. Idempotent."""
