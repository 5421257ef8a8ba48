"""Prefect blocks for nemorun: one credentials block per kind, and any executor, saved on the Prefect server.

    import nemorun_core as run
    from nemorun_prefect.blocks import NemorunBearerToken, NemorunExecutorBlock, NemorunSSHCluster

    NemorunSSHCluster(host="login.cluster.org", user="me", job_dir="/scratch/me/runs",
                      known_hosts=open("known_hosts").read(), private_key=open("id_ed25519").read()).save("cluster")
    NemorunExecutorBlock.from_executor(
        run.SlurmExecutor(partition="a100", account="ml", time="01:00:00", env_vars={"WANDB_API_KEY": "..."}),
        credentials={"ssh": NemorunSSHCluster.load("cluster")},     # slot name -> a saved credentials block
    ).save("a100")

    @flow
    def train_flow():
        return run_nemorun_task(run.Partial(train), NemorunExecutorBlock.load("a100").executor(), name="train")

Credentials by kind. An executor declares the credentials it takes as slots (``SlurmExecutor``: slot ``"ssh"``, an
SSH login, filling its ``tunnel``; see :mod:`nemorun_core.credentials`). Each kind has one block:
:class:`NemorunSSHCluster` (SSH), :class:`NemorunBearerToken`, :class:`NemorunAPIKey`, :class:`NemorunKubeconfig`;
the executor block maps slot names to saved blocks, and :meth:`NemorunExecutorBlock.executor` turns each into its
credential value and fills the slot with ``executor.with_credentials``. Which executor it is does not matter: a
slot it does not declare, or a block of another kind than the slot's, is a ConfigError naming the slot.
``ssh_cluster=`` is the ``"ssh"`` slot under its earlier name, and stays: ``from_executor(ex, ssh_cluster=c)`` is
``from_executor(ex, credentials={"ssh": c})``; both are stored in the ``ssh_cluster`` field.

How a secret reaches the job without being written down: the credentials blocks keep keys, passphrases and tokens as
``SecretStr`` fields (stored encrypted by the Prefect server, read back as ``********``). For an SSH login,
:meth:`NemorunSSHCluster.tunnel` puts the key into this process's environment
(:func:`nemorun_core.secrets.hold_in_env`: a variable named after the block, never after the value) and returns an
``SSHTunnel`` whose ``identity_env`` / ``passphrase_env`` hold only those variable NAMES; a token, an API key or a
kubeconfig becomes a ``run.Secret`` in the executor, redacted wherever nemorun writes the executor down. So the
executor and everything serialized from it (the :class:`~nemorun_prefect.tasks.JobRef` in a Prefect result,
artifacts, the nemorun store) never contain the secret; a process that loads the blocks again (a retried or
restarted flow run) gets the same values and re-attaches. The executor block keeps the secret values of its own
config (``WANDB_API_KEY``...) in a ``SecretDict``, with only ``"<redacted>"`` in its config, and refers to the
credentials blocks instead of copying them, so each secret is stored once and rotating it is one block edit.

Registration: ``prefect block register -m nemorun_prefect.blocks``, or let Prefect do it: the ``prefect.collections``
entry point of the ``nemorun`` distribution names this module, which Prefect imports when its server starts (it then
registers every block class it has imported) and when ``Block.load("nemorun-executor/NAME")`` meets a block type it
does not know yet.
"""

from __future__ import annotations

import logging
import re
from abc import ABC
from typing import Any, ClassVar, Mapping, Optional, Union

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field, model_validator

from nemorun_core.config.serialize import MARKERS
from nemorun_core.credentials import Credential, CredentialKind, CredentialSlot
from nemorun_core.errors import ConfigError, SerializationError
from nemorun_core.secrets import REDACTED, SECRET_MARKER, is_secret_name, looks_secret
from nemorun_prefect import forms
from nemorun_prefect.credential_blocks import (CREDENTIAL_BLOCKS, DOCS_URL, LOGO_URL, NemorunAPIKey,  # noqa: F401
                                               NemorunBearerToken, NemorunBlock, NemorunKubeconfig, NemorunSSHCluster)

_log = logging.getLogger("nemorun_prefect")


