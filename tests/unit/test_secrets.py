"""Finding secret values in plain data, and redacting values known only by their salted digests."""

from __future__ import annotations

import json

import nemorun_core as run
from nemorun_core.secrets import REDACTED, redact_digested, secret_digests, secret_values


def test_secret_values_are_those_redact_would_replace() -> None:
    data = {"env_vars": {"WANDB_API_KEY": "wandb-123456", "MODE": "fast"}, "api_token": "tok-abcdef",
            "nested": [{"db_password": "pw-1234"}, "hf_" + "a" * 20], "passphrase_env": "NAME_ONLY"}
    assert secret_values(data) == ["hf_" + "a" * 20, "wandb-123456", "tok-abcdef", "pw-1234"]
    assert secret_values({"api_token": REDACTED, "token": ""}) == []


def test_digests_redact_values_they_do_not_contain() -> None:
    secrets = ["tok-0123456789", "wandb-é-987654"]
    digests = secret_digests(secrets)
    assert not any(s in json.dumps(digests) for s in secrets)
    line = "token=tok-0123456789 wandb=wandb-é-987654 end tok-0123456789"
    assert redact_digested(line, digests) == f"token={REDACTED} wandb={REDACTED} end {REDACTED}"
    assert redact_digested("nothing here", digests) == "nothing here"
    # another salt: the same values give other digests
    assert secret_digests(secrets)["salt"] != digests["salt"]
    assert redact_digested(line, {}) == line and secret_digests([]) == {}


def test_job_ref_round_trips_without_secrets(tmp_path) -> None:
    from nemorun_core.executors.base import JobHandle
    from nemorun_core.experiment.jobref import JobRef, executor_config, load_executor
    from nemorun_core.experiment.tasks import TaskSpec

    executor = run.LocalExecutor(env_vars={"NR_UNIT_TEST_TOKEN": "hf_" + "b" * 20, "MODE": "x"})
    config = executor_config(executor)
    assert "hf_" not in json.dumps(config)
    assert load_executor(config).env_vars == {"NR_UNIT_TEST_TOKEN": REDACTED, "MODE": "x"}
    handle = JobHandle.create("local", "1", "exp/t/0", str(tmp_path))
    ref = JobRef.create(TaskSpec("t", run.Script(inline="true"), executor, []), handle)
    assert ref.kind == "script" and ref.job_handle() == handle and ref.spec().kind == "script"

