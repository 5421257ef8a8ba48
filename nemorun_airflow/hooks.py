"""Airflow connections as nemorun credentials, by kind: one ``connections={slot: conn_id}`` mapping for any executor.

An executor declares the credentials it takes as slots (``run.SlurmExecutor``: slot ``"ssh"``, an SSH login filling
its ``tunnel``; see :mod:`nemorun_core.credentials`). Operators, the sensor and the trigger take
``connections={slot: conn_id}`` and :func:`resolve_credentials` fills each slot from its connection, chosen by the
connection's TYPE, whatever the executor:

* ``ssh`` -> an SSH login (:class:`NemorunSSHHook`; the SSH provider's format, so existing connections work);
* ``nemorun_token`` -> a bearer token or an API key (:class:`NemorunTokenHook`; the token in the Password field);
* ``nemorun_kubeconfig`` -> a kubeconfig (:class:`NemorunKubeconfigHook`; the document in the Password field).

``ssh_conn_id="x"`` is ``connections={"ssh": "x"}``. Users keep the connections where Airflow keeps them (the
metadata database, a secrets backend, ``AIRFLOW_CONN_<ID>`` variables)::

    AIRFLOW_CONN_SLURM_LOGIN='{"conn_type": "ssh", "host": "login.cluster.org", "login": "me", "port": 22,
                               "extra": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----...",
                                         "host_key": "ssh-ed25519 AAAA...", "job_dir": "/scratch/me/runs"}}'

Nothing resolved holds a secret in a form nemorun writes down: an SSH key and passphrase are put in this process's
environment under names derived from the connection id (:func:`nemorun_core.secrets.hold_in_env`) and the tunnel
keeps only those names; a token, a key or a kubeconfig becomes a ``run.Secret`` in the executor, redacted wherever
it is serialized. So the executor's config can go into XCom, trigger kwargs and the nemorun store; every process
that follows the job (the worker, the triggerer) resolves the connections again.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

from airflow.sdk import BaseHook

from nemorun_core.credentials import (APIKey, BearerToken, Credential, CredentialKind, CredentialSlot, Kubeconfig,
                                      SSHCredential, slot_of)
from nemorun_core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from nemorun_core.executors.base import Executor
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
    """An Airflow connection cannot become a nemorun credential; the message names the connection id and the field
    (and, for a slot, the slot and the connection type it takes)."""


#: The connection type that fills a slot of each kind.
KIND_CONNECTION_TYPES: Mapping[CredentialKind, str] = {
    CredentialKind.SSH: "ssh",
    CredentialKind.BEARER_TOKEN: "nemorun_token",
    CredentialKind.API_KEY: "nemorun_token",
    CredentialKind.KUBECONFIG: "nemorun_kubeconfig",
}


def _declared(conn_type: str) -> dict[str, Any]:
    from nemorun_airflow import PROVIDER_CONNECTION_TYPES

    return next(c for c in PROVIDER_CONNECTION_TYPES if c["connection-type"] == conn_type)


def _ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """Hidden, relabeled and placeholder fields of the form of ``conn_type``, as declared in the provider info."""
    behaviour = _declared(conn_type)["ui-field-behaviour"]
    return {"hidden_fields": list(behaviour["hidden-fields"]), "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"])}


def _form_widgets(conn_type: str) -> dict[str, Any]:
    """The extra fields of the form of ``conn_type`` as wtforms fields, from the same declaration (a secret one as a
    password field, a flag as a check box, a number as a number)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, field in _declared(conn_type)["conn-fields"].items():
        schema = field["schema"]
        label, description = lazy_gettext(field["label"]), field["description"]
        if schema.get("format") == "password":
            widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=description)
        elif "boolean" in schema["type"]:
            widgets[name] = BooleanField(label, description=description)
        else:  # numbers too: the extra is read as text and checked where it is used
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=description)
    return widgets


