"""The tunnel contract: how executors reach the machine where jobs are submitted (this one, or one over SSH).

Executors such as ``SlurmExecutor`` only use this interface, so the same executor code runs against the local
machine (``LocalTunnel``) and a login node (``SSHTunnel``), and tests can inject either.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from nemorun_core.errors import ConfigError, NemorunError


class TunnelError(NemorunError):
    """The remote machine could not be reached, or refused us (authentication, host key, permissions)."""


class RemoteCommandError(TunnelError):
    """A remote command exited non-zero (with ``check=True``); carries its exit status and output."""

    def __init__(self, result: "CommandResult", host: str):
        self.result = result
        tail = (result.stderr or result.stdout).strip()[-2000:]
        super().__init__(f"on {host}: `{result.command}` exited with status {result.exit_code}"
                         + (f": {tail}" if tail else ""))


@dataclasses.dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Forward(abc.ABC):
    """An open port forward (``local_port`` on this machine -> ``remote_host:remote_port`` there)."""

    local_port: int

    @abc.abstractmethod
    def close(self) -> None:
        """Stop forwarding. Idempotent."""

    def __enter__(self) -> "Forward":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Tunnel(abc.ABC):
    """Run commands and move files on the submission host.

    Attributes:
        job_dir: base directory on that host under which job directories and uploaded code live.
    """

    job_dir: str

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """``user@host:port`` (or ``local``): identifies the host for connection reuse and batched status calls."""

    @abc.abstractmethod
    def run(self, command: str, *, timeout: float | None = None, check: bool = True,
            stdin: bytes | None = None) -> CommandResult:
        """Run a shell command there; raise RemoteCommandError on a non-zero exit when ``check``."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        """Write a file there atomically (temporary + rename), creating missing parent directories.

        Files default to ``0600`` and created directories are ``0700``: job files are private to the user there.
        """

    @abc.abstractmethod
    def put(self, local_path: str, remote_path: str) -> None:
        """Upload a local file (atomically, creating parent directories)."""

    @abc.abstractmethod
    def get(self, remote_path: str, local_path: str) -> None:
        """Download a file."""

    @abc.abstractmethod
    def read_bytes(self, remote_path: str, offset: int = 0, limit: int | None = None) -> bytes | None:
        """Bytes of a remote file from ``offset`` (at most ``limit``), or None when it does not exist."""

    @abc.abstractmethod
    def exists(self, remote_path: str) -> bool:
        """Whether a path exists there."""

    @abc.abstractmethod
    def forward(self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1") -> Forward:
        """Forward a local port (0: pick a free one) to ``remote_host:remote_port`` as seen from there."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    def home(self) -> str:
        """The home directory of the user there (one ``$HOME`` lookup; tunnels may cache it).

        Raises:
            TunnelError: the host could not be reached, or its answer is not an absolute path.
        """
        result = self.run('printf %s "$HOME"', check=False, timeout=60)
        home = result.stdout
        if not result.ok or not home.startswith("/") or "\n" in home:
            raise TunnelError(f"on {self.address}: cannot tell the home directory ($HOME is {home!r}, exit status "
                              f"{result.exit_code}); give the tunnel an absolute job_dir instead of one with '~'")
        return home.rstrip("/") or "/"

    def expand_home(self, path: str) -> str:
        """``path`` with a leading ``~`` or ``~/`` replaced by the home directory there.

        Commands quote every path (so a file name is never parsed as shell), and a quoted ``~`` is a literal
        directory called ``~``; ``#SBATCH`` lines do not expand it either. So a path that means the home
        directory is made absolute once, on the remote side, before it is used. Any other path is returned as is.

        Raises:
            ConfigError: ``~user/...`` (another user's home), which nemorun does not resolve.
            TunnelError: see :meth:`home`.
        """
        if path != "~" and not path.startswith("~/"):
            if path.startswith("~"):
                raise ConfigError(f"{path!r}: '~user' paths are not supported; write the absolute path, or '~/...' "
                                  "for your own home directory", path=f"{type(self).__name__}.job_dir")
            return path
        home = self.home()
        return (home if home != "/" else "") + path[1:] or "/"
