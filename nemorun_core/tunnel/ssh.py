"""``SSHTunnel``: the tunnel contract over SSH (paramiko), for login nodes of Slurm clusters and other remote hosts.

    import nemorun_core as run

    tunnel = run.SSHTunnel(host="login.cluster.com", user="researcher", identity="~/.ssh/id_ed25519",
                           job_dir="/scratch/researcher/runs")
    tunnel.run("squeue --me").stdout

The object is plain configuration (a dataclass, copied and stored freely); its connection lives in a process-wide
pool (``_ssh_pool``), one per login (user, host, port, identity) and host-key settings. paramiko is imported only
when a connection is made.

Reconnects: when the pooled connection has dropped (a restarted sshd, an idle connection cut by a firewall), a call
re-opens it transparently and is retried ONCE if retrying cannot do anything twice:

- ``read_bytes``, ``exists``, ``get``, channel opens for ``forward``: reads, always retried.
- ``put_bytes`` and ``put``: write a fresh temporary name, then rename over the target: retried (a half-written
  temporary of the failed attempt may be left behind; the target is never half-written).
- ``run``: retried only when the drop happened before the command was sent (while opening the channel). Once the
  ``exec`` request has gone out the server may have started it, so a drop then is a ``TunnelError`` saying that the
  command may or may not have run. Callers that must not run a command twice (``sbatch``) rely on idempotency keys
  above this layer (the job name/comment they look up before submitting again), never on this retry.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import posixpath
import select
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from nemorun_core.errors import ConfigError
from nemorun_core.tunnel._ssh_pool import POOL, Connection, ConnectionLostError, SSHStats, ssh_stats
from nemorun_core.tunnel.base import CommandResult, Forward, RemoteCommandError, Tunnel, TunnelError

log = logging.getLogger(__name__)
T = TypeVar("T")

_HOST_KEY_POLICIES = ("strict", "accept-new")


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH (and paramiko) look a host up under in known_hosts: ``host``, or ``[host]:port`` off 22.

    Public because callers outside the tunnel package (the Airflow hook writing a connection's pinned host key)
    must write the same name the tunnel later looks up.
    """
    return host if port == 22 else f"[{host}]:{port}"


def _sftp_path(path: str) -> str:
    # SFTP sessions start in the user's home directory and do not expand "~": make "~/x" relative to it.
    if path == "~":
        return "."
    return path[2:] if path.startswith("~/") else path