class NemorunSSHHook(BaseHook):
    """Builds an :class:`~nemorun_core.SSHTunnel` from an Airflow ``ssh`` connection.

    Connection fields: ``host``, ``port`` (default 22), ``login``. The password field is not used: the tunnel
    authenticates with keys only (the form hides it, and Schema). Extras (the SSH provider's names; the form shows
    the main ones as fields of their own, see ``SSH_FORM`` in :mod:`nemorun_airflow`):

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

    # The form (Airflow 3.2+ reads it from the provider info instead): Password and Schema hidden, the extras above
    # as fields. Declared only without the SSH provider, whose own form then stays the ``ssh`` form.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from nemorun_airflow import ssh_provider_installed

        return {} if ssh_provider_installed() else _ui_field_behaviour(cls.conn_type)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from nemorun_airflow import ssh_provider_installed

        return {} if ssh_provider_installed() else _form_widgets(cls.conn_type)

    def __init__(self, ssh_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssh_conn_id = ssh_conn_id

    def get_credential(self, job_dir: str | None = None) -> SSHCredential:
        """The login as a credential value (reads the connection). ``job_dir``: as for :meth:`get_tunnel`."""
        return ssh_credential(self.get_connection(self.ssh_conn_id), job_dir)

    def get_tunnel(self, job_dir: str | None = None) -> "SSHTunnel":
        """The tunnel for this connection (reads the connection; writes a known_hosts file for ``host_key``).

        Args:
            job_dir: base directory on the cluster for job files; default: the connection's ``job_dir`` extra.

        Raises:
            ConnectionConfigError: a missing or invalid field, naming the connection id and the field to fix.
            AirflowNotFoundException: no connection with this id.
        """
        return self.get_credential(job_dir).field_value()

    async def aget_tunnel(self, job_dir: str | None = None) -> "SSHTunnel":
        """:meth:`get_tunnel` for async code: the connection is read without blocking the loop."""
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


class _NemorunCredentialHook(BaseHook, ABC):
    """What the ``nemorun_*`` connection types share: the form from the provider declaration, the connection id
    argument, ``get_conn`` and the UI's Test button over :meth:`get_credential`. Subclasses set the connection type
    and say what they read (``get_credential``) and how a good one is described (``_describe``)."""

    conn_name_attr = "nemorun_conn_id"

    # The form in Airflow's UI. Airflow 3.2+ reads it from the provider info (``conn-fields``,
    # ``ui-field-behaviour``) without importing the hook; earlier versions call these two.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return _ui_field_behaviour(cls.conn_type)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return _form_widgets(cls.conn_type)

    def __init__(self, nemorun_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nemorun_conn_id = nemorun_conn_id or self.default_conn_name

    @abstractmethod
    def get_credential(self) -> Credential:
        """The connection as its credential value. Raises ConnectionConfigError naming the field."""

    def get_conn(self) -> Credential:
        return self.get_credential()

    @abstractmethod
    def _describe(self, credential: Any) -> str:
        """What the Test button says of a good connection."""

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection's fields; no backend is called from here (which one is the executor's)."""
        try:
            credential = self._checked()
        except Exception as exc:  # the UI shows the message; every failure is an answer, not a crash
            return False, str(exc)
        return True, self._describe(credential)

    def _checked(self) -> Any:
        return self.get_credential()


class NemorunTokenHook(_NemorunCredentialHook):
    """A ``nemorun_token`` connection: a bearer token or an API key, for executors whose backend takes one.

    Connection fields: the Password field holds the token (without ``Bearer``) or the key; the extra ``header``
    names the HTTP header an API key is sent in, when the backend lets one choose. Nothing else is used.

    Args:
        nemorun_conn_id: the connection id.
    """

    default_conn_name = "nemorun_token_default"
    conn_type = "nemorun_token"
    hook_name = "Token or API key (nemorun)"

    def get_credential(self, kind: CredentialKind = CredentialKind.BEARER_TOKEN) -> BearerToken | APIKey:
        """The connection as a :class:`~nemorun_core.credentials.BearerToken` or an
        :class:`~nemorun_core.credentials.APIKey` (``kind``). Raises ConnectionConfigError naming the field."""
        return token_credential(self.get_connection(self.nemorun_conn_id), kind)

    def _checked(self) -> Any:
        return self.get_credential(CredentialKind.API_KEY)  # the kind that reads every field a token uses

    def _describe(self, credential: Any) -> str:
        return "the token is set and well-formed"


