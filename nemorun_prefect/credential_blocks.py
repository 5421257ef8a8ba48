"""The credentials blocks, one per kind of credential (SSH login, bearer token, API key, kubeconfig), and what every
nemorun block shares (its logo and documentation link). :mod:`nemorun_prefect.blocks` re-exports them beside the
executor blocks; see its docstring for how secrets travel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Mapping, Optional

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from nemorun_core.credentials import APIKey, BearerToken, Credential, CredentialKind, Kubeconfig, SSHCredential
from nemorun_core.errors import ConfigError

#: Where the blocks' "documentation" link points: the blocks section of docs/prefect.md in the nemorun repository
#: (GitHub's anchor of the heading "Blocks: credentials and executors saved on the Prefect server").
DOCS_URL = ("https://github.com/nemorun/nemorun/blob/main/docs/prefect.md"
            "#blocks-credentials-and-executors-saved-on-the-prefect-server")
#: The blocks' logo: docs/assets/nemorun-logo.svg of the repository, served raw. Prefect requires an http(s) URL
#: (its client refuses a data: URL), and nemorun has no hosted logo of its own: a UI without internet access shows
#: its placeholder instead.
LOGO_URL = "https://raw.githubusercontent.com/nemorun/nemorun/main/docs/assets/nemorun-logo.svg"

class NemorunBlock(Block, ABC):
    """What every nemorun block shares: the logo and the documentation link Prefect's UI shows. Abstract (ABC in its
    bases): Prefect registers no block type for it."""

    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _as_block_error(exc: ConfigError, block: str, renames: Mapping[str, str] | None = None) -> ConfigError:
    """``exc`` of a credential value (``BearerToken.token: ...``) told in the block's own field names."""
    path = exc.path or ""
    message = str(exc)[len(path) + 2:] if path and str(exc).startswith(path + ": ") else str(exc)
    field = path.split(".", 1)[1] if "." in path else path  # the value's class name goes
    return ConfigError(message, path=f"{block}.{(renames or {}).get(field, field)}")


class _CredentialBlock(NemorunBlock, ABC):
    """A credentials block: :meth:`credential` gives its value (``nemorun_core.credentials``), and an invalid one is a
    ConfigError in the block's own field names (``NemorunBearerToken.token: ...``, not ``BearerToken.token``).
    Subclasses build the value in ``_value`` and may rename the value's fields to theirs in ``_field_names``."""

    credential_kind: ClassVar[CredentialKind]
    _field_names: ClassVar[Mapping[str, str]] = {}

    def credential(self) -> Credential:
        """The credential value of this block.

        Raises:
            ConfigError: a field the value refuses, named as this block's field.
        """
        try:
            return self._value()
        except ConfigError as exc:
            raise _as_block_error(exc, type(self).__name__, self._field_names) from None

    @abstractmethod
    def _value(self) -> Credential:
        """Build this block's credential value (a ConfigError names the value's field)."""