def _registered(cls: type, where: str) -> None:
    """Refuse an executor class that no backend of the registry covers (a built-in, a ``nemorun.executors`` entry
    point, or a subclass of one): where the flow runs, nemorun must know the backend to drive it."""
    from nemorun_core.executors import registry

    if registry.for_class(cls) is None:
        known = ", ".join(registry.names())
        raise ConfigError(f"{cls.__module__}.{cls.__qualname__} is not a registered nemorun backend (registered: "
                          f"{known}); register its package in the 'nemorun.executors' entry-point group (see "
                          "docs/registry.md) or subclass a registered executor", path=where)


_SSH_SLOT = "ssh"  # the slot that the ssh_cluster field fills


class NemorunExecutorBlock(NemorunBlock):
    """Any nemorun executor, saved as its serialized config; its secret values apart, its credentials by reference.

    Build it with :meth:`from_executor`, ``save`` it, and in a flow call ``NemorunExecutorBlock.load(name).executor()``.
    """

    _block_type_name = "Nemorun Executor"
    _block_type_slug = "nemorun-executor"
    _description = ("A nemorun executor (run.LocalExecutor, run.SlurmExecutor, run.DockerExecutor...) as its "
                    "serialized config, its secret values kept as Prefect secrets and its credentials (an SSH "
                    "login, a token, an API key, a kubeconfig) taken from nemorun credentials blocks.")

    executor_config: dict[str, Any] = Field(
        description="The executor's config as nemorun_core.config.serialize.encode(executor, payload=True) gives "
                    "it, with every secret value replaced by `<redacted>` (the value is in 'secrets'). For a "
                    "form instead of JSON, use the executor's own block type (Nemorun Slurm Executor...).")
    secrets: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="The secret values of the config, at their place in it: {'env_vars': {'WANDB_API_KEY': ...}}.")
    ssh_cluster: Optional[NemorunSSHCluster] = Field(
        default=None, title="SSH cluster (ssh credential slot)",
        description="The executor's 'ssh' credential slot: the SSH login whose tunnel replaces the executor's "
                    "'tunnel' (run.SlurmExecutor over SSH). The same as credentials={'ssh': ...}.")
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="The executor's other credential slots: slot name -> the saved credentials block that fills "
                    "it, as 'block-type-slug/block-name' ({'token': 'nemorun-bearer-token/lepton'}). Loaded, by "
                    "reference, each time executor() builds the executor.")

    @classmethod
    def from_executor(cls, executor: Any, *, credentials: Mapping[str, Block] | None = None,
                      ssh_cluster: NemorunSSHCluster | None = None) -> "NemorunExecutorBlock":
        """A block (not yet saved) holding ``executor``, its credential slots filled from the given blocks.

        Args:
            executor: any nemorun executor; its config is copied, secret values split off, and the fields of the
                slots in ``credentials`` emptied (the blocks fill them when the executor is built).
            credentials: slot name -> a SAVED credentials block of the slot's kind (``NemorunSSHCluster.load(name)``
                for ``"ssh"``, a :class:`NemorunBearerToken` for a bearer-token slot...).
            ssh_cluster: the ``"ssh"`` slot, under its earlier name (the same as ``credentials={"ssh": ...}``).

        Raises:
            ConfigError: ``executor`` is not an executor or cannot be serialized; a slot it does not declare, a
                block of another kind than its slot's, or a block never saved (naming the slot).
        """
        from nemorun_core.config import serialize
        from nemorun_core.executors.base import Executor

        where = "NemorunExecutorBlock.from_executor.executor"
        if not isinstance(executor, Executor):
            raise ConfigError(f"expected a nemorun executor (run.LocalExecutor(), run.SlurmExecutor(...), ...), got "
                              f"{type(executor).__name__}", path=where)
        _registered(type(executor), where)
        try:
            config = serialize.encode(executor, payload=True)
        except SerializationError as exc:
            raise ConfigError(f"the executor cannot be saved: {exc}", path=where) from exc
        blocks = dict(credentials or {})
        if ssh_cluster is not None:
            if _SSH_SLOT in blocks:
                raise ConfigError("the 'ssh' slot is given twice: pass the cluster block as ssh_cluster= or as "
                                  "credentials={'ssh': ...}, not both", path=_slot_path(_SSH_SLOT))
            blocks[_SSH_SLOT] = ssh_cluster
        refs: dict[str, str] = {}
        for name, block in blocks.items():
            slot = _slot(type(executor), name)
            _check_block(type(executor), slot, block)
            if block._block_document_id is None or not block._block_document_name:
                raise ConfigError(
                    f"save the {type(block).__name__} block first (block.save('NAME')) or pass "
                    f"{type(block).__name__}.load('NAME'): the executor block refers to it, so that the secret is "
                    f"stored once, in the {type(block).__name__} block", path=_slot_path(name))
            config[slot.field] = None  # executor() puts the block's credential here
            if name != _SSH_SLOT:
                refs[name] = f"{block.get_block_type_slug()}/{block._block_document_name}"
        public, secret = split_secrets(config)
        return cls(executor_config=public, secrets=SecretDict(secret or {}), ssh_cluster=blocks.get(_SSH_SLOT),
                   credentials=refs)

    def credential_blocks(self) -> dict[str, Block]:
        """Slot name -> its credentials block, each loaded from the server (``ssh_cluster`` as the ``"ssh"`` slot).

        Raises:
            ConfigError: a reference that is not ``'slug/name'`` or names a block that cannot be loaded.
        """
        blocks: dict[str, Block] = {}
        if self.ssh_cluster is not None:
            blocks[_SSH_SLOT] = self.ssh_cluster
        for name, ref in self.credentials.items():
            if name == _SSH_SLOT and self.ssh_cluster is not None:
                raise ConfigError("the 'ssh' slot is given twice (ssh_cluster and credentials['ssh']): keep one",
                                  path=_slot_path(name))
            if not isinstance(ref, str) or ref.count("/") != 1 or not all(ref.split("/")):
                raise ConfigError(f"{ref!r} is not a block reference: give 'block-type-slug/block-name' (for example "
                                  "'nemorun-bearer-token/lepton')", path=_slot_path(name))
            try:
                blocks[name] = Block.load(ref, _sync=True)
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"cannot load the credentials block {ref!r}: {exc}; save it again, or point the "
                                  "slot at another block", path=_slot_path(name)) from None
        return blocks

    def executor(self) -> Any:
        """The executor, ready to use: secret values restored, each credential slot filled from its block.

        Raises:
            ConfigError: the config is not an executor's, names a class that cannot be imported here, has a slot
                emptied for a block that the block no longer names, or a credentials block does not fit its slot.
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
        _registered(target, where)
        data = merge_secrets(config, self.secrets.get_secret_value() or {})
        return _build(target, data, self.credential_blocks(), where)


def _build(target: type, data: dict[str, Any], blocks: Mapping[str, Block], where: str) -> Any:
    """The executor of class ``target`` from its serialized config ``data`` (secrets merged back), each credential
    slot of ``blocks`` filled from its block.

    Raises:
        ConfigError: a block does not fit its slot, the config does not build, or a slot's field was emptied when
            the executor was saved and no block fills it.
    """
    from nemorun_core.config import serialize

    credentials: dict[str, Credential] = {}
    for name, block in blocks.items():
        _check_block(target, _slot(target, name), block)
        credentials[name] = block.credential()
    try:
        executor = serialize.decode(data, build=True)
    except ConfigError as exc:
        raise ConfigError(f"cannot build the executor: {exc}", path=where) from exc
    for slot in target.credential_slots:
        # A field emptied at save time (None) that the executor would fill with a default of its own (a
        # SlurmExecutor without a tunnel runs on this machine): refused, never a silent fallback.
        if (slot.name not in credentials and slot.field in data and data[slot.field] is None
                and getattr(executor, slot.field) is not None):
            block_cls = CREDENTIAL_BLOCKS[slot.kind].__name__
            field = "ssh_cluster" if slot.name == _SSH_SLOT else f"credentials[{slot.name!r}]"
            raise ConfigError(f"this {target.__name__} has no {slot.field} and the block no {field}: set "
                              f"{field} to a saved {block_cls} block, or save the executor with its "
                              f"{slot.field} set (run.LocalTunnel(job_dir=...) for a cluster on this machine)"
                              if slot.kind is CredentialKind.SSH else
                              f"this {target.__name__} has no {slot.field} and the block no {field}: set "
                              f"{field} to a saved {block_cls} block, or save the executor with its "
                              f"{slot.field} set", path=_slot_path(slot.name))
    return executor.with_credentials(credentials) if credentials else executor


def _slot_path(name: str) -> str:
    return "NemorunExecutorBlock.ssh_cluster" if name == _SSH_SLOT else f"NemorunExecutorBlock.credentials.{name}"


def _slot(executor_cls: type, name: str) -> CredentialSlot:
    """The executor class's slot ``name``, or a ConfigError naming the slot and the slots it has."""
    for slot in executor_cls.credential_slots:
        if slot.name == name:
            return slot
    have = ", ".join(repr(s.name) for s in executor_cls.credential_slots) or "none"
    if name == _SSH_SLOT:
        raise ConfigError(f"{executor_cls.__name__} takes no tunnel: it has no credential slot 'ssh' (its slots: "
                          f"{have}); leave ssh_cluster out", path=_slot_path(name))
    raise ConfigError(f"{executor_cls.__name__} has no credential slot {name!r} (its slots: {have})",
                      path=_slot_path(name))


