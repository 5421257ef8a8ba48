"""Opening one authenticated, host-key-checked paramiko connection for an ``SSHTunnel``.

Private to ``nemorun_core.tunnel``. Everything here turns paramiko's exceptions into ``TunnelError`` messages that
say what failed and how to fix it, because the people reading them are looking at a failed Airflow task or Prefect
flow run, not at a terminal where ssh could have asked a question. paramiko is imported inside the functions: importing
``nemorun_core`` or ``nemorun_core.tunnel`` must not import it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from nemorun_core.tunnel._ssh_pool import ConnectionLostError
from nemorun_core.tunnel.base import TunnelError
from nemorun_core.tunnel.ssh import known_hosts_name

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

    from nemorun_core.tunnel.ssh import SSHTunnel

log = logging.getLogger(__name__)

# accept-new appends to a known_hosts file that other threads of this process may be appending to as well.
_KNOWN_HOSTS_LOCK = threading.Lock()


def fingerprint(key: Any) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it, so users can compare it with what their admin published."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _keyscan_hint(t: SSHTunnel, known_hosts: str) -> str:
    return (f"after verifying the key with the host's administrator, run `ssh-keyscan -p {t.port} {t.host} >> "
            f"{known_hosts}`")


class _HostKeyPolicy:
    """What to do with a host that known_hosts does not list: never a prompt.

    Duck-typed for ``SSHClient.set_missing_host_key_policy`` (it only calls ``missing_host_key``), so this module
    can define it without importing paramiko.
    """

    def __init__(self, tunnel: SSHTunnel, known_hosts: str):
        self.tunnel = tunnel
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        t = self.tunnel
        if t.host_key_policy == "accept-new":
            _append_known_host(self.known_hosts, hostname, key)
            log.warning("added %s host key %s for %s to %s (host_key_policy='accept-new')",
                        key.get_name(), fingerprint(key), hostname, self.known_hosts)
            return
        raise TunnelError(
            f"unknown host key for {hostname}: the server offers {key.get_name()} {fingerprint(key)}, and "
            f"{self.known_hosts} has no key for it (host_key_policy='strict'). To trust it, "
            + _keyscan_hint(t, self.known_hosts) + ", or set host_key_policy='accept-new' to trust the first key "
            "a host presents")


def _append_known_host(path: str, hostname: str, key: Any) -> None:
    with _KNOWN_HOSTS_LOCK:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _passphrase(t: SSHTunnel) -> str | None:
    if t.passphrase:
        return t.passphrase
    if t.passphrase_env:
        value = os.environ.get(t.passphrase_env)
        if value is None:
            raise TunnelError(f"passphrase_env={t.passphrase_env!r}: that environment variable is not set in this "
                              f"process (set it where the job is launched, or use the SSH agent)")
        return value
    return None


def _parse_key(text: str, passphrase: str | None, source: str) -> paramiko.PKey:
    import paramiko

    # Key text has no type marker that paramiko's per-type loaders agree on (OpenSSH-format keys all start the same
    # way), so try each type; a wrong type fails fast without touching the passphrase.
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise
        except (paramiko.SSHException, ValueError, TypeError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    raise TunnelError(f"cannot load the private key from {source} (wrong passphrase, or not an ed25519/ecdsa/rsa "
                      f"private key): " + "; ".join(errors))


def load_identity(t: SSHTunnel) -> tuple[Any, str]:
    """The private key to offer (or None) and a description of where it came from, for error messages."""
    import paramiko

    if t.identity_env:
        text = os.environ.get(t.identity_env)
        if not text:
            raise TunnelError(f"identity_env={t.identity_env!r}: that environment variable is not set or empty")
        source = f"the key in ${t.identity_env}"
    elif t.identity:
        path = os.path.expanduser(t.identity)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise TunnelError(f"cannot read identity file {path}: {exc.strerror or exc}") from exc
        source = f"identity {path}"
    else:
        return None, "no identity file"
    try:
        key = _parse_key(text, _passphrase(t), source)
    except paramiko.PasswordRequiredException as exc:
        if t.use_agent and os.environ.get("SSH_AUTH_SOCK"):
            # Like ssh: an encrypted key we cannot open may still be loaded in the agent.
            return None, f"{source} (encrypted, no passphrase: left to the SSH agent)"
        raise TunnelError(f"{source} is encrypted: set passphrase_env to the name of an environment variable that "
                          f"holds its passphrase, or load it into an SSH agent (use_agent=True)") from exc
    return key, f"{source} ({key.get_name()} {fingerprint(key)})"


def _connect_error(t: SSHTunnel, exc: BaseException) -> ConnectionLostError:
    reason = str(exc) or type(exc).__name__
    per_address = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError: one error per address tried
    if isinstance(per_address, dict) and per_address:
        reason = "; ".join(sorted({getattr(e, "strerror", None) or str(e) for e in per_address.values()}))
    if isinstance(exc, TimeoutError) or "timed out" in reason:
        reason = f"timed out after {t.timeout} s"
    # Unreachable is an outage (retryable by followers), unlike the auth and host-key errors of open_client.
    return ConnectionLostError(f"cannot connect to {t.host}:{t.port}: {reason}")


def open_client(t: SSHTunnel) -> paramiko.SSHClient:
    """Connect, check the host key, authenticate; retry only failures to reach the server.

    Host-key and authentication failures are not retried: they will not heal by themselves. Connection failures
    (refused, reset, no banner: a busy login node drops new connections beyond sshd's MaxStartups) are retried up to
    ``connect_retries`` times, but never past ``timeout`` seconds in total, so a wrong host or port fails quickly.

    Raises:
        ConnectionLostError: the server could not be reached (a TunnelError a follower may retry).
        TunnelError: authentication or host-key failures, naming the host, what failed and the fix.
    """
    import paramiko

    key, key_source = load_identity(t)
    known_hosts = os.path.expanduser(t.known_hosts)
    start = time.monotonic()
    attempt = 0
    while True:
        client = paramiko.SSHClient()
        if os.path.exists(known_hosts):
            # get_host_keys().load, not load_host_keys: the latter would make paramiko rewrite the file on save.
            client.get_host_keys().load(known_hosts)
        client.set_missing_host_key_policy(_HostKeyPolicy(t, known_hosts))
        try:
            client.connect(
                t.host, port=t.port, username=t.user, pkey=key,
                allow_agent=t.use_agent,
                # With no explicit key, fall back to ~/.ssh/id_* as ssh would; with one, offer only what was asked
                # for, so a refused key is reported as such (and sshd's MaxAuthTries is not spent on others).
                look_for_keys=key is None and not t.identity and not t.identity_env,
                compress=t.compression, timeout=t.timeout, banner_timeout=t.timeout, auth_timeout=t.timeout,
                channel_timeout=t.timeout)
        except TunnelError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            name = known_hosts_name(t.host, t.port)
            raise TunnelError(
                f"host key for {name} has CHANGED: {known_hosts} lists {exc.expected_key.get_name()} "
                f"{fingerprint(exc.expected_key)}, the server offers {exc.key.get_name()} {fingerprint(exc.key)}. "
                f"Someone may be intercepting the connection, or the host was reinstalled. If the new key is "
                f"genuine, remove the old entry (`ssh-keygen -R '{name}' -f {known_hosts}`), then "
                + _keyscan_hint(t, known_hosts)) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            tried = [key_source] + (["keys from the SSH agent"] if t.use_agent and os.environ.get("SSH_AUTH_SOCK")
                                    else [])
            pub = f"{os.path.expanduser(t.identity)}.pub" if t.identity and not t.identity_env else "the public key"
            raise TunnelError(
                f"{t.host}:{t.port} refused authentication as user {t.user!r} (tried: {', '.join(tried)}): "
                f"{str(exc).rstrip('.')}. "
                f"Add {pub} to ~{t.user}/.ssh/authorized_keys on {t.host} (e.g. `ssh-copy-id -i {pub} -p {t.port} "
                f"{t.user}@{t.host}`), or point identity / identity_env at a key it accepts") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            if "No authentication methods available" in str(exc):
                raise TunnelError(f"no key to offer {t.host}:{t.port} as user {t.user!r}: set identity (a key file), "
                                  f"identity_env, or use_agent=True with a running SSH agent") from exc
            backoff = 0.25 * 2 ** attempt
            if attempt >= t.connect_retries or time.monotonic() - start + backoff >= t.timeout:
                raise _connect_error(t, exc) from exc
            log.info("connecting to %s:%s failed (%s); retrying in %.2f s", t.host, t.port, exc, backoff)
            attempt += 1
            time.sleep(backoff)
            continue
        transport = client.get_transport()
        if transport is not None:
            # Without TCP_NODELAY every small request (a command, an SFTP call) waits about 40 ms for Nagle's
            # algorithm against the server's delayed ACK: measured, 44 ms vs 2-10 ms per `run("true")`.
            import socket

            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.keepalive_interval and transport is not None:
            # Keepalives stop NAT boxes and firewalls from silently dropping an idle pooled connection.
            transport.set_keepalive(int(t.keepalive_interval))
        return client
