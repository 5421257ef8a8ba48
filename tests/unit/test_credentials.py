"""Credential values by kind (nemorun_core.credentials): validation naming the field, reprs without secrets, and
executors filled through ``with_credentials`` that serialize with every secret redacted."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar, Iterator, Sequence

import pytest

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.credentials import (CREDENTIAL_TYPES, APIKey, BearerToken, CredentialKind, CredentialSlot,
                                      Kubeconfig, SSHCredential)
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Executor, Job, JobHandle, JobState, JobStatus, SubmitRequest
from nemorun_core.secrets import REDACTED, Secret, redact, secret_values

KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       "-----END OPENSSH PRIVATE KEY-----\n")
TOKEN = "tok-3f9a8c7d6e5b4a39281706f5e4d3c2b1"
API_KEY = "ak-0123456789abcdef0123456789abcdef"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: admin
  user: {token: "kube-secret-token-0123456789"}
contexts:
- name: kind-admin
  context: {cluster: kind, user: admin}
- name: other
  context: {cluster: kind, user: admin}
current-context: kind-admin
"""


@dataclasses.dataclass(kw_only=True)
class TinyExecutor(Executor):
    """An executor that only holds credentials: the next backends' slots, exercised without a backend."""

    token: Any = None
    api_key: Any = None
    kubeconfig: Any = None
    endpoint: str = "https://api.example"

    backend: ClassVar[str] = "tiny"
    credential_slots: ClassVar[tuple[CredentialSlot, ...]] = (
        CredentialSlot("token", CredentialKind.BEARER_TOKEN, "token", "the API's bearer token", required=True),
        CredentialSlot("key", CredentialKind.API_KEY, "api_key", "an API key"),
        CredentialSlot("cluster", CredentialKind.KUBECONFIG, "kubeconfig", "the cluster's kubeconfig"),
    )

    def check(self) -> None:
        if self.token is not None and not isinstance(self.token, Secret):
            raise ConfigError("must be a run.Secret", path="TinyExecutor.token")

    def dryrun(self, job: Job) -> SubmitRequest:
        return SubmitRequest(self.backend, " ".join(job.command))

    def submit(self, job: Job) -> JobHandle:
        raise NotImplementedError

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        return {h: JobStatus(JobState.UNKNOWN) for h in handles}

    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        return iter(())

    def cancel(self, handle: JobHandle) -> None:
        pass


@dataclasses.dataclass(kw_only=True)
class TokenLocalExecutor(run.LocalExecutor):
    """A local executor that also takes a bearer token under a neutral field name: runs real jobs, so the
    orchestrator tests can follow a token from their credential stores to a finished job."""

    upstream: Any = None

    credential_slots: ClassVar[tuple[CredentialSlot, ...]] = (
        CredentialSlot("token", CredentialKind.BEARER_TOKEN, "upstream", "the API's bearer token"),)

    def submit(self, job: Job) -> JobHandle:
        # The job gets the token the way secrets reach jobs (its environment), so a test can prove it arrived.
        if self.upstream is not None:
            job.env = {**job.env, "UPSTREAM_TOKEN": Secret(self.upstream)}
        return super().submit(job)


def token_digest() -> str:
    """A job's proof that it got the token: the sha256 of ``$UPSTREAM_TOKEN``, never the value."""
    import hashlib

    return hashlib.sha256(os.environ.get("UPSTREAM_TOKEN", "").encode()).hexdigest()


def _stored(executor: Executor) -> str:
    """What nemorun writes of an executor (the store, XCom, a Prefect result): its redacted config, as JSON."""
    return json.dumps(redact(serialize.encode(executor, payload=True)))


# -- the values -------------------------------------------------------------------------------------------------------
def test_every_kind_has_one_value_class() -> None:
    assert set(CREDENTIAL_TYPES) == set(CredentialKind)
    assert all(cls.kind is kind for kind, cls in CREDENTIAL_TYPES.items())