def _check_block(executor_cls: type, slot: CredentialSlot, block: Any) -> None:
    """Refuse a block that is not the credentials block of the slot's kind."""
    expected = CREDENTIAL_BLOCKS[slot.kind]
    if not isinstance(block, expected):
        raise ConfigError(f"slot {slot.name!r} of {executor_cls.__name__} takes a {slot.kind.value} credential: give "
                          f"a saved {expected.__name__} block, not {type(block).__name__}", path=_slot_path(slot.name))


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


def _prune_redacted(secret: Any) -> Any:
    """``secret`` (the second part of :func:`split_secrets`) without the values that are only placeholders."""
    if isinstance(secret, dict):
        if set(secret) == {SECRET_MARKER} and secret[SECRET_MARKER] == REDACTED:
            return None
        kept = {k: v for k, v in ((k, _prune_redacted(v)) for k, v in secret.items()) if v is not None}
        return kept or None
    return None if secret == REDACTED else secret


def _merge_into(held: Any, found: Any) -> Any:
    """``held`` secrets with ``found`` ones added at their place (``found`` wins)."""
    if isinstance(held, dict) and isinstance(found, dict) and set(found) != {SECRET_MARKER}:
        out = dict(held)
        for k, v in found.items():
            out[k] = _merge_into(out.get(k), v)
        return out
    return found


