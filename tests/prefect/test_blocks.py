"""nemorun_prefect.blocks: saved on and loaded from a real Prefect API, secrets kept out of what it stores and of
what a flow run leaves behind, registration by the CLI and by Prefect's collections entry point, and a flow that
runs a job on the real Slurm cluster over SSH with the key from a block."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

import nemorun_core as run
from nemorun_core.config import serialize
from nemorun_core.credentials import CredentialKind, CredentialSlot
from nemorun_core.errors import ConfigError
from nemorun_core.secrets import REDACTED, Secret, redact
from tests.integration import _tasks, services
from tests.prefect.test_artifacts import _artifacts

pytestmark = pytest.mark.prefect

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "sk-abcdefghijklmnopqrstuvwxyz012345"
SLUGS = frozenset({"nemorun-executor", "nemorun-ssh-cluster", "nemorun-bearer-token", "nemorun-api-key",
                   "nemorun-kubeconfig"})
# One typed executor block per backend the registry knows here: the built-ins and the echo fixture backend.
FORM_SLUGS = frozenset({"nemorun-local-executor", "nemorun-docker-executor", "nemorun-slurm-executor",
                        "nemorun-ray-executor", "nemorun-echo-executor"})
TOKEN = "tok-5e4d3c2b1a0918f7e6d5c4b3a2918070"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: kind, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: admin, user: {token: kube-token-0a1b2c3d4e5f60718293}}]
contexts: [{name: kind-admin, context: {cluster: kind, user: admin}}]
current-context: kind-admin
"""


@dataclasses.dataclass(kw_only=True)
class TokenLocalExecutor(run.LocalExecutor):
    """A local executor that also takes a bearer token and a kubeconfig, under neutral field names: the shape of the
    next HTTP and Kubernetes backends, whose slots the blocks fill without knowing the executor."""

    upstream: Any = None
    cluster_config: Any = None

    credential_slots: ClassVar[tuple[CredentialSlot, ...]] = (
        CredentialSlot("token", CredentialKind.BEARER_TOKEN, "upstream", "the API's bearer token"),
        CredentialSlot("cluster", CredentialKind.KUBECONFIG, "cluster_config", "the cluster's kubeconfig"),
    )


def secret_digest(name: str) -> str:
    """The sha256 of environment variable ``name`` in the job: proves it arrived without returning it."""
    return hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _document(name: str, slug: str, *, include_secrets: bool):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_block_document_by_name(name, slug, include_secrets=include_secrets)


def _files_containing(root: str, needle: str) -> list[str]:
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                if needle.encode() in f.read():
                    found.append(os.path.join(folder, name))
    return found


def _cluster_block(name: str, job_dir: str):
    from nemorun_prefect.blocks import NemorunSSHCluster

    ssh = services.ssh()
    with open(ssh.key) as f, open(ssh.known_hosts) as g:
        key_text, known_hosts = f.read(), g.read()
    NemorunSSHCluster(host=ssh.host, port=ssh.port, user=ssh.user, job_dir=job_dir, known_hosts=known_hosts,
                      private_key=key_text).save(name, overwrite=True)
    return NemorunSSHCluster.load(name), key_text, known_hosts


def _key_line(key_text: str) -> str:
    return key_text.splitlines()[1]  # a line of the key's body: never a header shared by other keys