class NemorunKubeconfigHook(_NemorunCredentialHook):
    """A ``nemorun_kubeconfig`` connection: a kubeconfig document, for executors that reach Kubernetes.

    Connection fields: the Password field holds the kubeconfig (JSON, as ``kubectl config view --raw --minify -o
    json`` prints it, pastes on one line; YAML works where line breaks survive: ``AIRFLOW_CONN_*``, the CLI, a
    secrets backend); the extra ``context`` picks its context (default: its ``current-context``).

    Args:
        nemorun_conn_id: the connection id.
    """

    default_conn_name = "nemorun_kubeconfig_default"
    conn_type = "nemorun_kubeconfig"
    hook_name = "Kubeconfig (nemorun)"

    def get_credential(self) -> Kubeconfig:
        """The connection as a :class:`~nemorun_core.credentials.Kubeconfig`. Raises ConnectionConfigError."""
        return kubeconfig_credential(self.get_connection(self.nemorun_conn_id))

    def _describe(self, credential: Any) -> str:
        return f"a kubeconfig with context {credential.context or 'its current-context'}"


# -- connections -> credential values ----------------------------------------------------------------------------------
def ssh_credential(conn: Any, job_dir: str | None = None) -> SSHCredential:
    """The SSH login of an Airflow ``ssh`` ``Connection`` (see :class:`NemorunSSHHook` for the fields).

    Raises:
        ConnectionConfigError: naming the connection id and the field or extra to fix.
    """
    cid = conn.conn_id
    extra = _extras(conn, SUPPORTED_EXTRAS, IGNORED_EXTRAS)
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

    port = int(conn.port or 22)
    kwargs: dict[str, Any] = {}
    if extra.get("private_key"):
        kwargs["private_key"] = str(extra["private_key"])
    elif extra.get("key_file"):
        kwargs["key_file"] = str(extra["key_file"])
    if extra.get("private_key_passphrase"):
        kwargs["passphrase"] = str(extra["private_key_passphrase"])
    timeout = extra.get("conn_timeout", extra.get("timeout"))
    if timeout not in (None, ""):
        kwargs["timeout"] = _number(cid, "conn_timeout" if "conn_timeout" in extra else "timeout", timeout)
    if "keepalive_interval" in extra:
        kwargs["keepalive_interval"] = _number(cid, "keepalive_interval", extra["keepalive_interval"], zero_ok=True)
    if "compress" in extra:
        kwargs["compression"] = _flag(cid, extra, "compress", False)
    if extra.get("host_key"):
        kwargs["known_hosts"] = _write_known_hosts(cid, conn.host, port, str(extra["host_key"]))
    elif _flag(cid, extra, "no_host_key_check", False):
        kwargs["known_hosts"] = _known_hosts_path(cid)
        kwargs["host_key_policy"] = "accept-new"
    elif extra.get("known_hosts"):
        kwargs["known_hosts"] = str(extra["known_hosts"])
    return _made(cid, SSHCredential, host=conn.host, user=conn.login, job_dir=str(job_dir), port=port,
                 source=f"airflow-conn-{cid}", **kwargs)


def tunnel_from_connection(conn: Any, job_dir: str | None = None) -> "SSHTunnel":
    """The tunnel of an Airflow ``ssh`` ``Connection``: :func:`ssh_credential`'s value."""
    return ssh_credential(conn, job_dir).field_value()


_TOKEN_EXTRAS = ("header", "extra__nemorun_token__header")
_KUBECONFIG_EXTRAS = ("context", "extra__nemorun_kubeconfig__context")


def token_credential(conn: Any, kind: CredentialKind = CredentialKind.BEARER_TOKEN) -> BearerToken | APIKey:
    """The bearer token or API key of a ``nemorun_token`` ``Connection`` (see :class:`NemorunTokenHook`).

    Raises:
        ConnectionConfigError: naming the connection id and the field to fix.
    """
    cid = conn.conn_id
    extra = _extras(conn, _TOKEN_EXTRAS)
    if not conn.password:
        raise ConnectionConfigError(f"connection {cid!r} has no token: put the token (or API key) in its Password "
                                    "field")
    if kind is CredentialKind.API_KEY:
        header = extra.get("header") or extra.get("extra__nemorun_token__header") or None
        return _made(cid, APIKey, key=conn.password, header=header)
    return _made(cid, BearerToken, token=conn.password)