# -- typed executor blocks: one block type per backend, generated ----------------------------------------------------
class ExecutorFormBlock(NemorunBlock, ABC):
    """Base of the typed executor blocks (``NemorunSlurmExecutor``...): the executor's settings as form fields.

    One subclass per backend of the registry is generated when this module is imported (:data:`EXECUTOR_FORMS`),
    from the executor class's dataclass fields (:mod:`nemorun_prefect.forms`), so Prefect's UI shows a form with the
    settings' names, types, defaults and descriptions. Each credential slot of the executor is a field of its own,
    a reference to a saved credentials block of the slot's kind (``ssh`` for ``run.SlurmExecutor``: a
    :class:`NemorunSSHCluster`). Secret values (``WANDB_API_KEY`` in ``env_vars``...) live in the ``secrets``
    field, a ``SecretDict``; a secret given in a setting from Python is moved there (``<redacted>`` stays in the
    setting), so it is stored encrypted. In the UI, enter secret values in ``secrets`` directly.

    Build one with :meth:`from_executor` (or :func:`executor_block`), ``save`` it, and call :meth:`executor`.
    """

    _form: ClassVar[forms.Form]
    _slots: ClassVar[dict[str, str]] = {}  # credential slot name -> the field holding its block
    # Each generated class also has `secrets` (a SecretDict), declared after the settings so the form shows it last.

    @model_validator(mode="before")
    @classmethod
    def _secrets_apart(cls, data: Any) -> Any:
        # Keeps a secret given in a setting out of what Prefect stores in clear: it moves to `secrets`.
        if not isinstance(data, dict) or not hasattr(cls, "_form"):
            return data
        # Blocks accept unknown keys, so without this check the data of another backend's block would pass as
        # this one (a field typed "any executor block" loaded from the server gets plain data).
        unknown = sorted(k for k in data if k not in cls.model_fields and k != "block_type_slug")
        if unknown:
            raise ValueError(f"{cls.__name__} has no settings {unknown}: the data is another block type's, or "
                             f"these settings were removed from {cls._form.cls.__name__}; edit the block")
        names = [n for n in cls._form.names() if n in data]
        public, secret = split_secrets({n: _plain_data(data[n]) for n in names})
        secret = _prune_redacted(secret)
        if not secret:
            return data
        held = data.get("secrets")
        held = held.get_secret_value() if isinstance(held, SecretDict) else (held or {})
        return {**data, **public, "secrets": SecretDict(_merge_into(dict(held), secret))}

    @classmethod
    def from_executor(cls, executor: Any, *, credentials: Mapping[str, Block] | None = None) -> Any:
        """A block (not yet saved) of this type holding ``executor``'s settings, its slots filled from ``credentials``.

        Args:
            executor: an executor of exactly this block type's class (a subclass has settings the form lacks:
                :func:`executor_block` picks :class:`NemorunExecutorBlock` for it).
            credentials: slot name -> a SAVED credentials block of the slot's kind.

        Raises:
            ConfigError: another executor class; a slot it does not declare, a block of another kind or never
                saved (naming the slot).
        """
        from nemorun_core.config import serialize

        where = f"{cls.__name__}.from_executor.executor"
        if type(executor) is not cls._form.cls:
            raise ConfigError(f"{cls.__name__} holds a {cls._form.cls.__name__}, got {type(executor).__name__}; "
                              "use nemorun_prefect.blocks.executor_block(executor), which picks the block type",
                              path=where)
        try:
            config = serialize.encode(executor, payload=True)
        except SerializationError as exc:
            raise ConfigError(f"the executor cannot be saved: {exc}", path=where) from exc
        refs: dict[str, Block] = {}
        for name, block in (credentials or {}).items():
            if name not in cls._slots:
                have = ", ".join(repr(s) for s in cls._slots) or "none"
                raise ConfigError(f"{type(executor).__name__} has no credential slot {name!r} (its slots: {have})",
                                  path=f"{cls.__name__}.from_executor.credentials.{name}")
            slot = _slot(type(executor), name)
            field = f"{cls.__name__}.{cls._slots[name]}"
            try:
                _check_block(type(executor), slot, block)
            except ConfigError as exc:
                raise ConfigError(str(exc).removeprefix(f"{exc.path}: "), path=field) from None
            if block._block_document_id is None or not block._block_document_name:
                raise ConfigError(f"save the {type(block).__name__} block first (block.save('NAME')) or pass "
                                  f"{type(block).__name__}.load('NAME'): this block refers to it", path=field)
            config[slot.field] = None  # executor() puts the block's credential here
            refs[cls._slots[name]] = block
        return cls(**forms.from_config(cls._form, config), **refs)

    def executor(self) -> Any:
        """The executor, ready to use: the settings, the secret values, and each slot filled from its block.

        Raises:
            ConfigError: a setting the executor refuses, or a credentials block that does not fit its slot.
        """
        config = forms.to_config(self._form, {n: getattr(self, n) for n in self._form.names()})
        data = merge_secrets(config, self.secrets.get_secret_value() or {})  # type: ignore[attr-defined]
        blocks = {slot: getattr(self, field) for slot, field in self._slots.items() if getattr(self, field) is not None}
        return _build(self._form.cls, data, blocks, type(self).__name__)


