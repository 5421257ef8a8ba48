"""Prefect blocks for nemorun: an SSH login to a cluster, and any executor, saved on the Prefect server.

    import nemorun_core as run
    from nemorun_prefect.blocks import NemorunExecutorBlock, NemorunSSHCluster

    NemorunSSHCluster(host="login.cluster.org", user="me", job_dir="/scratch/me/runs",
                      known_hosts=open("known_hosts").read(), private_key=open("id_ed25519").read()).save("cluster")
    NemorunExecutorBlock.from_executor(
        run.SlurmExecutor(partition="a100", account="ml", time="01:00:00", env_vars={"WANDB_API_KEY": "..."}),
        ssh_cluster=NemorunSSHCluster.load("cluster"),
    ).save("a100")

    @flow
    def train_flow():
        return run_nemorun_task(run.Partial(train), NemorunExecutorBlock.load("a100").executor(), name="train")

How a secret reaches the job without being written down: the cluster block keeps the key and its passphrase as
``SecretStr`` fields (stored encrypted by the Prefect server, read back as ``********``). :meth:`NemorunSSHCluster.tunnel`
puts them into this process's environment (:func:`nemorun_core.secrets.hold_in_env`: a variable named after the
block, never after the value) and returns an ``SSHTunnel`` whose ``identity_env`` / ``passphrase_env`` hold only
those variable NAMES. So the tunnel, the executor and everything serialized from them (the
:class:`~nemorun_prefect.tasks.JobRef` in a Prefect result, artifacts, the nemorun store) name the variable and never
contain the key; a process that loads the block again (a retried or restarted flow run) sets the same variable and
re-attaches. The executor block keeps the secret values of its config (``WANDB_API_KEY``, a tunnel passphrase...)
in a ``SecretDict``, with only ``"<redacted>"`` in its config, and refers to the cluster block (a block reference,
not a copy), so the key is stored once.

Registration: ``prefect block register -m nemorun_prefect.blocks``, or let Prefect do it: the ``prefect.collections``
entry point of the ``nemorun`` distribution names this module, which Prefect imports when its server starts (it then
registers every block class it has imported) and when ``Block.load("nemorun-executor/NAME")`` meets a block type it
does not know yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Any, Literal, Optional

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, SecretStr

from nemorun_core.config.serialize import MARKERS
from nemorun_core.errors import ConfigError, SerializationError
from nemorun_core.secrets import REDACTED, SECRET_MARKER, hold_in_env, is_secret_name, looks_secret

# A known_hosts line: host pattern(s), key type, base64 key (a leading @marker is allowed).
_KNOWN_HOSTS_LINE = re.compile(r"^(@\S+\s+)?\S+\s+(ssh-|ecdsa-|sk-)\S+\s+[A-Za-z0-9+/=]+", re.MULTILINE)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class NemorunSSHCluster(Block):
    """An SSH login to a cluster's login node (for ``run.SlurmExecutor``), its private key kept as a Prefect secret.

    :meth:`tunnel` gives the ``run.SSHTunnel``. There is no password field: ``SSHTunnel`` authenticates with keys
    only (a key from this block, the SSH agent, or the ``~/.ssh/id_*`` files of the machine running the flow).
    """

    _block_type_name = "Nemorun SSH Cluster"
    _block_type_slug = "nemorun-ssh-cluster"
    _description = ("An SSH login (host, user, job directory, host keys) and its private key, for nemorun "
                    "executors that reach a cluster over SSH (run.SlurmExecutor).")

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

    def tunnel(self) -> Any:
        """A ready ``run.SSHTunnel`` for this login; its serialized form names environment variables, not secrets.

        Sets one ``NEMORUN_SECRET_*`` variable in this process per secret field that has a value.

        Raises:
            ConfigError: ``private_key`` is not private key text (a file path, say), or ``job_dir`` is empty.
        """
        from nemorun_core.tunnel.ssh import SSHTunnel

        if not self.job_dir:
            raise ConfigError("give the directory on the cluster for job files", path="NemorunSSHCluster.job_dir")
        owner = self._secret_owner()
        identity_env = passphrase_env = None
        key = self.private_key.get_secret_value() if self.private_key is not None else ""
        if key.strip():
            if not _PRIVATE_KEY.search(key):
                raise ConfigError("not a private key: paste the content of the key file (it starts with "
                                  "'-----BEGIN ... PRIVATE KEY-----'), not its path",
                                  path="NemorunSSHCluster.private_key")
            identity_env = hold_in_env(owner, "private_key", key if key.endswith("\n") else key + "\n")
        if self.passphrase is not None and self.passphrase.get_secret_value():
            passphrase_env = hold_in_env(owner, "passphrase", self.passphrase.get_secret_value())
        return SSHTunnel(host=self.host, user=self.user, job_dir=self.job_dir, port=self.port,
                         known_hosts=self._known_hosts_file(), host_key_policy=self.host_key_policy,
                         identity_env=identity_env, passphrase_env=passphrase_env)

    def _secret_owner(self) -> str:
        # A saved block is named after its document, an unsaved one after its login: never after the secret, and
        # loading the same block again in another process gives the same variable.
        name = self._block_document_name or f"{self.user}@{self.host}:{self.port}"
        return f"prefect-{self.get_block_type_slug()}-{name}"

    def _known_hosts_file(self) -> str:
        """``known_hosts`` as a path: text is written once to a file named by its hash (host keys are public)."""
        text = self.known_hosts
        if not _KNOWN_HOSTS_LINE.search(text):
            return text
        from nemorun_core.executors.files import write_atomic
        from nemorun_core.home import default_home

        body = text if text.endswith("\n") else text + "\n"
        folder = os.path.join(default_home(), "prefect", "known_hosts")
        path = os.path.join(folder, hashlib.sha256(body.encode()).hexdigest()[:16])
        if not os.path.exists(path):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            write_atomic(path, body)
        return path


class NemorunExecutorBlock(Block):
    """Any nemorun executor, saved as its serialized config; its secret values apart, its SSH login by reference.

    Build it with :meth:`from_executor`, ``save`` it, and in a flow call ``NemorunExecutorBlock.load(name).executor()``.
    """

    _block_type_name = "Nemorun Executor"
    _block_type_slug = "nemorun-executor"
    _description = ("A nemorun executor (run.LocalExecutor, run.SlurmExecutor, run.DockerExecutor...) as its "
                    "serialized config, its secret values kept as Prefect secrets and the SSH login of a cluster "
                    "taken from a Nemorun SSH Cluster block.")

    executor_config: dict[str, Any] = Field(
        description="The executor's config as nemorun_core.config.serialize.encode(executor, payload=True) gives "
                    "it, with every secret value replaced by '<redacted>' (the value is in 'secrets').")
    secrets: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="The secret values of the config, at their place in it: {'env_vars': {'WANDB_API_KEY': ...}}.")
    ssh_cluster: Optional[NemorunSSHCluster] = Field(
        default=None,
        description="The SSH login whose tunnel replaces the executor's 'tunnel' (run.SlurmExecutor over SSH).")

    @classmethod
    def from_executor(cls, executor: Any, *, ssh_cluster: NemorunSSHCluster | None = None) -> "NemorunExecutorBlock":
        """A block (not yet saved) holding ``executor``; with ``ssh_cluster``, its tunnel comes from that block.

        Args:
            executor: any nemorun executor; its config is copied, secret values split off.
            ssh_cluster: a SAVED cluster block (``NemorunSSHCluster.load(name)``), for executors with a ``tunnel``.

        Raises:
            ConfigError: ``executor`` is not an executor or cannot be serialized, or ``ssh_cluster`` was given for an
                executor without a tunnel or was never saved.
        """
        from nemorun_core.config import serialize
        from nemorun_core.executors.base import Executor

        where = "NemorunExecutorBlock.from_executor.executor"
        if not isinstance(executor, Executor):
            raise ConfigError(f"expected a nemorun executor (run.LocalExecutor(), run.SlurmExecutor(...), ...), got "
                              f"{type(executor).__name__}", path=where)
        try:
            config = serialize.encode(executor, payload=True)
        except SerializationError as exc:
            raise ConfigError(f"the executor cannot be saved: {exc}", path=where) from exc
        if ssh_cluster is not None:
            if not _takes_tunnel(type(executor)):
                raise ConfigError(f"{type(executor).__name__} takes no tunnel, so an SSH cluster means nothing for "
                                  "it; leave ssh_cluster out", path="NemorunExecutorBlock.ssh_cluster")
            if ssh_cluster._block_document_id is None:
                raise ConfigError("save the NemorunSSHCluster block first (cluster.save('NAME')) or pass "
                                  "NemorunSSHCluster.load('NAME'): the executor block refers to it, so that the key "
                                  "is stored once, in the cluster block", path="NemorunExecutorBlock.ssh_cluster")
            config["tunnel"] = None  # executor() puts the cluster block's tunnel here
        public, secret = split_secrets(config)
        return cls(executor_config=public, secrets=SecretDict(secret or {}), ssh_cluster=ssh_cluster)

    def executor(self) -> Any:
        """The executor, ready to use: secret values restored, the cluster block's tunnel in place.

        Raises:
            ConfigError: the config is not an executor's, names a class that cannot be imported here, or is that of
                an executor with a tunnel but has neither a tunnel nor ``ssh_cluster``.
        """
        from nemorun_core.config import serialize
        from nemorun_core.executors.base import Executor

        where = "NemorunExecutorBlock.executor_config"
        config = self.executor_config
        if not isinstance(config, dict) or "_target_" not in config or not config.get("_instance_"):
            raise ConfigError("not an executor's config (no '_target_' with '_instance_: true'); build the block "
                              "with NemorunExecutorBlock.from_executor(run.LocalExecutor(...))", path=where)
        try:
            # The class alone (a "_ref_"), so that a wrong class is reported before anything is built.
            target = serialize.decode({"_ref_": config["_target_"],
                                       **({"_pickle_": config["_pickle_"]} if "_pickle_" in config else {})})
        except SerializationError as exc:
            raise ConfigError(f"{exc}; install the package that defines it where the flow runs", path=where) from exc
        if not (isinstance(target, type) and issubclass(target, Executor)):
            raise ConfigError(f"{config['_target_']} is not a nemorun executor class; build the block with "
                              "NemorunExecutorBlock.from_executor(...)", path=where)
        data = merge_secrets(config, self.secrets.get_secret_value() or {})
        if self.ssh_cluster is not None:
            if not _takes_tunnel(target):
                raise ConfigError(f"{target.__name__} takes no tunnel; remove ssh_cluster from the block",
                                  path="NemorunExecutorBlock.ssh_cluster")
            data["tunnel"] = self.ssh_cluster.tunnel()  # decode keeps values that are not plain data as they are
        elif _takes_tunnel(target) and data.get("tunnel") is None:
            raise ConfigError(f"this {target.__name__} has no tunnel and the block no ssh_cluster: set ssh_cluster "
                              "to a saved NemorunSSHCluster block, or save the executor with an explicit tunnel "
                              "(run.LocalTunnel(job_dir=...) for a cluster on this machine)",
                              path="NemorunExecutorBlock.ssh_cluster")
        try:
            return serialize.decode(data, build=True)
        except ConfigError as exc:
            raise ConfigError(f"cannot build the executor: {exc}", path=where) from exc


def _takes_tunnel(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) and any(f.name == "tunnel" for f in dataclasses.fields(cls))


def split_secrets(data: Any) -> tuple[Any, Any]:
    """Split plain config data into (the data with secret values ``"<redacted>"``, the secret values at their place).

    A value is secret when its key says so (:func:`~nemorun_core.secrets.is_secret_name`), when it looks like key
    material, or when it is a :class:`~nemorun_core.secrets.Secret` (``{"_secret_": value}`` in plain data), as
    :func:`~nemorun_core.secrets.redact` decides. List items are placed under their index, as a string. The second
    part is None when there is no secret.
    """
    if isinstance(data, dict):
        if set(data) == {SECRET_MARKER}:
            value = data[SECRET_MARKER]
            return ({SECRET_MARKER: REDACTED}, data) if value not in (None, "", REDACTED) else (data, None)
        public, secret = {}, {}
        for k, v in data.items():
            if isinstance(k, str) and k not in MARKERS and is_secret_name(k) and v not in (None, "", {}, []):
                public[k], secret[k] = REDACTED, v
                continue
            public[k], inner = split_secrets(v)
            if inner is not None:
                secret[k] = inner
        return public, secret or None
    if isinstance(data, list):
        items, secret = [], {}
        for i, v in enumerate(data):
            public, inner = split_secrets(v)
            items.append(public)
            if inner is not None:
                secret[str(i)] = inner
        return items, secret or None
    if looks_secret(data):
        return REDACTED, data
    return data, None


def merge_secrets(public: Any, secret: Any) -> Any:
    """Undo :func:`split_secrets`: a copy of ``public`` with each secret value back at its place."""
    if not secret:
        return public
    if isinstance(public, list) and isinstance(secret, dict):
        return [merge_secrets(v, secret.get(str(i))) for i, v in enumerate(public)]
    if isinstance(public, dict) and isinstance(secret, dict):
        out = dict(public)
        for k, v in secret.items():
            out[k] = v if out.get(k, REDACTED) == REDACTED else merge_secrets(out[k], v)
        return out
    return secret


__all__ = ["NemorunExecutorBlock", "NemorunSSHCluster", "merge_secrets", "split_secrets"]
