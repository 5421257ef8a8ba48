"""Credentials by kind: what an executor needs to reach its backend, declared as slots, and the values that fill them.

An executor names the credentials it takes in ``credential_slots``: each :class:`CredentialSlot` has a name (what an
orchestrator maps a stored credential to: ``connections={"ssh": "my_cluster"}`` in Airflow, a credentials block in
Prefect), a :class:`CredentialKind`, and the executor field it fills. Orchestrators turn a stored credential into one
of the values below (one frozen dataclass per kind) and hand it to
:meth:`nemorun_core.executors.base.Executor.with_credentials`; they never need to know which executor they drive.

Every value validates itself when it is made (a ``ConfigError`` naming the field and the fix), never shows a secret
in its ``repr``, and gives with :meth:`~Credential.field_value` what the executor field holds: an ``SSHTunnel`` whose
key is in this process's environment (only the variable's NAME in the tunnel), or a
:class:`~nemorun_core.secrets.Secret` (redacted wherever nemorun writes an executor down). So an executor filled from
an orchestrator's secret store can be serialized into the nemorun store, XCom or a Prefect result without the secret.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
from typing import Any, ClassVar, Mapping

from nemorun_core.errors import ConfigError
from nemorun_core.secrets import REDACTED, Secret, hold_in_env


class CredentialKind(str, enum.Enum):
    """The kinds of credential a backend may need."""

    SSH = "ssh"                    #: an SSH login: host, port, user, private key (+ passphrase), known hosts
    BEARER_TOKEN = "bearer_token"  #: an HTTP bearer token (DGX Cloud, Lepton, a Ray dashboard behind a proxy)
    API_KEY = "api_key"            #: an API key sent in a header
    KUBECONFIG = "kubeconfig"      #: a kubeconfig document (Kubernetes, KubeRay)

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class CredentialSlot:
    """One credential an executor takes.

    Attributes:
        name: the slot's name, unique per executor (``"ssh"``): what an orchestrator's mapping is keyed by.
        kind: the kind of credential that fills it.
        field: the executor field the credential fills (``"tunnel"`` for SSH).
        description: one line for forms and error messages.
        required: whether the executor cannot reach its backend without it (an executor may have a default, as a
            Slurm executor without a tunnel runs on this machine).
    """

    name: str
    kind: CredentialKind
    field: str
    description: str = ""
    required: bool = False


# -- the values -----------------------------------------------------------------------------------------------------
class Credential:
    """Base of the credential values: a ``kind``, :meth:`field_value`, and a ``repr`` that hides the secret fields.

    Subclasses are frozen dataclasses; ``_secret_fields`` names the fields whose values are secret.
    """

    kind: ClassVar[CredentialKind]
    _secret_fields: ClassVar[tuple[str, ...]] = ()

    def field_value(self) -> Any:
        """What the executor field of a slot of this kind holds. May put a secret in this process's environment
        (:func:`~nemorun_core.secrets.hold_in_env`) but never in a file or on a command line."""
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            shown.append(f"{f.name}={REDACTED!r}" if f.name in self._secret_fields and value else
                         f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__


def _where(value: Credential, field: str) -> str:
    return f"{type(value).__name__}.{field}"


def _text(value: Credential, field: str, *, one_line: bool = True, optional: bool = False) -> str | None:
    """The field's string, stripped; refuses a non-string, an empty one (unless optional) and, for one-line
    values, inner whitespace. Messages never repeat the value (it may be secret)."""
    raw = getattr(value, field)
    if raw is None and optional:
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"must be a string, got {type(raw).__name__}", path=_where(value, field))
    text = raw.strip()
    if not text:
        if optional:
            return None
        raise ConfigError("is empty: give the value", path=_where(value, field))
    if one_line and re.search(r"\s", text):
        raise ConfigError("must be one word, without spaces or line breaks (was it pasted with a label or a "
                          "second line?)", path=_where(value, field))
    return text


def _set(value: Credential, field: str, new: Any) -> None:
    object.__setattr__(value, field, new)  # normalizing a frozen dataclass in __post_init__


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# A known_hosts line: host pattern(s), key type, base64 key (a leading @marker is allowed).
_KNOWN_HOSTS_LINE = re.compile(r"^(@\S+\s+)?\S+\s+(ssh-|ecdsa-|sk-)\S+\s+[A-Za-z0-9+/=]+", re.MULTILINE)
_HOST_KEY_POLICIES = ("strict", "accept-new")


@dataclasses.dataclass(frozen=True, repr=False)
class SSHCredential(Credential):
    """An SSH login; its value is an ``SSHTunnel`` that keeps only the NAMES of the variables holding its secrets.

    Args:
        host: host name or address of the login node.
        user: user name there.
        job_dir: base directory there for job directories and uploaded code.
        port: SSH port.
        private_key: the private key TEXT (``-----BEGIN ... PRIVATE KEY-----...``; literal ``\\n`` sequences, as
            keys pasted into JSON often arrive, become line breaks). Secret.
        passphrase: the passphrase of an encrypted key. Secret.
        key_file: path of a private key file on the machine that connects (used when ``private_key`` is not given).
        known_hosts: path of an OpenSSH known_hosts file, or known_hosts TEXT (``host key-type base64`` lines, as
            ``ssh-keyscan`` prints them), written once to a file named by its hash under ``$NEMORUN_HOME``.
        host_key_policy: ``"strict"`` (an unknown host is an error) or ``"accept-new"`` (learn an unknown host's
            key; a changed key is still an error).
        source: where the login comes from (``"airflow-conn-slurm"``, ``"prefect-nemorun-ssh-cluster-a100"``):
            the environment variables holding the secrets are named after it, so another process loading the same
            login gets the same names. Default: ``user@host:port``.
        timeout, keepalive_interval, compression: the tunnel's settings of those names; None keeps its default.

    With neither ``private_key`` nor ``key_file``, the SSH agent and ``~/.ssh/id_*`` are tried, as ``ssh`` would.
    """

    host: str
    user: str
    job_dir: str
    port: int = 22
    private_key: str | None = None
    passphrase: str | None = None
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    source: str = ""
    timeout: float | None = None
    keepalive_interval: float | None = None
    compression: bool | None = None

    kind: ClassVar[CredentialKind] = CredentialKind.SSH
    _secret_fields: ClassVar[tuple[str, ...]] = ("private_key", "passphrase")

    def __post_init__(self) -> None:
        for name in ("host", "user"):
            _set(self, name, _text(self, name))
        if not isinstance(self.job_dir, str) or not self.job_dir.strip():
            raise ConfigError("give the directory on the cluster for job files (for example "
                              f"\"/scratch/{self.user}/nemorun\")", path=_where(self, "job_dir"))
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigError(f"must be a port number (1-65535), got {self.port!r}", path=_where(self, "port"))
        if self.host_key_policy not in _HOST_KEY_POLICIES:
            raise ConfigError(f"must be one of {', '.join(map(repr, _HOST_KEY_POLICIES))}, not "
                              f"{self.host_key_policy!r}", path=_where(self, "host_key_policy"))
        key = _text(self, "private_key", one_line=False, optional=True)
        if key is not None:
            if "\n" not in key and "\\n" in key:
                key = key.replace("\\n", "\n").strip()
            if not _PRIVATE_KEY.search(key):
                raise ConfigError("not a private key: paste the content of the key file (it starts with "
                                  "'-----BEGIN ... PRIVATE KEY-----'), not its path (a path goes in key_file)",
                                  path=_where(self, "private_key"))
            key += "\n"
        _set(self, "private_key", key)
        if self.passphrase is not None and not isinstance(self.passphrase, str):
            raise ConfigError(f"must be a string, got {type(self.passphrase).__name__}",
                              path=_where(self, "passphrase"))
        _set(self, "passphrase", self.passphrase or None)
        _set(self, "key_file", _text(self, "key_file", one_line=False, optional=True))
        if not isinstance(self.known_hosts, str) or not self.known_hosts.strip():
            raise ConfigError("give a known_hosts file path or its text", path=_where(self, "known_hosts"))
        for name in ("timeout", "keepalive_interval"):
            number = getattr(self, name)
            if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                       or number < 0 or (number == 0 and name == "timeout")):
                raise ConfigError(f"must be a positive number of seconds, got {number!r}", path=_where(self, name))

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def field_value(self) -> Any:
        """A ready ``run.SSHTunnel``. Puts the key and passphrase in this process's environment (one
        ``NEMORUN_SECRET_*`` variable each, named after ``source``) and writes known_hosts text to a file."""
        from nemorun_core.tunnel.ssh import SSHTunnel

        owner = self.source or self.address
        kwargs: dict[str, Any] = {"port": self.port, "known_hosts": self._known_hosts_file(),
                                  "host_key_policy": self.host_key_policy}
        if self.private_key:
            kwargs["identity_env"] = hold_in_env(owner, "private_key", self.private_key)
        elif self.key_file:
            kwargs["identity"] = self.key_file
        if self.passphrase:
            kwargs["passphrase_env"] = hold_in_env(owner, "passphrase", self.passphrase)
        for name in ("timeout", "keepalive_interval", "compression"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return SSHTunnel(host=self.host, user=self.user, job_dir=self.job_dir.strip(), **kwargs)

    def _known_hosts_file(self) -> str:
        """``known_hosts`` as a path: text is written once to a file named by its hash (host keys are public)."""
        text = self.known_hosts
        if not _KNOWN_HOSTS_LINE.search(text):
            return text
        from nemorun_core.home import default_home

        body = text if text.endswith("\n") else text + "\n"
        folder = os.path.join(default_home(), "known_hosts")
        path = os.path.join(folder, hashlib.sha256(body.encode()).hexdigest()[:16])
        if not os.path.exists(path):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            temp = f"{path}.{os.getpid()}.tmp"
            with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(body)
            os.replace(temp, path)  # readers see no file or the whole one
        return path


@dataclasses.dataclass(frozen=True, repr=False)
class BearerToken(Credential):
    """An HTTP bearer token; its value is a ``run.Secret`` of the token (sent as ``Authorization: Bearer <token>``).

    Args:
        token: the token alone, without the ``Bearer`` prefix. Secret.
    """

    token: str

    kind: ClassVar[CredentialKind] = CredentialKind.BEARER_TOKEN
    _secret_fields: ClassVar[tuple[str, ...]] = ("token",)

    def __post_init__(self) -> None:
        raw = self.token.strip() if isinstance(self.token, str) else self.token
        if isinstance(raw, str) and raw.lower().startswith("bearer "):
            raise ConfigError("give the token alone, without the 'Bearer ' prefix (nemorun adds it)",
                              path=_where(self, "token"))
        _set(self, "token", _text(self, "token"))

    def field_value(self) -> Secret:
        return Secret(self.token)


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclasses.dataclass(frozen=True, repr=False)
class APIKey(Credential):
    """An API key; its value is a ``run.Secret`` of the key.

    Args:
        key: the key. Secret.
        header: the HTTP header the key is sent in (``"X-API-Key"``), for clients that let one choose; None: the
            backend's own header. The executor field receives the key only.
    """

    key: str
    header: str | None = None

    kind: ClassVar[CredentialKind] = CredentialKind.API_KEY
    _secret_fields: ClassVar[tuple[str, ...]] = ("key",)

    def __post_init__(self) -> None:
        _set(self, "key", _text(self, "key"))
        header = _text(self, "header", optional=True)
        if header is not None and (not _HEADER_NAME.fullmatch(header) or header.endswith(":")):
            raise ConfigError(f"{header!r} is not an HTTP header name: give the name alone (\"X-API-Key\"), without "
                              "a colon or the key", path=_where(self, "header"))
        _set(self, "header", header)

    def field_value(self) -> Secret:
        return Secret(self.key)


@dataclasses.dataclass(frozen=True, repr=False)
class Kubeconfig(Credential):
    """A kubeconfig document; its value is a ``run.Secret`` of the document, with ``context`` as its current one.

    Args:
        text: the kubeconfig YAML (or JSON) text, as ``kubectl config view --raw --minify`` prints it. Secret.
        context: the context to use; None: the document's ``current-context``.
    """

    text: str
    context: str | None = None

    kind: ClassVar[CredentialKind] = CredentialKind.KUBECONFIG
    _secret_fields: ClassVar[tuple[str, ...]] = ("text",)

    def __post_init__(self) -> None:
        text = _text(self, "text", one_line=False)
        context = _text(self, "context", optional=True)
        data = self._document(text)
        names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
        if context is not None and context not in names:
            raise ConfigError(f"the kubeconfig has no context {context!r} (its contexts: "
                              f"{', '.join(map(str, names)) or 'none'})", path=_where(self, "context"))
        if context is None and not data.get("current-context"):
            raise ConfigError(f"the kubeconfig sets no current-context: give context= (one of "
                              f"{', '.join(map(str, names)) or 'none'})", path=_where(self, "context"))
        _set(self, "text", text + "\n")
        _set(self, "context", context)

    def _document(self, text: str) -> dict[str, Any]:
        import yaml

        where = _where(self, "text")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # Only the position: YAML's own message quotes the document, which holds secrets.
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(f"not a kubeconfig: invalid YAML{at}", path=where) from None
        if not isinstance(data, dict) or not isinstance(data.get("clusters"), list) or not data.get("contexts"):
            raise ConfigError("not a kubeconfig: it needs 'clusters' and 'contexts' (paste the output of "
                              "`kubectl config view --raw --minify`)", path=where)
        return data

    def field_value(self) -> Secret:
        if self.context is None:
            return Secret(self.text)
        import yaml

        data = yaml.safe_load(self.text)
        if data.get("current-context") == self.context:
            return Secret(self.text)
        data["current-context"] = self.context
        return Secret(yaml.safe_dump(data, sort_keys=False))


#: The value class of each kind, for orchestrators that build credentials from their own stores.
CREDENTIAL_TYPES: Mapping[CredentialKind, type[Credential]] = {
    CredentialKind.SSH: SSHCredential,
    CredentialKind.BEARER_TOKEN: BearerToken,
    CredentialKind.API_KEY: APIKey,
    CredentialKind.KUBECONFIG: Kubeconfig,
}


def slot_of(executor: Any, name: str, *, path: str | None = None) -> CredentialSlot:
    """The credential slot ``name`` of ``executor`` (an executor or its class).

    Raises:
        ConfigError: the executor declares no such slot; names the slots it has (at ``path``, default
            ``credentials.<name>``).
    """
    cls = executor if isinstance(executor, type) else type(executor)
    for slot in cls.credential_slots:
        if slot.name == name:
            return slot
    have = ", ".join(repr(s.name) for s in cls.credential_slots) or "none"
    raise ConfigError(f"{cls.__name__} has no credential slot {name!r} (its slots: {have})",
                      path=path or f"credentials.{name}")


def apply_credentials(executor: Any, credentials: Mapping[str, Any]) -> Any:
    """``executor.with_credentials(credentials)``: a clone with each credential's value in its slot's field.

    A credential is any object with a ``kind`` (:class:`CredentialKind`) and a ``field_value()`` giving what the
    executor field holds (the :class:`Credential` values above). The clone is checked (``check()``) once filled.

    Raises:
        ConfigError: a slot the executor does not declare, or a credential of another kind than the slot's.
    """
    name = type(executor).__name__
    clone = executor.clone()
    for slot_name, credential in credentials.items():
        slot = slot_of(executor, slot_name)
        kind = getattr(credential, "kind", None)
        if kind != slot.kind:
            got = kind.value if isinstance(kind, CredentialKind) else type(credential).__name__
            raise ConfigError(f"slot {slot_name!r} of {name} takes a {slot.kind.value} credential "
                              f"({CREDENTIAL_TYPES[slot.kind].__name__}), got {got}",
                              path=f"credentials.{slot_name}")
        setattr(clone, slot.field, credential.field_value())
    clone.check()
    return clone


__all__ = ["APIKey", "BearerToken", "CREDENTIAL_TYPES", "Credential", "CredentialKind", "CredentialSlot",
           "Kubeconfig", "SSHCredential", "apply_credentials", "slot_of"]