def _plain_data(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain_data(v) for v in value]
    return value


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)


def _form_block(entry: Any) -> type[ExecutorFormBlock]:
    """The typed block class of one registry entry (its executor class is imported)."""
    executor_cls = entry.load()
    reserved = frozenset(dir(ExecutorFormBlock)) | {"secrets"}
    form, definitions = forms.form_of(executor_cls, reserved=reserved)
    slots: dict[str, str] = {}
    for slot in executor_cls.credential_slots:
        field = slot.name if slot.name not in definitions and slot.name not in reserved else f"{slot.name}_credentials"
        block_cls = CREDENTIAL_BLOCKS[slot.kind]
        slots[slot.name] = field
        definitions[field] = (Optional[block_cls], Field(
            default=None, title=f"{slot.name} ({block_cls.get_block_type_name()})",
            description=forms.markdown_safe(
                f"Credential slot `{slot.name}`: a saved {block_cls.get_block_type_name()} block, whose "
                f"{slot.kind.value} credential fills the setting `{slot.field}`: {slot.description}.")))
    definitions["secrets"] = (SecretDict, Field(
        default_factory=lambda: SecretDict({}), title="Secrets",
        description="Secret values of the settings, at their place: `{\"env_vars\": {\"WANDB_API_KEY\": "
                    "\"...\"}}`. Stored encrypted; a value here replaces the setting's (`<redacted>` or absent)."))
    camel = _camel(entry.name)
    name = f"Nemorun{camel}Executor"
    summary = entry.description
    namespace: dict[str, Any] = {
        "__module__": __name__, "__qualname__": name,
        "__doc__": f"A {executor_cls.__name__} ({entry.name} backend) as a form: its settings, its secret values "
                   f"and its credential slots. Generated from {form.target}.",
        "__annotations__": {k: t for k, (t, _) in definitions.items()},
        "_block_type_name": f"Nemorun {camel} Executor", "_block_type_slug": f"nemorun-{entry.name}-executor",
        "_description": forms.markdown_safe(
            f"A nemorun {executor_cls.__name__} ({summary or entry.name}), its settings as a form. Secret values go "
            "in Secrets; credentials come from nemorun credentials blocks."),
        "_code_example": f"from {__name__} import {name}\n\nexecutor = {name}.load(\"BLOCK_NAME\").executor()",
        "_form": form, "_slots": slots,
        **{k: info for k, (_, info) in definitions.items()},
    }
    return type(name, (ExecutorFormBlock,), namespace)


