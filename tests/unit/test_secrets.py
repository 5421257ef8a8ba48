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



def test_a_secret_marked_with_run_secret_is_redacted_under_any_name(monkeypatch) -> None:
    from nemorun_core.config import serialize
    from nemorun_core.secrets import Secret, is_secret, redact, restore

    value = "-----not a key-----\nsecond line\n"
    secret = run.Secret(value)
    assert isinstance(secret, str) and secret == value and value not in repr(secret) and "redacted" in repr(secret)
    assert is_secret("MY_VALUE", secret) and not is_secret("MY_VALUE", value) and is_secret("HF_TOKEN", "x")
    data = serialize.encode(run.LocalExecutor(env_vars={"MY_VALUE": secret, "MODE": "fast"}))
    assert data["env_vars"]["MY_VALUE"] == {"_secret_": value}  # in memory, before anything is written
    stored = redact(data)
    assert value not in json.dumps(stored) and "second line" not in json.dumps(stored)
    assert stored["env_vars"] == {"MY_VALUE": {"_secret_": REDACTED}, "MODE": "fast"}
    assert secret_values(data) == [value]
    # A process that loads the stored config gets the secret back from its environment, still marked secret.
    monkeypatch.setenv("MY_VALUE", value)
    loaded = serialize.decode(restore(stored), build=True)
    assert isinstance(loaded.env_vars["MY_VALUE"], Secret) and loaded.env_vars["MY_VALUE"] == value
    monkeypatch.delenv("MY_VALUE")
    assert serialize.decode(restore(stored), build=True).env_vars["MY_VALUE"] == REDACTED


def test_a_secret_survives_pickling_as_a_secret() -> None:
    import pickle

    from nemorun_core.secrets import Secret

    copy = pickle.loads(pickle.dumps(run.Secret("abc")))
    assert type(copy) is Secret and copy == "abc"
