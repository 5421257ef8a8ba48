"""Credentials by kind: what an executor needs to reach its backend, declared as slots.

An executor names the credentials it takes in ``credential_slots``: each :class:`CredentialSlot` has a name (what an
orchestrator maps a stored credential to: ``connections={"ssh": "my_cluster"}`` in Airflow, a credentials block in
Prefect), a :class:`CredentialKind`, and the executor field it fills. Orchestrators resolve a stored credential of
the slot's kind and hand it to :meth:`nemorun_core.executors.base.Executor.with_credentials`; they never need to know
which executor they drive.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping

from nemorun_core.errors import ConfigError


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


def apply_credentials(executor: Any, credentials: Mapping[str, Any]) -> Any:
    """``executor.with_credentials(credentials)``: a clone with each credential's value in its slot's field.

    A credential is any object with a ``kind`` (:class:`CredentialKind`) and a ``field_value()`` giving what the
    executor field holds (an ``SSHTunnel`` for an SSH login, a ``run.Secret`` for a token).
    """
    slots = {slot.name: slot for slot in type(executor).credential_slots}
    name = type(executor).__name__
    clone = executor.clone()
    for slot_name, credential in credentials.items():
        slot = slots.get(slot_name)
        if slot is None:
            have = ", ".join(sorted(slots)) or "none"
            raise ConfigError(f"{name} has no credential slot {slot_name!r} (its slots: {have})",
                              path=f"credentials.{slot_name}")
        kind = getattr(credential, "kind", None)
        if kind != slot.kind:
            raise ConfigError(f"slot {slot_name!r} of {name} takes a {slot.kind.value} credential, got "
                              f"{kind.value if isinstance(kind, CredentialKind) else type(credential).__name__}",
                              path=f"credentials.{slot_name}")
        setattr(clone, slot.field, credential.field_value())
    clone.check()
    return clone


__all__ = ["CredentialKind", "CredentialSlot", "apply_credentials"]