def _form_blocks() -> dict[str, type[ExecutorFormBlock]]:
    """``{backend name: typed block class}`` for every backend of the registry whose class imports here; a backend
    that cannot be loaded (its extra is missing, its package is broken) is left out with a warning."""
    from nemorun_core.executors import registry

    out: dict[str, type[ExecutorFormBlock]] = {}
    try:
        entries = registry.entries()
    except ConfigError as exc:
        _log.warning("no typed executor blocks: the backend registry cannot be read: %s", exc)
        return out
    for entry in entries:
        try:
            out[entry.name] = _form_block(entry)
        except Exception as exc:  # noqa: BLE001 - one broken backend must not hide the others' blocks
            _log.warning("no typed block for backend %r (use NemorunExecutorBlock for it): %s: %s", entry.name,
                         type(exc).__name__, exc)
    return out


#: ``{backend name: typed executor block class}``, generated at import for every backend of the registry. Each class
#: is also a name of this module (``NemorunSlurmExecutor``), so ``prefect block register -m`` registers it.
EXECUTOR_FORMS: Mapping[str, type[ExecutorFormBlock]] = _form_blocks()
globals().update({cls.__name__: cls for cls in EXECUTOR_FORMS.values()})

#: Every executor block type: the JSON one and the typed ones (the type of a field that takes any of them).
AnyExecutorBlock = Union[(NemorunExecutorBlock, *EXECUTOR_FORMS.values())]  # type: ignore[valid-type]


def executor_block(executor: Any, *, credentials: Mapping[str, Block] | None = None) -> Block:
    """A block (not yet saved) for ``executor``: its backend's typed block when the executor is of exactly the
    registered class, otherwise (a subclass, an executor with settings no form has) a :class:`NemorunExecutorBlock`.

    Raises:
        ConfigError: as the ``from_executor`` of the block type chosen.
    """
    for cls in EXECUTOR_FORMS.values():
        if type(executor) is cls._form.cls:
            return cls.from_executor(executor, credentials=credentials)
    return NemorunExecutorBlock.from_executor(executor, credentials=credentials)


__all__ = ["AnyExecutorBlock", "CREDENTIAL_BLOCKS", "DOCS_URL", "EXECUTOR_FORMS", "ExecutorFormBlock", "LOGO_URL",
           "NemorunAPIKey", "NemorunBearerToken", "NemorunBlock", "NemorunExecutorBlock", "NemorunKubeconfig",
           "NemorunSSHCluster", "executor_block", "merge_secrets", "split_secrets",
           *(cls.__name__ for cls in EXECUTOR_FORMS.values())]

# The job block (nemorun_prefect.jobs) is built from the classes above; imported here, after them, so that whatever
# imports this module (Prefect's collections entry point at server start, Block.load of an unknown type) knows it.
from nemorun_prefect import jobs as _jobs  # noqa: E402,F401