def test_reprs_never_show_secret_values() -> None:
    values = [SSHCredential(host="login", user="me", job_dir="/j", private_key=KEY, passphrase="pass phrase 1"),
              BearerToken(TOKEN), APIKey(API_KEY, header="X-API-Key"), Kubeconfig(KUBECONFIG)]
    for value in values:
        text = repr(value) + str(value)
        assert REDACTED in text
        for secret in (KEY.splitlines()[1], "pass phrase 1", TOKEN, API_KEY, "kube-secret-token"):
            assert secret not in text, (type(value).__name__, text)
    assert "host='login'" in repr(values[0]) and "header='X-API-Key'" in repr(values[2])
    assert "passphrase=None" in repr(SSHCredential(host="h", user="u", job_dir="/j"))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SSHCredential(host="", user="me", job_dir="/j"), r"SSHCredential\.host: is empty"),
    (lambda: SSHCredential(host="h", user="me", job_dir=" "), r"SSHCredential\.job_dir: give the directory"),
    (lambda: SSHCredential(host="h", user="me", job_dir="/j", port=0), r"SSHCredential\.port: must be a port"),
    (lambda: SSHCredential(host="h", user="me", job_dir="/j", private_key="~/.ssh/id_ed25519"),
     r"SSHCredential\.private_key: not a private key: paste the content .* key_file"),
    (lambda: SSHCredential(host="h", user="me", job_dir="/j", host_key_policy="trust-all"),
     r"SSHCredential\.host_key_policy: must be one of 'strict', 'accept-new'"),
    (lambda: SSHCredential(host="h", user="me", job_dir="/j", timeout=0), r"SSHCredential\.timeout: must be a pos"),
    (lambda: BearerToken(""), r"BearerToken\.token: is empty"),
    (lambda: BearerToken("Bearer " + TOKEN), r"BearerToken\.token: give the token alone, without the 'Bearer "),
    (lambda: BearerToken(TOKEN + "\nsecond"), r"BearerToken\.token: must be one word"),
    (lambda: APIKey(API_KEY, header="X-API-Key:"), r"APIKey\.header: 'X-API-Key:' is not an HTTP header name"),
    (lambda: APIKey(None), r"APIKey\.key: must be a string, got NoneType"),
    (lambda: Kubeconfig("clusters: [\n"), r"Kubeconfig\.text: not a kubeconfig: invalid YAML at line"),
    (lambda: Kubeconfig("just: text"), r"Kubeconfig\.text: not a kubeconfig: it needs 'clusters' and 'contexts'"),
    (lambda: Kubeconfig(KUBECONFIG, context="prod"),
     r"Kubeconfig\.context: the kubeconfig has no context 'prod' \(its contexts: kind-admin, other\)"),
    (lambda: Kubeconfig(KUBECONFIG.replace("current-context: kind-admin", "")),
     r"Kubeconfig\.context: the kubeconfig sets no current-context: give context="),
])
def test_invalid_values_are_errors_naming_the_field(make, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        make()
    for secret in (TOKEN, API_KEY, "kube-secret-token"):
        assert secret not in str(info.value)


def test_ssh_credential_gives_a_tunnel_that_names_variables_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path))
    known = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTestsOnly000000000000000000"
    escaped = KEY.replace("\n", "\\n").strip()  # a key pasted into a JSON field, with literal \n sequences
    credential = SSHCredential(host="127.0.0.1", user="me", job_dir="/scratch/me", port=2222, private_key=escaped,
                               passphrase="pass phrase 1", known_hosts=known, source="conn-a", timeout=7)
    assert credential.private_key == KEY
    tunnel = credential.field_value()
    assert isinstance(tunnel, run.SSHTunnel)
    assert (tunnel.host, tunnel.user, tunnel.port, tunnel.job_dir, tunnel.timeout) == ("127.0.0.1", "me", 2222,
                                                                                       "/scratch/me", 7)
    assert tunnel.identity is None and tunnel.passphrase is None
    assert tunnel.identity_env == "NEMORUN_SECRET_CONN_A_PRIVATE_KEY" and os.environ[tunnel.identity_env] == KEY
    assert os.environ[tunnel.passphrase_env] == "pass phrase 1"
    with open(tunnel.known_hosts) as f:
        assert f.read() == known + "\n"
    assert tunnel.known_hosts.startswith(os.path.join(str(tmp_path), "known_hosts"))
    stored = json.dumps(serialize.encode(tunnel))
    assert KEY.splitlines()[1] not in stored and "pass phrase 1" not in stored and tunnel.identity_env in stored
    # the same login loaded again (another process) names the same variables; a key file path is used as it is
    assert credential.field_value().identity_env == tunnel.identity_env
    by_file = SSHCredential(host="h", user="u", job_dir="/j", key_file="~/.ssh/id_ed25519").field_value()
    assert by_file.identity == "~/.ssh/id_ed25519" and by_file.identity_env is None
    assert by_file.known_hosts == "~/.ssh/known_hosts"