def kubeconfig_credential(conn: Any) -> Kubeconfig:
    """The kubeconfig of a ``nemorun_kubeconfig`` ``Connection`` (see :class:`NemorunKubeconfigHook`).

    Raises:
        ConnectionConfigError: naming the connection id and the field to fix (never quoting the document).
    """
    cid = conn.conn_id
    extra = _extras(conn, _KUBECONFIG_EXTRAS)
    if not conn.password:
        raise ConnectionConfigError(f"connection {cid!r} has no kubeconfig: put the document in its Password field "
                                    "(`kubectl config view --raw --minify -o json`)")
    context = extra.get("context") or extra.get("extra__nemorun_kubeconfig__context") or None
    return _made(cid, Kubeconfig, text=conn.password, context=context)


_FIELDS = {"private_key": "extra 'private_key'", "passphrase": "extra 'private_key_passphrase'",
           "token": "Password field", "key": "Password field", "text": "Password field", "header": "extra 'header'",
           "context": "extra 'context'", "host": "Host field", "user": "Login field", "port": "Port field"}


def _made(cid: str, cls: type[Credential], **fields: Any) -> Any:
    """``cls(**fields)``, its errors told as the connection's (which field of connection ``cid`` to fix)."""
    try:
        return cls(**fields)
    except ConfigError as exc:
        path = exc.path or ""
        field = path.rpartition(".")[2]
        message = str(exc)[len(path) + 2:] if path and str(exc).startswith(path + ": ") else str(exc)
        where = _FIELDS.get(field, f"extra {field!r}")
        raise ConnectionConfigError(f"connection {cid!r}, {where}: {message}") from None


def credential_from_connection(conn: Any, slot: CredentialSlot, job_dir: str | None = None) -> Credential:
    """The credential of ``conn`` for ``slot``, chosen by the connection's type.

    Args:
        conn: an Airflow ``Connection``.
        slot: the executor's slot it fills.
        job_dir: for an SSH slot, the job directory that wins over the connection's ``job_dir`` extra.

    Raises:
        ConnectionConfigError: the connection is of another type than the slot's kind takes (naming the slot, the
            connection id and the type expected), or its fields are unusable.
    """
    expected = KIND_CONNECTION_TYPES[slot.kind]
    if conn.conn_type != expected:
        raise ConnectionConfigError(
            f"slot {slot.name!r} takes a {slot.kind.value} credential, but connection {conn.conn_id!r} is of type "
            f"{conn.conn_type!r}: give a connection of type {expected!r}")
    if slot.kind is CredentialKind.SSH:
        return ssh_credential(conn, job_dir)
    if slot.kind is CredentialKind.KUBECONFIG:
        return kubeconfig_credential(conn)
    return token_credential(conn, slot.kind)