# -- registration -----------------------------------------------------------------------------------------------------
def test_prefect_block_register_cli_registers_both_block_types(prefect_harness: None) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        # Start from a server without them (the server registers them at start, a save elsewhere in the session
        # too); all of them: a block type left behind would keep its schema without the references to the others.
        for slug in SLUGS | FORM_SLUGS | {"nemorun-job"}:
            try:
                client.delete_block_type(client.read_block_type_by_slug(slug).id)
            except ObjectNotFound:
                pass
        assert not SLUGS & {t.slug for t in client.read_block_types()}
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    prefect_cli = os.path.join(os.path.dirname(sys.executable), "prefect")
    proc = subprocess.run([prefect_cli, "block", "register", "-m", "nemorun_prefect.blocks"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from nemorun_prefect.blocks import EXECUTOR_FORMS

    # the 5 blocks, plus one typed executor block per backend of the registry
    assert f"Successfully registered {5 + len(EXECUTOR_FORMS)} blocks" in proc.stdout, proc.stdout
    with get_client(sync_client=True) as client:
        types = {t.slug: t for t in client.read_block_types()}
        assert SLUGS <= set(types) and FORM_SLUGS <= set(types)
        schema = client.get_most_recent_block_schema_for_block_type(types["nemorun-ssh-cluster"].id)
        secret_fields = {slug: set(client.get_most_recent_block_schema_for_block_type(types[slug].id)
                                   .fields["secret_fields"]) for slug in ("nemorun-bearer-token", "nemorun-api-key",
                                                                          "nemorun-kubeconfig")}
    assert {"private_key", "passphrase"} <= set(schema.fields["secret_fields"]), schema.fields["secret_fields"]
    assert secret_fields == {"nemorun-bearer-token": {"token"}, "nemorun-api-key": {"key"},
                             "nemorun-kubeconfig": {"kubeconfig"}}


def test_prefect_loads_the_blocks_through_the_collections_entry_point(tmp_path) -> None:
    # What a Prefect server does at start (load the collections, register every block class it then knows) and what
    # Block.load does for an unknown type, in a process that never imports nemorun_prefect itself (cwd elsewhere).
    code = ("from prefect.plugins import load_prefect_collections\n"
            "from prefect.blocks.core import Block\n"
            "from prefect.utilities.dispatch import get_registry_for_type\n"
            "print(type(load_prefect_collections().get('nemorun_prefect')).__name__)\n"
            "print(sorted(k for k in get_registry_for_type(Block) if k.startswith('nemorun')))\n"
            "print(Block.get_block_class_from_key('nemorun-ssh-cluster').__qualname__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["module", str(sorted(SLUGS | FORM_SLUGS | {"nemorun-job"})),
                                        "NemorunSSHCluster"], proc.stdout + proc.stderr


# -- the executor block ------------------------------------------------------------------------------------------------
def test_executor_block_round_trip_and_no_secret_in_the_api_or_a_task_run(prefect_harness: None, tmp_path) -> None:
    from prefect import flow

    from nemorun_prefect import NemorunExecutorBlock, submit_nemorun_task, wait_nemorun_task

    executor = run.LocalExecutor(env_vars={"WANDB_API_KEY": SECRET, "MODE": "fast"}, cancel_grace_s=2.0)
    NemorunExecutorBlock.from_executor(executor).save("local-with-secret", overwrite=True)
    assert NemorunExecutorBlock.load("local-with-secret").executor() == executor

    hidden = _document("local-with-secret", "nemorun-executor", include_secrets=False)
    assert SECRET not in hidden.model_dump_json()
    assert hidden.data["executor_config"]["env_vars"] == {"WANDB_API_KEY": "<redacted>", "MODE": "fast"}
    shown = _document("local-with-secret", "nemorun-executor", include_secrets=True)
    assert shown.data["secrets"] == {"env_vars": {"WANDB_API_KEY": SECRET}}  # stored (encrypted), not lost

    @flow
    def block_flow() -> tuple:
        loaded = NemorunExecutorBlock.load("local-with-secret").executor()
        ref = submit_nemorun_task(run.Partial(secret_digest, name="WANDB_API_KEY"), loaded, name="uses-secret")
        return ref, wait_nemorun_task(ref)

    state = block_flow(return_state=True)
    assert state.is_completed(), state
    ref, digest = state.result()
    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()  # the job got the value
    assert SECRET not in json.dumps(dataclasses.asdict(ref)) and SECRET not in repr(state.result())
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert artifacts and all(SECRET not in str(a.data) for a in artifacts)
    assert _files_containing(os.environ["NEMORUN_HOME"], SECRET) == []  # job files, records, logs


def test_split_and_merge_secrets_round_trip_at_any_depth() -> None:
    from nemorun_prefect.blocks import merge_secrets, split_secrets

    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    data = {"_target_": "x:Y", "_instance_": True, "env_vars": {"HF_TOKEN": "hf_x", "A": "1"},
            "items": [{"a": 1}, {"password": "p4ss", "b": 2}], "note": pem, "passphrase_env": "VAR", "empty_token": ""}
    public, secret = split_secrets(data)
    assert "hf_x" not in json.dumps(public) and "p4ss" not in json.dumps(public) and "AAAA" not in json.dumps(public)
    assert public["passphrase_env"] == "VAR" and public["env_vars"]["A"] == "1"  # names of variables stay
    assert secret == {"env_vars": {"HF_TOKEN": "hf_x"}, "items": {"1": {"password": "p4ss"}}, "note": pem}
    assert merge_secrets(public, secret) == data
    assert split_secrets({"a": 1}) == ({"a": 1}, None)


def test_a_secret_under_a_neutral_name_stays_out_of_the_block_config() -> None:
    from nemorun_prefect.blocks import NemorunExecutorBlock

    value = "line one\nline two\n"
    block = NemorunExecutorBlock.from_executor(run.LocalExecutor(env_vars={"MY_VALUE": run.Secret(value), "A": "1"}))
    assert value not in json.dumps(block.executor_config) and "line one" not in json.dumps(block.executor_config)
    assert block.executor_config["env_vars"]["MY_VALUE"] == {"_secret_": "<redacted>"}
    executor = block.executor()
    assert isinstance(executor.env_vars["MY_VALUE"], run.Secret) and executor.env_vars["MY_VALUE"] == value
    assert executor.env_vars["A"] == "1"


def test_bad_executor_blocks_are_clear_errors_naming_the_field() -> None:
    from nemorun_prefect.blocks import NemorunExecutorBlock, NemorunSSHCluster

    with pytest.raises(ConfigError, match=r"from_executor\.executor: expected a nemorun executor .* got str"):
        NemorunExecutorBlock.from_executor("slurm")
    with pytest.raises(ConfigError, match=r"executor_config: not an executor's config .*from_executor"):
        NemorunExecutorBlock(executor_config={"hidden_size": 3}).executor()
    with pytest.raises(ConfigError, match=r"executor_config: .*LocalTunnel is not a nemorun executor class"):
        NemorunExecutorBlock(executor_config={"_target_": "nemorun_core.tunnel.local:LocalTunnel",
                                              "_instance_": True, "job_dir": "/x"}).executor()
    with pytest.raises(ConfigError, match=r"executor_config: cannot import module 'no_such_module'.*install"):
        NemorunExecutorBlock(executor_config={"_target_": "no_such_module:Executor", "_instance_": True}).executor()
    slurm = NemorunExecutorBlock.from_executor(run.SlurmExecutor(partition="debug"))
    slurm.executor_config["tunnel"] = None  # as a config written by hand, with no tunnel
    with pytest.raises(ConfigError, match=r"ssh_cluster: this SlurmExecutor has no tunnel and the block no "
                                          r"ssh_cluster: set ssh_cluster"):
        slurm.executor()
    unsaved = NemorunSSHCluster(host="login", user="me", job_dir="/scratch")
    with pytest.raises(ConfigError, match=r"ssh_cluster: LocalExecutor takes no tunnel"):
        NemorunExecutorBlock.from_executor(run.LocalExecutor(), ssh_cluster=unsaved)
    with pytest.raises(ConfigError, match=r"ssh_cluster: save the NemorunSSHCluster block first"):
        NemorunExecutorBlock.from_executor(run.SlurmExecutor(partition="debug"), ssh_cluster=unsaved)
    with pytest.raises(ConfigError, match=r"private_key: not a private key: paste the content of the key file"):
        NemorunSSHCluster(host="login", user="me", job_dir="/scratch", private_key="~/.ssh/id_ed25519").tunnel()
    with pytest.raises(ValidationError, match="host_key_policy"):
        NemorunSSHCluster(host="login", user="me", job_dir="/scratch", host_key_policy="trust-all")


# -- credentials blocks of the other kinds -----------------------------------------------------------------------------
def test_credentials_blocks_fill_slots_by_kind_by_reference_and_no_secret_is_stored(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import submit_nemorun_task, wait_nemorun_task
    from nemorun_prefect.blocks import NemorunBearerToken, NemorunExecutorBlock, NemorunKubeconfig

    NemorunBearerToken(token="tok-first-000000000000000000000000").save("ci-token", overwrite=True)
    NemorunKubeconfig(kubeconfig=KUBECONFIG).save("ci-kube", overwrite=True)
    stale = "stale-token-value-0123456789"  # what the executor held when saved: replaced by the block's
    NemorunExecutorBlock.from_executor(
        TokenLocalExecutor(upstream=Secret(stale), cancel_grace_s=2.0),
        credentials={"token": NemorunBearerToken.load("ci-token"), "cluster": NemorunKubeconfig.load("ci-kube")},
    ).save("ci-token-exec", overwrite=True)
    NemorunBearerToken(token=TOKEN).save("ci-token", overwrite=True)  # rotated: one block edit reaches every user

    for include_secrets in (False, True):  # the executor block holds references only, never a copy
        doc = _document("ci-token-exec", "nemorun-executor", include_secrets=include_secrets)
        text = doc.model_dump_json()
        assert TOKEN not in text and "kube-token-" not in text and stale not in text
        assert doc.data["credentials"] == {"token": "nemorun-bearer-token/ci-token",
                                           "cluster": "nemorun-kubeconfig/ci-kube"}
        assert doc.data["executor_config"]["upstream"] is None and doc.data["executor_config"]["cluster_config"] is None
    assert TOKEN not in _document("ci-token", "nemorun-bearer-token", include_secrets=False).model_dump_json()
    assert _document("ci-token", "nemorun-bearer-token", include_secrets=True).data["token"] == TOKEN
    assert "kube-token-" not in _document("ci-kube", "nemorun-kubeconfig", include_secrets=False).model_dump_json()

    executor = NemorunExecutorBlock.load("ci-token-exec").executor()
    assert isinstance(executor, TokenLocalExecutor) and executor.cancel_grace_s == 2.0
    assert executor.upstream == TOKEN and isinstance(executor.upstream, Secret)
    assert executor.cluster_config == KUBECONFIG and isinstance(executor.cluster_config, Secret)
    stored = redact(serialize.encode(executor, payload=True))
    assert stored["upstream"] == stored["cluster_config"] == {"_secret_": REDACTED}
    assert TOKEN not in json.dumps(stored) and "kube-token-" not in json.dumps(stored)

    @flow
    def token_flow() -> tuple:
        loaded = NemorunExecutorBlock.load("ci-token-exec").executor()
        ref = submit_nemorun_task(run.Partial(_tasks.add, a=1, b=2), loaded, name="with-token")
        return ref, wait_nemorun_task(ref)

    state = token_flow(return_state=True)
    assert state.is_completed(), state
    ref, value = state.result()
    assert value == 3
    ref_json = json.dumps(dataclasses.asdict(ref))
    assert TOKEN not in ref_json and "kube-token-" not in ref_json and REDACTED in ref_json
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert artifacts and all(TOKEN not in str(a.data) and "kube-token-" not in str(a.data) for a in artifacts)
    assert _files_containing(os.environ["NEMORUN_HOME"], TOKEN) == []
    assert _files_containing(os.environ["NEMORUN_HOME"], "kube-token-") == []


def test_credentials_that_do_not_fit_their_slot_are_errors_naming_it(prefect_harness: None) -> None:
    from nemorun_prefect.blocks import NemorunBearerToken, NemorunExecutorBlock, NemorunKubeconfig, NemorunSSHCluster

    NemorunBearerToken(token=TOKEN).save("ci-fit-token", overwrite=True)
    NemorunKubeconfig(kubeconfig=KUBECONFIG).save("ci-fit-kube", overwrite=True)
    token, kube = NemorunBearerToken.load("ci-fit-token"), NemorunKubeconfig.load("ci-fit-kube")
    with pytest.raises(ConfigError, match=r"credentials\.token: slot 'token' of TokenLocalExecutor takes a "
                                          r"bearer_token credential: give a saved NemorunBearerToken block, not "
                                          r"NemorunKubeconfig"):
        NemorunExecutorBlock.from_executor(TokenLocalExecutor(), credentials={"token": kube})
    with pytest.raises(ConfigError, match=r"credentials\.tokn: TokenLocalExecutor has no credential slot 'tokn' "
                                          r"\(its slots: 'token', 'cluster'\)"):
        NemorunExecutorBlock.from_executor(TokenLocalExecutor(), credentials={"tokn": token})
    with pytest.raises(ConfigError, match=r"credentials\.token: LocalExecutor has no credential slot 'token' \(its "
                                          r"slots: none\)"):
        NemorunExecutorBlock.from_executor(run.LocalExecutor(), credentials={"token": token})
    with pytest.raises(ConfigError, match=r"credentials\.token: save the NemorunBearerToken block first"):
        NemorunExecutorBlock.from_executor(TokenLocalExecutor(), credentials={"token": NemorunBearerToken(token=TOKEN)})
    cluster = NemorunSSHCluster(host="login", user="me", job_dir="/scratch")
    with pytest.raises(ConfigError, match=r"ssh_cluster: the 'ssh' slot is given twice"):
        NemorunExecutorBlock.from_executor(run.SlurmExecutor(partition="debug"), ssh_cluster=cluster,
                                           credentials={"ssh": cluster})

    config = NemorunExecutorBlock.from_executor(TokenLocalExecutor()).executor_config
    # references as stored: to a block of another kind, to no block, and not a reference at all
    with pytest.raises(ConfigError, match=r"credentials\.token: slot 'token' .* not NemorunKubeconfig"):
        NemorunExecutorBlock(executor_config=config, credentials={"token": "nemorun-kubeconfig/ci-fit-kube"}).executor()
    with pytest.raises(ConfigError, match=r"credentials\.token: cannot load the credentials block "
                                          r"'nemorun-bearer-token/ci-gone'.*save it again"):
        NemorunExecutorBlock(executor_config=config, credentials={"token": "nemorun-bearer-token/ci-gone"}).executor()
    with pytest.raises(ConfigError, match=r"credentials\.token: 'ci-fit-token' is not a block reference: give "
                                          r"'block-type-slug/block-name'"):
        NemorunExecutorBlock(executor_config=config, credentials={"token": "ci-fit-token"}).executor()
    # the blocks check their own values, naming their own fields, and never echo a secret
    with pytest.raises(ConfigError, match=r"NemorunBearerToken\.token: give the token alone, without the 'Bearer "):
        NemorunBearerToken(token=f"Bearer {TOKEN}").credential()
    with pytest.raises(ConfigError, match=r"NemorunKubeconfig\.kubeconfig: not a kubeconfig") as info:
        NemorunKubeconfig(kubeconfig="token: kube-token-0a1b2c3d4e5f60718293").credential()
    assert "kube-token-" not in str(info.value)
    with pytest.raises(ConfigError, match=r"NemorunKubeconfig\.context: the kubeconfig has no context 'prod'"):
        NemorunKubeconfig(kubeconfig=KUBECONFIG, context="prod").credential()


# -- the SSH cluster block, for real -----------------------------------------------------------------------------------
@pytest.mark.ssh
def test_cluster_block_keeps_the_key_secret_and_its_tunnel_only_a_variable_name(prefect_harness: None) -> None:
    cluster, key_text, known_hosts = _cluster_block("ci-login", services.slurm().job_dir)
    line = _key_line(key_text)
    hidden = _document("ci-login", "nemorun-ssh-cluster", include_secrets=False)
    assert line not in hidden.model_dump_json() and hidden.data["private_key"] != key_text
    assert _document("ci-login", "nemorun-ssh-cluster", include_secrets=True).data["private_key"] == key_text

    tunnel = cluster.tunnel()
    assert tunnel.identity is None and os.environ[tunnel.identity_env] == key_text
    assert tunnel.identity_env.startswith("NEMORUN_SECRET_") and line not in json.dumps(serialize.encode(tunnel))
    with open(tunnel.known_hosts) as f:
        assert f.read() == known_hosts  # the known_hosts text became a file for paramiko
    assert tunnel.run("echo logged in as $(id -un)").stdout.strip() == f"logged in as {services.ssh().user}"

    # credentials={"ssh": ...} is ssh_cluster= under the slot's name: the same block reference, the same tunnel
    from nemorun_prefect.blocks import NemorunExecutorBlock

    block = NemorunExecutorBlock.from_executor(run.SlurmExecutor(partition="debug"), credentials={"ssh": cluster})
    assert block.ssh_cluster is cluster and block.credentials == {} and block.executor_config["tunnel"] is None
    filled = block.executor().tunnel
    assert isinstance(filled, run.SSHTunnel) and filled.identity_env == tunnel.identity_env


@pytest.mark.slurm
@pytest.mark.ssh
def test_flow_runs_a_slurm_job_with_the_key_from_the_cluster_block(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import NemorunExecutorBlock, submit_nemorun_task, wait_nemorun_task

    slurm = services.slurm()
    cluster, key_text, _ = _cluster_block("ci-slurm-login", slurm.job_dir)
    executor = run.SlurmExecutor(partition=slurm.partition, account=slurm.account, python=slurm.python,
                                 time="00:05:00", env_vars={"PYTHONPATH": REPO, "WANDB_API_KEY": SECRET})
    NemorunExecutorBlock.from_executor(executor, ssh_cluster=cluster).save("ci-slurm", overwrite=True)
    stored = _document("ci-slurm", "nemorun-executor", include_secrets=False)
    assert stored.block_document_references["ssh_cluster"]["block_document"]["name"] == "ci-slurm-login"
    assert stored.data["executor_config"]["tunnel"] is None
    assert _key_line(key_text) not in _document("ci-slurm", "nemorun-executor", include_secrets=False).model_dump_json()

    @flow
    def slurm_flow() -> tuple:
        loaded = NemorunExecutorBlock.load("ci-slurm").executor()
        ref = submit_nemorun_task(run.Partial(_tasks.add, a=20, b=22), loaded, name="add")
        return ref, wait_nemorun_task(ref)

    state = slurm_flow(return_state=True)
    assert state.is_completed(), state
    ref, value = state.result()
    assert value == 42 and ref.handle["backend"] == "slurm"
    tunnel = ref.executor["tunnel"]
    assert tunnel["identity"] is None and tunnel["identity_env"].startswith("NEMORUN_SECRET_")
    ref_json = json.dumps(dataclasses.asdict(ref))
    assert _key_line(key_text) not in ref_json and SECRET not in ref_json
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert artifacts and all(_key_line(key_text) not in str(a.data) and SECRET not in str(a.data) for a in artifacts)
    assert _files_containing(os.environ["NEMORUN_HOME"], _key_line(key_text)) == []
    # ... nor on the cluster, in the job's directory (the secret env value travels on the submit's stdin)
    remote = cluster.tunnel().run(f"grep -rlF -e {SECRET} {ref.handle['job_dir']}", check=False)
    assert remote.exit_code == 1 and remote.stdout == "", remote  # 1: searched, nothing found (2 would be an error)


# -- the blocks in Prefect's UI: logo, documentation link, descriptions, typed executor forms ---------------------------
_CODE_SPAN = r"(`+)(.+?)\1"


def _renders(description: str) -> bool:
    """Whether Prefect's UI shows all of ``description``: it lexes it as Markdown and renders an HTML token through
    a sanitizer (``<redacted>`` would vanish), while a code span shows literally. So: no tag outside code spans."""
    import re

    return not re.search(r"<[A-Za-z!/][^<>]*>", re.sub(_CODE_SPAN, "", description, flags=re.DOTALL))


def _descriptions(schema: dict) -> list[tuple[str, str]]:
    found = [(name, p.get("description", "")) for name, p in schema.get("properties", {}).items()]
    for definition in schema.get("definitions", {}).values():
        found += _descriptions(definition)
    return found


def _server_schemas() -> dict[str, Any]:
    from prefect import get_client

    from nemorun_prefect import blocks, jobs

    for cls in (*blocks.CREDENTIAL_BLOCKS.values(), blocks.NemorunExecutorBlock, *blocks.EXECUTOR_FORMS.values(),
                jobs.NemorunJob):
        cls.register_type_and_schema()
    with get_client(sync_client=True) as client:
        types = {t.slug: t for t in client.read_block_types() if t.slug.startswith("nemorun")}
        return {slug: (t, client.get_most_recent_block_schema_for_block_type(t.id)) for slug, t in types.items()}


def test_every_block_type_has_the_logo_the_docs_link_and_descriptions_that_render(prefect_harness: None) -> None:
    import re

    from nemorun_prefect.blocks import DOCS_URL, LOGO_URL

    schemas = _server_schemas()
    assert SLUGS | FORM_SLUGS | {"nemorun-job"} <= set(schemas)
    for slug, (block_type, schema) in schemas.items():
        assert str(block_type.logo_url) == LOGO_URL and str(block_type.documentation_url) == DOCS_URL, slug
        assert block_type.description and _renders(block_type.description), (slug, block_type.description)
        for name, description in _descriptions(schema.fields):
            assert description, f"{slug}.{name} has no description"
            assert _renders(description), f"{slug}.{name}: {description!r} would lose text in the UI"
    executor_config = schemas["nemorun-executor"][1].fields["properties"]["executor_config"]["description"]
    assert "`<redacted>`" in executor_config
    assert not _renders("replaced by '<redacted>'")  # the check itself catches what the issue saw
    # The links point into this repository: the logo file is shipped, the anchor is a heading of docs/prefect.md.
    assert LOGO_URL.endswith("/main/docs/assets/nemorun-logo.svg")
    with open(os.path.join(REPO, "docs", "assets", "nemorun-logo.svg")) as f:
        assert f.read().lstrip().startswith("<svg")
    page, _, anchor = DOCS_URL.partition("#")
    assert page.endswith("/blob/main/docs/prefect.md")
    with open(os.path.join(REPO, "docs", "prefect.md")) as f:
        headings = [line[3:].strip() for line in f if line.startswith("## ")]
    slugs = [re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", h.lower())) for h in headings]  # GitHub's anchor rule
    assert anchor in slugs, (anchor, slugs)


def test_the_slurm_executor_block_is_a_typed_form_as_the_server_stores_it(prefect_harness: None) -> None:
    import dataclasses as dc

    schema = _server_schemas()["nemorun-slurm-executor"][1].fields
    props = schema["properties"]
    assert "executor_config" not in props  # no raw JSON editor for a Slurm executor
    settings = {f.name for f in dc.fields(run.SlurmExecutor) if f.init}
    assert settings - {"tunnel"} <= set(props) and {"ssh", "secrets"} <= set(props)
    assert props["partition"]["title"] == "Partition" and props["partition"]["type"] == "string"
    # An Optional setting is its type alone: no "null" choice for the UI to show before the field can be typed in
    plain_optional = [n for n, f in {f.name: f for f in dc.fields(run.SlurmExecutor)}.items()
                      if n in props and f.default is None and n not in {"tunnel", "packager", "launcher"}]
    assert plain_optional and not [n for n in plain_optional if "anyOf" in props[n]], props
    # From the class's Args; a line describing several settings says which, so the form does not repeat a sentence
    assert props["partition"]["description"] == "account, partition, qos: where the job is charged and queued."
    # RST literals (``x``) become Markdown code spans (`x`): the UI shows them as code, not with doubled backticks
    assert props["time"]["description"].startswith('wall-clock limit (`"HH:MM:SS"`, `"D-HH:MM:SS"` or minutes)')
    assert not any("``" in p.get("description", "") for p in props.values()), props
    # Every field has its own title in the form (the SSH credential field included)
    executor = _server_schemas()["nemorun-executor"][1].fields["properties"]
    assert executor["ssh_cluster"]["title"] == "SSH cluster (ssh credential slot)"
    assert props["nodes"]["type"] == "integer" and props["nodes"]["default"] == 1
    assert props["exclusive"]["type"] == "boolean" and props["exclusive"]["default"] is False
    assert props["env_vars"]["type"] == "object" and props["env_vars"]["title"] == "Env Vars"
    assert props["srun_args"]["type"] == "array" and props["srun_args"]["items"] == {"type": "string"}
    assert props["time"]["description"].startswith("wall-clock limit")
    nested = props["heterogeneous"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["definitions"][nested]["properties"]) >= {"nodes", "partition", "mem"}
    assert schema["block_schema_references"]["ssh"]["block_type_slug"] == "nemorun-ssh-cluster"
    assert {"secrets.*", "ssh.private_key"} <= set(schema["secret_fields"])
    # a third-party backend (the echo fixture, registered by entry point) gets its form the same way
    echo = _server_schemas()["nemorun-echo-executor"][1].fields
    assert {"banner", "limits", "secrets"} <= set(echo["properties"])
    assert echo["properties"]["banner"]["default"] == "echo backend"
    assert "time_limit_s" in echo["definitions"][echo["properties"]["limits"]["$ref"].rsplit("/", 1)[-1]]["properties"]


def test_typed_executor_blocks_round_trip_with_their_secrets_encrypted(prefect_harness: None) -> None:
    from nemorun_echo_backend.executor import EchoExecutor, EchoLimits

    from nemorun_core.executors.slurm.executor import SlurmResources
    from nemorun_prefect.blocks import (NemorunEchoExecutor, NemorunExecutorBlock, NemorunLocalExecutor,
                                        NemorunSlurmExecutor, executor_block)

    cases = {
        "nemorun-local-executor": run.LocalExecutor(env_vars={"WANDB_API_KEY": SECRET, "MODE": "fast"},
                                                    launcher=run.Torchrun(), cancel_grace_s=2.0),
        "nemorun-slurm-executor": run.SlurmExecutor(partition="debug", nodes=2, srun_args=["--mpi=pmix"],
                                                    heterogeneous=[SlurmResources(nodes=1, mem="8G")],
                                                    env_vars={"HF_TOKEN": SECRET},
                                                    tunnel=run.LocalTunnel(job_dir="/scratch/ci")),
        "nemorun-echo-executor": EchoExecutor(banner="hi", limits=EchoLimits(time_limit_s=30)),
        "nemorun-docker-executor": run.DockerExecutor(container_image="python:3.11-slim", env_vars={"A": "1"}),
    }
    for slug, executor in cases.items():
        block = executor_block(executor)
        assert block.get_block_type_slug() == slug
        block.save(f"ci-form-{slug}", overwrite=True)
        hidden = _document(f"ci-form-{slug}", slug, include_secrets=False)
        assert SECRET not in hidden.model_dump_json(), slug
        loaded = type(block).load(f"ci-form-{slug}")
        assert loaded.executor() == executor, slug
    stored = _document("ci-form-nemorun-local-executor", "nemorun-local-executor", include_secrets=False).data
    assert stored["env_vars"] == {"WANDB_API_KEY": REDACTED, "MODE": "fast"} and stored["cancel_grace_s"] == 2.0
    shown = _document("ci-form-nemorun-local-executor", "nemorun-local-executor", include_secrets=True).data
    assert shown["secrets"] == {"env_vars": {"WANDB_API_KEY": SECRET}}  # stored (encrypted), not lost
    slurm = _document("ci-form-nemorun-slurm-executor", "nemorun-slurm-executor", include_secrets=False).data
    assert slurm["partition"] == "debug" and slurm["nodes"] == 2 and slurm["heterogeneous"][0]["mem"] == "8G"
    assert isinstance(NemorunSlurmExecutor.load("ci-form-nemorun-slurm-executor").executor().tunnel, run.LocalTunnel)
    assert NemorunEchoExecutor.load("ci-form-nemorun-echo-executor").executor().limits.time_limit_s == 30
    # a form filled as the UI does (plain values; the secret in `secrets`) builds the executor
    NemorunLocalExecutor(env_vars={"MODE": "ui"}, secrets={"env_vars": {"API_TOKEN": TOKEN}}).save("ci-form-ui",
                                                                                                  overwrite=True)
    built = NemorunLocalExecutor.load("ci-form-ui").executor()
    assert built.env_vars == {"MODE": "ui", "API_TOKEN": TOKEN}
    # a subclass has settings no form has: the JSON block holds it
    assert isinstance(executor_block(TokenLocalExecutor()), NemorunExecutorBlock)


def test_typed_executor_block_errors_name_the_field(prefect_harness: None) -> None:
    from nemorun_prefect.blocks import NemorunLocalExecutor, NemorunSlurmExecutor, NemorunSSHCluster

    with pytest.raises(ConfigError, match=r"NemorunSlurmExecutor\.from_executor\.executor: NemorunSlurmExecutor "
                                          r"holds a SlurmExecutor, got LocalExecutor; use .*executor_block"):
        NemorunSlurmExecutor.from_executor(run.LocalExecutor())
    unsaved = NemorunSSHCluster(host="login", user="me", job_dir="/scratch")
    with pytest.raises(ConfigError, match=r"NemorunSlurmExecutor\.ssh: save the NemorunSSHCluster block first"):
        NemorunSlurmExecutor.from_executor(run.SlurmExecutor(partition="debug"), credentials={"ssh": unsaved})
    with pytest.raises(ConfigError, match=r"NemorunLocalExecutor\.from_executor\.credentials\.ssh: LocalExecutor has "
                                          r"no credential slot 'ssh' \(its slots: none\)"):
        NemorunLocalExecutor.from_executor(run.LocalExecutor(), credentials={"ssh": unsaved})
    with pytest.raises(ConfigError, match=r"SlurmExecutor\.nodes: must be an int >= 1"):
        NemorunSlurmExecutor(partition="debug", nodes=0).executor()
    with pytest.raises(ValidationError, match=r"NemorunLocalExecutor has no settings \['partition'\]"):
        NemorunLocalExecutor(partition="debug")
    # A field the form left blank is the setting's default (None), not an empty partition sbatch would refuse
    blank = NemorunSlurmExecutor(partition="  ", account="")
    assert blank.partition is None and blank.account is None
