"""``NemorunSSHHook``: an Airflow ``ssh`` connection as a nemorun :class:`~nemorun_core.SSHTunnel`.

Users keep their cluster logins where Airflow keeps connections (the metadata database, a secrets backend,
``AIRFLOW_CONN_<ID>`` variables) in the SSH provider's format, and hand the connection id to the operator::

    AIRFLOW_CONN_SLURM_LOGIN='{"conn_type": "ssh", "host": "login.cluster.org", "login": "me", "port": 22,
                               "extra": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----...",
                                         "host_key": "ssh-ed25519 AAAA...", "job_dir": "/scratch/me/runs"}}'

The tunnel it returns never holds a secret: key text and passphrase are put in this process's environment under
names derived from the connection id (:func:`nemorun_core.secrets.hold_in_env`), and the tunnel keeps only those
names, so its serialized config can go into XCom, trigger kwargs and the nemorun store. Every process that follows
the job (the worker, the triggerer) builds the tunnel from the connection again.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from nemorun_core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from nemorun_core.tunnel.ssh import SSHTunnel

# The SSH provider's extras that mean the same here, plus nemorun's own (job_dir, known_hosts).
SUPPORTED_EXTRAS = ("key_file", "private_key", "private_key_passphrase", "host_key", "no_host_key_check",
                    "known_hosts", "conn_timeout", "timeout", "compress", "keepalive_interval", "job_dir")
# SSH provider extras that tune what nemorun's tunnel already decides (timeouts of single steps, key lookup):
# accepted so that an existing connection works unchanged, and otherwise not used.
IGNORED_EXTRAS = ("cmd_timeout", "banner_timeout", "auth_timeout", "look_for_keys", "disabled_algorithms",
                  "ciphers", "allow_host_key_change")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


class ConnectionConfigError(ConfigError):
    """An Airflow connection cannot become an SSH tunnel; the message names the connection id and the field."""


class NemorunSSHHook(BaseHook):
    """Builds an :class:`~nemorun_core.SSHTunnel` from an Airflow ``ssh`` connection.

    Connection fields: ``host``, ``port`` (default 22), ``login``. The password field is not used: the tunnel
    authenticates with keys only. Extras (the SSH provider's names):

    * ``key_file``: path of a private key file on the machine that runs the task (and the triggerer).
    * ``private_key``: the private key TEXT; ``private_key_passphrase``: its passphrase.
    * ``host_key``: the server's public host key (``"ssh-ed25519 AAAA..."``, or the base64 part alone); checked
      strictly.
    * ``no_host_key_check``: ``true`` learns the host key on first use (nemorun's ``accept-new``: a key that changes
      later is still refused; host keys are never left unchecked).
    * ``known_hosts``: an OpenSSH known_hosts file to check against (default ``~/.ssh/known_hosts``).
    * ``conn_timeout`` (or ``timeout``): seconds to connect and authenticate; ``compress``; ``keepalive_interval``.
    * ``job_dir``: base directory on the cluster for job files, unless the caller gives one.

    With neither ``key_file`` nor ``private_key``, the SSH agent and ``~/.ssh/id_*`` are tried, as ``ssh`` would.

    Args:
        ssh_conn_id: the connection id.
    """

    conn_name_attr = "ssh_conn_id"
    default_conn_name = "ssh_default"
    conn_type = "ssh"
    hook_name = "SSH (nemorun)"

    def __init__(self, ssh_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssh_conn_id = ssh_conn_id

    def get_tunnel(self, job_dir: str | None = None) -> "SSHTunnel":
        """The tunnel for this connection (reads the connection; writes a known_hosts file for ``host_key``).

        Args:
            job_dir: base directory on the cluster for job files; default: the connection's ``job_dir`` extra.

        Raises:
            ConnectionConfigError: a missing or invalid field, naming the connection id and the field to fix.
            AirflowNotFoundException: no connection with this id.
        """
        return tunnel_from_connection(self.get_connection(self.ssh_conn_id), job_dir)

    async def aget_tunnel(self, job_dir: str | None = None) -> "SSHTunnel":
        """:meth:`get_tunnel` for async code (the triggerer): the connection is read without blocking the loop."""
        import asyncio

        conn = await self.aget_connection(self.ssh_conn_id)
        return await asyncio.to_thread(tunnel_from_connection, conn, job_dir)

    def get_conn(self) -> "SSHTunnel":
        """The tunnel (Airflow's generic hook entry point); see :meth:`get_tunnel`."""
        return self.get_tunnel()

    def test_connection(self) -> tuple[bool, str]:
        """Connect and run ``true`` there: what the UI's Test button calls."""
        try:
            tunnel = self.get_tunnel(job_dir="~")
            tunnel.run("true", timeout=tunnel.timeout)
        except Exception as exc:  # the UI shows the message; every failure is an answer, not a crash
            return False, str(exc)
        return True, f"connected to {tunnel.address}"


def tunnel_from_connection(conn: Any, job_dir: str | None = None) -> "SSHTunnel":
    """Build the tunnel from an Airflow ``Connection`` object (see :class:`NemorunSSHHook` for the fields).

    Raises:
        ConnectionConfigError: naming the connection id and the field or extra to fix.
    """
    from nemorun_core.secrets import hold_in_env
    from nemorun_core.tunnel.ssh import SSHTunnel

    cid = conn.conn_id
    extra = _extras(conn)
    if not conn.host:
        raise ConnectionConfigError(f"connection {cid!r} has no host: set its Host field to the login node's name")
    if not conn.login:
        raise ConnectionConfigError(f"connection {cid!r} has no login: set its Login field to the user name on "
                                    f"{conn.host}")
    has_key = bool(extra.get("private_key") or extra.get("key_file"))
    if conn.password and not has_key:
        raise ConnectionConfigError(
            f"connection {cid!r} authenticates with a password, which nemorun's SSH tunnel does not support (keys "
            "only): put the private key text in the extra 'private_key' (or a key path in 'key_file') and clear "
            "the password")
    job_dir = job_dir or extra.get("job_dir")
    if not job_dir:
        raise ConnectionConfigError(
            f"connection {cid!r} has no extra 'job_dir': set it to the base directory for job files on "
            f"{conn.host} (for example \"/scratch/{conn.login}/nemorun\"), or give the executor an SSHTunnel with "
            "its job_dir")
    if _flag(cid, extra, "allow_host_key_change", False):
        raise ConnectionConfigError(
            f"connection {cid!r}: the extra 'allow_host_key_change' is not supported (nemorun refuses a changed "
            "host key): remove it, and put the host's new key in the extra 'host_key'")

    owner = f"airflow-conn-{cid}"
    kwargs: dict[str, Any] = {"port": int(conn.port or 22)}
    if extra.get("private_key"):
        kwargs["identity_env"] = hold_in_env(owner, "private_key", _key_text(str(extra["private_key"])))
    elif extra.get("key_file"):
        kwargs["identity"] = str(extra["key_file"])
    if extra.get("private_key_passphrase"):
        kwargs["passphrase_env"] = hold_in_env(owner, "private_key_passphrase", str(extra["private_key_passphrase"]))
    timeout = extra.get("conn_timeout", extra.get("timeout"))
    if timeout not in (None, ""):
        kwargs["timeout"] = _number(cid, "conn_timeout" if "conn_timeout" in extra else "timeout", timeout)
    if "keepalive_interval" in extra:
        kwargs["keepalive_interval"] = _number(cid, "keepalive_interval", extra["keepalive_interval"], zero_ok=True)
    if "compress" in extra:
        kwargs["compression"] = _flag(cid, extra, "compress", False)
    if extra.get("host_key"):
        kwargs["known_hosts"] = _write_known_hosts(cid, conn.host, kwargs["port"], str(extra["host_key"]))
    elif _flag(cid, extra, "no_host_key_check", False):
        kwargs["known_hosts"] = _known_hosts_path(cid)
        kwargs["host_key_policy"] = "accept-new"
    elif extra.get("known_hosts"):
        kwargs["known_hosts"] = str(extra["known_hosts"])
    return SSHTunnel(host=conn.host, user=conn.login, job_dir=str(job_dir), **kwargs)


def _extras(conn: Any) -> dict[str, Any]:
    try:
        extra = dict(conn.extra_dejson or {})
    except Exception as exc:  # extra_dejson logs and returns {} on bad JSON in some versions; be explicit
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: its extra is not a JSON object ({exc})") from None
    unknown = sorted(set(extra) - set(SUPPORTED_EXTRAS) - set(IGNORED_EXTRAS))
    if unknown:
        name = unknown[0]
        hint = did_you_mean(name, SUPPORTED_EXTRAS) or f"; supported extras: {', '.join(SUPPORTED_EXTRAS)}"
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: unknown extra {name!r}{hint}")
    return extra


def _flag(cid: str, extra: dict[str, Any], name: str, default: bool) -> bool:
    value = extra.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConnectionConfigError(f"connection {cid!r}: extra {name!r} must be true or false, not {value!r}")


def _number(cid: str, name: str, value: Any, *, zero_ok: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or (number == 0 and not zero_ok):
        raise ConnectionConfigError(f"connection {cid!r}: extra {name!r} must be a positive number of seconds, "
                                    f"not {value!r}")
    return number


def _key_text(text: str) -> str:
    # Keys pasted into a JSON extra often arrive with literal "\n" sequences instead of line breaks.
    text = text.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return text + "\n"


def _known_hosts_path(cid: str) -> str:
    from nemorun_core.home import default_home

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", cid).strip("-.") or "connection"
    return os.path.join(default_home(), "airflow", "known_hosts", slug)


def _write_known_hosts(cid: str, host: str, port: int, host_key: str) -> str:
    """Write ``host_key`` as a one-line known_hosts file for this connection (public data) and return its path."""
    from nemorun_core.executors.files import write_atomic
    from nemorun_core.tunnel.ssh import known_hosts_name

    parts = host_key.split()
    blob_text = parts[-1] if parts else ""
    try:
        blob = base64.b64decode(blob_text, validate=True)
        # The key blob starts with its own type name (RFC 4253 6.6): a length, then e.g. "ssh-ed25519".
        size = int.from_bytes(blob[:4], "big")
        key_type = blob[4:4 + size].decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key_type = ""
    if not key_type or (len(parts) > 1 and parts[-2] != key_type) or len(parts) > 2:
        raise ConnectionConfigError(
            f"connection {cid!r}: extra 'host_key' is not a public host key: give it as \"ssh-ed25519 AAAA...\" (a "
            f"line of `ssh-keyscan -p {port} {host}` without the host name), or the base64 part alone")
    path = _known_hosts_path(cid)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, f"{known_hosts_name(host, port)} {key_type} {blob_text}\n")
    return path


def connect_executor(executor: Any, ssh_conn_id: str | None, tunnel: "SSHTunnel | None" = None) -> Any:
    """A copy of ``executor`` whose tunnel comes from connection ``ssh_conn_id`` (``executor`` itself without one).

    The job directory is the executor's own when it already has an ``SSHTunnel``, else the connection's ``job_dir``
    extra. Pass ``tunnel`` when it was already built (by :meth:`NemorunSSHHook.aget_tunnel`).

    Raises:
        ConnectionConfigError: the executor has no tunnel (it does not run jobs over SSH), or the connection is
            unusable.
    """
    if not ssh_conn_id:
        return executor
    if not hasattr(executor, "tunnel"):
        raise ConnectionConfigError(
            f"ssh_conn_id={ssh_conn_id!r} was given, but {type(executor).__name__} does not reach its jobs through a "
            "tunnel: drop ssh_conn_id, or use an executor with a tunnel (run.SlurmExecutor)")
    executor = executor.clone()
    if tunnel is None:
        tunnel = NemorunSSHHook(ssh_conn_id).get_tunnel(job_dir=own_job_dir(executor))
    executor.tunnel = tunnel
    return executor


def own_job_dir(executor: Any) -> str | None:
    """The job directory of the executor's own SSH tunnel, if it has one (it wins over the connection's extra)."""
    from nemorun_core.tunnel.ssh import SSHTunnel

    current = getattr(executor, "tunnel", None)
    return current.job_dir if isinstance(current, SSHTunnel) else None
