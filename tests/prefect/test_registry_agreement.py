"""Prefect holds a credentials block for every credential kind a registered backend takes, and an executor block
only for registered backends."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from nemorun_core.credentials import CredentialKind
from nemorun_core.errors import ConfigError
from nemorun_core.executors import registry
from nemorun_core.executors.base import Executor
from nemorun_prefect.blocks import CREDENTIAL_BLOCKS, NemorunExecutorBlock


def test_every_credential_kind_of_every_backend_has_a_prefect_block() -> None:
    kinds = {kind for entry in registry.entries() for kind in entry.credential_kinds}
    assert CredentialKind.SSH in kinds  # the Slurm backend's
    assert set(CredentialKind) <= set(CREDENTIAL_BLOCKS), "a credential kind without a Prefect block"
    assert kinds <= set(CREDENTIAL_BLOCKS)


@dataclasses.dataclass
class _Unregistered(Executor):
    backend: ClassVar[str] = "nowhere"

    def dryrun(self, job):  # pragma: no cover - the block refuses this backend before anything reaches it
        raise AssertionError("an unregistered backend's executor was asked to run a job; the block should have "
                             "refused it")

    submit = status_many = logs = cancel = dryrun


def test_an_executor_block_is_only_for_registered_backends() -> None:
    with pytest.raises(ConfigError) as err:
        NemorunExecutorBlock.from_executor(_Unregistered())
    text = str(err.value)
    assert "not a registered nemorun backend" in text and "nemorun.executors" in text and "local" in text