# -- executors ---------------------------------------------------------------------------------------------------------
def connection_mapping(executor: "Executor", connections: Mapping[str, str] | None = None,
                       ssh_conn_id: str | None = None, *, path: str = "") -> dict[str, str]:
    """The checked ``{slot: conn_id}`` mapping of an operator, a sensor or a trigger. Pure: reads no connection.

    Args:
        executor: the executor whose slots the connections fill.
        connections: slot name -> Airflow connection id.
        ssh_conn_id: the ``"ssh"`` slot under its earlier name: ``ssh_conn_id="x"`` is ``connections={"ssh": "x"}``.
        path: what errors are prefixed with (the task id).

    Raises:
        ConfigError: not a mapping of names to connection ids, a slot the executor does not declare, or the
            ``"ssh"`` slot given both ways.
    """
    where = f"{path}.connections" if path else "connections"
    if connections is None:
        connections = {}
    if not isinstance(connections, Mapping):
        raise ConfigError(f"must be a dict of slot name -> connection id ({{'ssh': 'slurm_login'}}), not "
                          f"{type(connections).__name__}", path=where)
    mapping = dict(connections)
    name = type(executor).__name__
    if ssh_conn_id:
        if not any(slot.name == "ssh" for slot in type(executor).credential_slots):
            have = ", ".join(repr(s.name) for s in type(executor).credential_slots) or "none"
            raise ConfigError(f"ssh_conn_id={ssh_conn_id!r} was given, but {name} does not reach its jobs through a "
                              f"tunnel (it has no credential slot 'ssh'; its slots: {have}): drop ssh_conn_id, or "
                              "use run.SlurmExecutor", path=f"{path}.ssh_conn_id" if path else "ssh_conn_id")
        if mapping.get("ssh", ssh_conn_id) != ssh_conn_id:
            raise ConfigError(f"the 'ssh' slot is given twice (ssh_conn_id={ssh_conn_id!r} and connections['ssh']="
                              f"{mapping['ssh']!r}): keep one", path=where)
        mapping["ssh"] = ssh_conn_id
    for slot_name, conn_id in mapping.items():
        slot_of(executor, str(slot_name), path=f"{where}.{slot_name}")
        if not isinstance(conn_id, str) or not conn_id:
            raise ConfigError(f"must be an Airflow connection id, not {conn_id!r}", path=f"{where}.{slot_name}")
    return mapping


def resolve_credentials(executor: "Executor", connections: Mapping[str, str] | None) -> "Executor":
    """A copy of ``executor`` with each slot filled from its Airflow connection (``executor`` itself without any).

    Reads each connection (blocking: call it through ``asyncio.to_thread`` in a trigger), builds the credential its
    TYPE gives (:func:`credential_from_connection`) and hands them to ``executor.with_credentials``. For an SSH slot
    the job directory is the one of the tunnel the executor already has, else the connection's ``job_dir`` extra.

    Raises:
        ConfigError: a slot the executor does not declare.
        ConnectionConfigError: a connection of the wrong type for its slot, or with unusable fields.
        AirflowNotFoundException: no connection with an id.
    """
    from nemorun_core.tunnel.ssh import SSHTunnel

    mapping = connection_mapping(executor, connections)
    credentials: dict[str, Credential] = {}
    for slot_name, conn_id in mapping.items():
        slot = slot_of(executor, slot_name, path=f"connections.{slot_name}")
        job_dir = None
        if slot.kind is CredentialKind.SSH:
            current = getattr(executor, slot.field)  # the field the slot declares
            job_dir = current.job_dir if isinstance(current, SSHTunnel) else None
        credentials[slot_name] = credential_from_connection(BaseHook.get_connection(conn_id), slot, job_dir)
    return executor.with_credentials(credentials) if credentials else executor


def _extras(conn: Any, supported: tuple[str, ...], ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """The connection's extras, checked against ``supported`` and ``ignored`` names. A form field's prefixed name
    (``extra__<type>__<name>``, older forms) counts as its plain name; an empty form field (None, "") as absent."""
    try:
        raw = dict(conn.extra_dejson or {})
    except Exception as exc:  # extra_dejson logs and returns {} on bad JSON in some versions; be explicit
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: its extra is not a JSON object ({exc})") from None
    prefix = f"extra__{getattr(conn, 'conn_type', None)}__"
    extra: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None or value == "":
            continue
        plain = name[len(prefix):] if name.startswith(prefix) and name not in supported else name
        extra.setdefault(plain, value)
    unknown = sorted(set(extra) - set(supported) - set(ignored))
    if unknown:
        name = unknown[0]
        hint = did_you_mean(name, supported) or f"; supported extras: {', '.join(supported)}"
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


__all__ = ["ConnectionConfigError", "KIND_CONNECTION_TYPES", "NemorunKubeconfigHook", "NemorunSSHHook",
           "NemorunTokenHook", "connection_mapping", "credential_from_connection", "kubeconfig_credential",
           "resolve_credentials", "ssh_credential", "token_credential", "tunnel_from_connection"]