def test_token_key_and_kubeconfig_values_are_secrets() -> None:
    assert BearerToken(f"  {TOKEN}\n").field_value() == TOKEN
    assert isinstance(BearerToken(TOKEN).field_value(), Secret)
    assert APIKey(API_KEY).field_value() == API_KEY and isinstance(APIKey(API_KEY).field_value(), Secret)
    import yaml

    value = Kubeconfig(KUBECONFIG).field_value()
    assert isinstance(value, Secret) and value == KUBECONFIG
    other = Kubeconfig(KUBECONFIG, context="other").field_value()
    assert yaml.safe_load(other)["current-context"] == "other"
    assert yaml.safe_load(other)["users"] == yaml.safe_load(KUBECONFIG)["users"]


# -- executors filled through with_credentials -------------------------------------------------------------------------
def test_an_executor_with_token_key_and_kubeconfig_slots_is_filled_and_stored_redacted() -> None:
    executor = TinyExecutor()
    filled = executor.with_credentials({"token": BearerToken(TOKEN), "key": APIKey(API_KEY),
                                        "cluster": Kubeconfig(KUBECONFIG)})
    assert executor.token is None  # a copy: the user's executor is untouched
    assert filled.token == TOKEN and isinstance(filled.token, Secret)
    assert filled.api_key == API_KEY and filled.kubeconfig == KUBECONFIG
    stored = _stored(filled)
    for secret in (TOKEN, API_KEY, "kube-secret-token"):
        assert secret not in stored
    data = json.loads(stored)
    # "token" and "api_key" are secret by their names, the kubeconfig field by its run.Secret value
    assert data["token"] == data["api_key"] == REDACTED and data["kubeconfig"] == {"_secret_": REDACTED}
    assert data["endpoint"] == "https://api.example"
    assert {TOKEN, API_KEY} <= set(secret_values(serialize.encode(filled, payload=True)))  # known to log scrubbers
    assert TOKEN not in repr(filled)


def test_wrong_slots_and_kinds_are_errors_naming_the_slot() -> None:
    with pytest.raises(ConfigError, match=r"credentials\.ssh: TinyExecutor has no credential slot 'ssh' \(its "
                                          r"slots: 'token', 'key', 'cluster'\)"):
        TinyExecutor().with_credentials({"ssh": BearerToken(TOKEN)})
    with pytest.raises(ConfigError, match=r"credentials\.token: slot 'token' of TinyExecutor takes a bearer_token "
                                          r"credential \(BearerToken\), got api_key"):
        TinyExecutor().with_credentials({"token": APIKey(API_KEY)})
    with pytest.raises(ConfigError, match=r"credentials\.key: .* takes a api_key credential \(APIKey\), got str"):
        TinyExecutor().with_credentials({"key": API_KEY})
    with pytest.raises(ConfigError, match=r"LocalExecutor has no credential slot 'ssh' \(its slots: none\)"):
        run.LocalExecutor().with_credentials({"ssh": SSHCredential(host="h", user="u", job_dir="/j")})


def test_slurm_takes_an_ssh_credential_in_its_tunnel(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path))
    slurm = run.SlurmExecutor(partition="debug", env_vars={"WANDB_API_KEY": TOKEN})
    filled = slurm.with_credentials({"ssh": SSHCredential(host="login", user="me", job_dir="/scratch/me",
                                                          private_key=KEY, source="unit")})
    assert isinstance(filled.tunnel, run.SSHTunnel) and filled.tunnel.job_dir == "/scratch/me"
    assert isinstance(slurm.tunnel, run.LocalTunnel)
    stored = _stored(filled)
    assert KEY.splitlines()[1] not in stored and TOKEN not in stored and "NEMORUN_SECRET_UNIT_PRIVATE_KEY" in stored