def _connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` may mean the connection itself failed (as opposed to a file or command error)."""
    import paramiko

    # Plain OSError (not FileNotFoundError, PermissionError...) is what paramiko raises for "Socket is closed".
    return isinstance(exc, (EOFError, ConnectionError, paramiko.SSHException)) or type(exc) is OSError


def _dropped(conn: Connection, exc: BaseException) -> bool:
    if not _connection_error(exc):
        return False
    # The transport's reader thread may notice the EOF a moment after the call that failed on it.
    deadline = time.monotonic() + 0.5
    while conn.active() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not conn.active()


@dataclasses.dataclass
class SSHTunnel(Tunnel):
    """Run commands and move files on a remote host over SSH.

    Host keys are checked against ``known_hosts``; nothing ever prompts. Secrets are not stored in the object unless
    you put them there: prefer ``passphrase_env`` / ``identity_env`` (names of environment variables, read when
    connecting) so the experiment store and orchestrator state only hold the names.

    Args:
        host: host name or address of the login node.
        user: user name there.
        job_dir: base directory there for job directories and uploaded code (``~/...``: under the user's home
            there, looked up once). Directories nemorun creates there are private to the user (0700).
        identity: path of a private key file (``~`` expanded when connecting). With neither this nor
            ``identity_env``, the agent and the default ``~/.ssh/id_*`` keys are tried, as ``ssh`` would.
        port: SSH port.
        timeout: seconds for connecting, the handshake, authentication and opening a channel.
        compression: compress the SSH stream (helps over slow links, costs CPU on fast ones).
        keepalive_interval: seconds between keepalive messages on an idle connection (0: none).
        known_hosts: OpenSSH known_hosts file to check the host key against.
        host_key_policy: ``"strict"`` (unknown host -> error) or ``"accept-new"`` (add an unknown host's key to
            ``known_hosts``; a changed key is still an error).
        passphrase: passphrase of the key (redacted in the store by its name; prefer ``passphrase_env``).
        passphrase_env: name of an environment variable holding the passphrase.
        identity_env: name of an environment variable holding the private key TEXT (secret stores of orchestrators
            hand keys over this way); takes precedence over ``identity``.
        use_agent: also offer keys from the SSH agent (``SSH_AUTH_SOCK``).
        connect_retries: extra connection attempts when the server cannot be reached (bounded by ``timeout``).
    """

    host: str
    user: str
    job_dir: str
    identity: str | None = None
    _: dataclasses.KW_ONLY
    port: int = 22
    timeout: float = 30
    compression: bool = False
    keepalive_interval: float = 60
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    passphrase: str | None = dataclasses.field(default=None, repr=False)
    passphrase_env: str | None = None
    identity_env: str | None = None
    use_agent: bool = True
    connect_retries: int = 2

    def __post_init__(self) -> None:
        if self.host_key_policy not in _HOST_KEY_POLICIES:
            raise ConfigError(f"host_key_policy must be one of {', '.join(map(repr, _HOST_KEY_POLICIES))}, "
                              f"not {self.host_key_policy!r}", path="SSHTunnel.host_key_policy")
        if not self.host or not self.user:
            raise ConfigError("host and user are required", path="SSHTunnel")
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"must be an int from 1 to 65535 (the SSH server's port, usually 22), got {port!r}",
                              path="SSHTunnel.port")
        job_dir = self.job_dir
        if not isinstance(job_dir, str) or not (job_dir.startswith("/") or job_dir.startswith("~")):
            raise ConfigError(f"must be an absolute path on the remote host ('/scratch/me/nemorun') or one under "
                              f"the home there ('~/nemorun'), got {job_dir!r}", path="SSHTunnel.job_dir")

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def stats(self) -> SSHStats:
        """Process-wide counters for this tunnel's address (see ``ssh_stats``)."""
        return ssh_stats(self.address)

    # -- connection handling ---------------------------------------------------------------------------------------

    def _key(self) -> tuple:
        # The host-key settings are part of the key: a tunnel must never borrow a connection that was verified
        # against another known_hosts file or a laxer policy than its own.
        identity = os.path.expanduser(self.identity) if self.identity else None
        return (self.user, self.host, self.port, identity, self.identity_env,
                os.path.expanduser(self.known_hosts), self.host_key_policy)

    def _connection(self) -> Connection:
        from nemorun_core.tunnel._ssh_connect import open_client

        return POOL.get(self._key(), self.address, lambda: open_client(self))

    def _call(self, what: str, op: Callable[[Connection], T], *, retry: Callable[[], bool] = lambda: True) -> T:
        """Run ``op`` on the pooled connection; on a dropped connection re-open it and retry once if ``retry()``."""
        conn = self._connection()
        try:
            return op(conn)
        except Exception as exc:
            if not _dropped(conn, exc):
                raise self._as_tunnel_error(what, exc)
            POOL.discard(self._key(), conn)
            if not retry():
                raise ConnectionLostError(f"the connection to {self.address} dropped during {what} after the "
                                          f"command was sent: it may or may not have run, so it was not retried "
                                          f"({exc})") from exc
            log.info("connection to %s dropped during %s (%s); reconnecting once", self.address, what, exc)
        conn = self._connection()
        try:
            return op(conn)
        except Exception as exc:
            if _dropped(conn, exc):
                POOL.discard(self._key(), conn)
                raise ConnectionLostError(f"the connection to {self.address} dropped again during {what}: "
                                          f"{exc}") from exc
            raise self._as_tunnel_error(what, exc)

    def _as_tunnel_error(self, what: str, exc: Exception) -> Exception:
        # Callers catch TunnelError, not paramiko's exceptions; file and command errors pass through unchanged.
        if isinstance(exc, TunnelError) or not _connection_error(exc):
            return exc
        return TunnelError(f"on {self.address}: {what} failed: {exc}")

    def home(self) -> str:
        """The login's home directory there: looked up once per tunnel object and login (one ``$HOME`` echo)."""
        # Cached as (address, home) outside the dataclass fields, so it is never serialized, and keyed by the
        # address so that a copy pointed at another login looks it up again.
        cached = self.__dict__.get("_home")
        if cached is None or cached[0] != self.address:
            cached = self.__dict__["_home"] = (self.address, super().home())
        return cached[1]

    def close(self) -> None:
        """Close the pooled connection for this tunnel's login (shared: other copies reconnect on next use)."""
        POOL.close(self._key())

    # -- commands --------------------------------------------------------------------------------------------------

    def run(self, command: str, *, timeout: float | None = None, check: bool = True,
            stdin: bytes | None = None) -> CommandResult:
        """Run ``command`` with the login shell there, in the home directory; blocks until it exits.

        Args:
            command: shell command line (quote arguments with ``shlex.quote``).
            timeout: seconds to wait for it (None: no limit). On expiry the channel is closed and TunnelError is
                raised; the remote process is not signalled (sshd gives no portable way), so commands that must
                stop should be wrapped in ``timeout(1)`` on the remote side too.
            check: raise RemoteCommandError on a non-zero exit status.
            stdin: bytes fed to its standard input, which is then closed. Without it, the command's standard input
                stays open, as with ``ssh host command``: a command that reads it waits (until ``timeout``).

        Raises:
            RemoteCommandError: non-zero exit with ``check``.
            TunnelError: connection failures, the timeout, or a connection dropped after the command was sent.
        """
        sent = False

        def op(conn: Connection) -> CommandResult:
            nonlocal sent
            chan = conn.transport.open_session(timeout=self.timeout)
            try:
                sent = True  # from here on the server may start the command: never retried
                chan.exec_command(command)
                POOL.count(self.address, "commands_run")
                if stdin is not None:
                    chan.sendall(stdin)
                    # paramiko sends the EOF outside the channel lock, so it can cross the server's CLOSE of a
                    # command that exits without reading its input, and OpenSSH then drops the whole connection
                    # (paramiko#1115). That is why EOF is sent only with stdin, and only while the command runs.
                    if not (chan.eof_received or chan.closed):
                        chan.shutdown_write()
                return self._collect(chan, command, timeout)
            finally:
                chan.close()

        result = self._call(f"`{command}`", op, retry=lambda: not sent)
        if check and not result.ok:
            raise RemoteCommandError(result, self.address)
        return result

    def _collect(self, chan: Any, command: str, timeout: float | None) -> CommandResult:
        # Both streams are read as data arrives: reading one to the end first would deadlock once the other
        # fills the channel's flow-control window.
        out: list[bytes] = []
        err: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = chan.fileno()
        while True:
            while chan.recv_ready():
                out.append(chan.recv(1 << 16))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(1 << 16))
            if chan.exit_status_ready() and chan.eof_received:
                if not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                continue
            if chan.closed or not chan.get_transport().is_active():
                raise EOFError(f"the channel closed before `{command}` reported an exit status")
            wait = 1.0 if not chan.eof_received else 0.01  # after EOF the pipe stays readable: poll briefly
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    chan.close()
                    raise TunnelError(f"on {self.address}: `{command}` did not finish within {timeout} s; its "
                                      f"channel was closed (the remote process may still be running)")
                wait = min(wait, remaining)
            select.select([fd], [], [], wait)
        return CommandResult(command=command, exit_code=chan.recv_exit_status(),
                             stdout=b"".join(out).decode("utf-8", "replace"),
                             stderr=b"".join(err).decode("utf-8", "replace"))

    # -- files -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _makedirs(sftp: Any, directory: str) -> None:
        if directory in ("", ".", "/"):
            return
        try:
            sftp.stat(directory)
            return
        except FileNotFoundError:
            pass
        SSHTunnel._makedirs(sftp, posixpath.dirname(directory.rstrip("/")))
        try:
            sftp.mkdir(directory, mode=0o700)  # private to the user, like the directories submissions create
        except OSError as exc:
            try:
                sftp.stat(directory)  # created meanwhile by another writer is fine
            except OSError:
                raise exc from None

    def _atomic_upload(self, remote_path: str, write: Callable[[Any, str], None], mode: int) -> None:
        path = _sftp_path(remote_path)
        directory, name = posixpath.split(path)

        def op(conn: Connection) -> None:
            # A fresh temporary name per attempt, so a retry never appends to a half-written file.
            tmp = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
            with conn.sftp_lock:
                sftp = conn.sftp()
                try:
                    self._makedirs(sftp, directory)
                    write(sftp, tmp)
                    sftp.chmod(tmp, mode)
                    # posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses to.
                    sftp.posix_rename(tmp, path)
                except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
                    self._remove_quietly(sftp, tmp)
                    raise TunnelError(f"on {self.address}: cannot write {remote_path}: {exc.strerror or exc}") from exc
                except BaseException:
                    if conn.active():
                        self._remove_quietly(sftp, tmp)
                    raise

        self._call(f"writing {remote_path}", op)

    @staticmethod
    def _remove_quietly(sftp: Any, path: str) -> None:
        try:
            sftp.remove(path)
        except (OSError, EOFError):
            pass

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        """Write ``data`` to ``remote_path`` atomically (temporary + rename), creating parent directories."""
        def write(sftp: Any, tmp: str) -> None:
            with sftp.open(tmp, "wb") as f:
                f.set_pipelined(True)  # do not wait for a reply to each 32 KiB write
                f.write(data)

        self._atomic_upload(remote_path, write, mode)

    def put(self, local_path: str, remote_path: str) -> None:
        """Upload a local file atomically, creating parent directories; keeps its permission bits."""
        mode = os.stat(local_path).st_mode & 0o777
        self._atomic_upload(remote_path, lambda sftp, tmp: sftp.put(local_path, tmp, confirm=True), mode)

    def get(self, remote_path: str, local_path: str) -> None:
        """Download a file; ``local_path`` is replaced atomically.

        Raises:
            FileNotFoundError: there is no ``remote_path``.
        """
        local_path = os.path.abspath(os.path.expanduser(local_path))
        os.makedirs(os.path.dirname(local_path), exist_ok=True)

        def op(conn: Connection) -> None:
            tmp = f"{local_path}.{uuid.uuid4().hex[:12]}.part"
            try:
                with conn.sftp_lock:
                    conn.sftp().get(_sftp_path(remote_path), tmp)
                os.replace(tmp, local_path)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, f"no such file on {self.address}", remote_path) from None
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

        self._call(f"reading {remote_path}", op)

    def read_bytes(self, remote_path: str, offset: int = 0, limit: int | None = None) -> bytes | None:
        """Bytes of ``remote_path`` from ``offset`` (at most ``limit``); None when it does not exist.

        Meant for polling logs by offset: only the requested range crosses the network.
        """
        def op(conn: Connection) -> bytes | None:
            with conn.sftp_lock:
                try:
                    f = conn.sftp().open(_sftp_path(remote_path), "rb")
                except FileNotFoundError:
                    return None
                with f:
                    if offset:
                        f.seek(offset)
                    elif limit is None:
                        f.prefetch()  # whole file: pipeline the reads instead of one round trip per 32 KiB
                    return f.read(limit) if limit is not None else f.read()

        return self._call(f"reading {remote_path}", op)

    def exists(self, remote_path: str) -> bool:
        """Whether ``remote_path`` exists there (a broken symlink does not)."""
        def op(conn: Connection) -> bool:
            with conn.sftp_lock:
                try:
                    conn.sftp().stat(_sftp_path(remote_path))
                    return True
                except FileNotFoundError:
                    return False

        return self._call(f"checking {remote_path}", op)

    # -- ports -----------------------------------------------------------------------------------------------------

    def forward(self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1") -> Forward:
        """Listen on ``127.0.0.1:local_port`` here and forward each connection to ``remote_host:remote_port``.

        Non-blocking: returns once listening. Each connection gets its own SSH channel on the pooled connection
        (re-opened if it dropped). Close the returned Forward (or use it as a context manager) to stop.
        """
        from nemorun_core.tunnel._ssh_forward import SSHForward

        def open_channel(peer: tuple[str, int]) -> Any:
            return self._call(
                f"forwarding to {remote_host}:{remote_port}",
                lambda conn: conn.transport.open_channel("direct-tcpip", (remote_host, remote_port), peer,
                                                         timeout=self.timeout))

        try:
            return SSHForward(open_channel, local_port, f"{remote_host}:{remote_port} via {self.address}")
        except OSError as exc:
            raise TunnelError(f"cannot listen on 127.0.0.1:{local_port} to forward {remote_host}:{remote_port} "
                              f"on {self.address}: {exc.strerror or exc}") from exc