class NemorunSSHCluster(_CredentialBlock):
    """An SSH login to a cluster's login node (for ``run.SlurmExecutor``), its private key kept as a Prefect secret.

    The credentials block of the SSH kind: :meth:`credential` gives the
    :class:`~nemorun_core.credentials.SSHCredential`, :meth:`tunnel` the ``run.SSHTunnel``. There is no password
    field: ``SSHTunnel`` authenticates with keys only (a key from this block, the SSH agent, or the ``~/.ssh/id_*``
    files of the machine running the flow).
    """

    _block_type_name = "Nemorun SSH Cluster"
    _block_type_slug = "nemorun-ssh-cluster"
    _description = ("An SSH login (host, user, job directory, host keys) and its private key, for nemorun "
                    "executors that reach a cluster over SSH (run.SlurmExecutor).")
    credential_kind: ClassVar[CredentialKind] = CredentialKind.SSH

    host: str = Field(description="Host name or address of the login node.")
    user: str = Field(description="User name on the login node.")
    job_dir: str = Field(description="Directory on the cluster for job directories and uploaded code.")
    port: int = Field(default=22, description="SSH port.")
    known_hosts: str = Field(
        default="~/.ssh/known_hosts",
        description="Path of an OpenSSH known_hosts file on the machine running the flow, or the known_hosts TEXT "
                    "itself (lines 'host key-type base64', as `ssh-keyscan -p PORT HOST` prints them).")
    host_key_policy: Literal["strict", "accept-new"] = Field(
        default="strict",
        description="'strict': an unknown host is an error; 'accept-new': trust and record an unknown host's key "
                    "(a changed key is still an error).")
    private_key: Optional[SecretStr] = Field(
        default=None,
        description="The private key TEXT (the content of the key file, '-----BEGIN OPENSSH PRIVATE KEY-----...'). "
                    "Without it, the SSH agent and ~/.ssh/id_* of the machine running the flow are tried.")
    passphrase: Optional[SecretStr] = Field(default=None, description="Passphrase of an encrypted private key.")

    def _value(self) -> SSHCredential:
        # The login; its secrets are named after this block (see :meth:`tunnel`). Refused: a ``private_key`` that
        # is not private key text (a file path, say), an empty ``job_dir``, ...
        return SSHCredential(host=self.host, user=self.user, job_dir=self.job_dir, port=self.port,
                             private_key=_secret(self.private_key), passphrase=_secret(self.passphrase),
                             known_hosts=self.known_hosts, host_key_policy=self.host_key_policy,
                             source=self._secret_owner())

    def tunnel(self) -> Any:
        """A ready ``run.SSHTunnel`` for this login; its serialized form names environment variables, not secrets.

        Sets one ``NEMORUN_SECRET_*`` variable in this process per secret field that has a value, and writes
        known_hosts text (public) to a file named by its hash under ``$NEMORUN_HOME``.

        Raises:
            ConfigError: as :meth:`credential`.
        """
        return self.credential().field_value()

    def _secret_owner(self) -> str:
        # A saved block is named after its document, an unsaved one after its login: never after the secret, and
        # loading the same block again in another process gives the same variable.
        name = self._block_document_name or f"{self.user}@{self.host}:{self.port}"
        return f"prefect-{self.get_block_type_slug()}-{name}"


class NemorunBearerToken(_CredentialBlock):
    """An HTTP bearer token (DGX Cloud, Lepton, an API behind a proxy), kept as a Prefect secret."""

    _block_type_name = "Nemorun Bearer Token"
    _block_type_slug = "nemorun-bearer-token"
    _description = ("A bearer token for nemorun executors whose backend takes one (a credential slot of kind "
                    "bearer_token).")
    credential_kind: ClassVar[CredentialKind] = CredentialKind.BEARER_TOKEN

    token: SecretStr = Field(description="The token alone, without the 'Bearer ' prefix.")

    def _value(self) -> BearerToken:
        return BearerToken(self.token.get_secret_value())


class NemorunAPIKey(_CredentialBlock):
    """An API key, kept as a Prefect secret, and the header it is sent in when the backend lets one choose."""

    _block_type_name = "Nemorun API Key"
    _block_type_slug = "nemorun-api-key"
    _description = "An API key for nemorun executors whose backend takes one (a credential slot of kind api_key)."
    credential_kind: ClassVar[CredentialKind] = CredentialKind.API_KEY

    key: SecretStr = Field(description="The API key.")
    header: Optional[str] = Field(default=None, description="The HTTP header it is sent in ('X-API-Key'); empty: "
                                                            "the backend's own.")

    def _value(self) -> APIKey:
        return APIKey(self.key.get_secret_value(), header=self.header or None)


class NemorunKubeconfig(_CredentialBlock):
    """A kubeconfig document (Kubernetes, KubeRay), kept as a Prefect secret, and the context to use."""

    _block_type_name = "Nemorun Kubeconfig"
    _block_type_slug = "nemorun-kubeconfig"
    _description = "A kubeconfig for nemorun executors that reach a Kubernetes cluster (a slot of kind kubeconfig)."
    credential_kind: ClassVar[CredentialKind] = CredentialKind.KUBECONFIG

    kubeconfig: SecretStr = Field(description="The kubeconfig YAML, as `kubectl config view --raw --minify` prints "
                                              "it (certificates and tokens inline).")
    context: Optional[str] = Field(default=None, description="The context to use; empty: its current-context.")

    _field_names: ClassVar[Mapping[str, str]] = {"text": "kubeconfig"}

    def _value(self) -> Kubeconfig:
        return Kubeconfig(self.kubeconfig.get_secret_value(), context=self.context or None)


#: The credentials block of each kind.
CREDENTIAL_BLOCKS: Mapping[CredentialKind, type[Block]] = {
    CredentialKind.SSH: NemorunSSHCluster,
    CredentialKind.BEARER_TOKEN: NemorunBearerToken,
    CredentialKind.API_KEY: NemorunAPIKey,
    CredentialKind.KUBECONFIG: NemorunKubeconfig,
}
