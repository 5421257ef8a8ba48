"""NemorunSSHHook: Airflow ``ssh`` connections (AIRFLOW_CONN_<ID> JSON) as SSH tunnels, against the real SSH server."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from nemorun_airflow.hooks import ConnectionConfigError, NemorunSSHHook
from nemorun_core.config import serialize
from nemorun_core.tunnel.base import TunnelError
from tests.integration import services

pytestmark = pytest.mark.airflow


def _connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "ssh", **fields}))


def _host_key(known_hosts: str) -> str:
    """``"ssh-ed25519 AAAA..."``: a known_hosts line without its host names, as users paste it."""
    with open(known_hosts) as f:
        return " ".join(f.readline().split()[1:3])


@pytest.mark.ssh
def test_connection_with_key_text_and_host_key_gives_a_working_tunnel_that_holds_no_secret(monkeypatch) -> None:
    svc = services.ssh()
    with open(svc.key) as f:
        key_text = f.read()
    _connection(monkeypatch, "nr_login", host=svc.host, port=svc.port, login=svc.user,
                extra={"private_key": key_text, "host_key": _host_key(svc.known_hosts), "job_dir": "~/nr-jobs",
                       "conn_timeout": 10, "compress": "false"})
    hook = NemorunSSHHook("nr_login")
    tunnel = hook.get_tunnel()
    assert tunnel.run("echo hello from $USER").stdout.strip() == f"hello from {svc.user}"
    assert (tunnel.host, tunnel.port, tunnel.user, tunnel.job_dir) == (svc.host, svc.port, svc.user, "~/nr-jobs")
    assert tunnel.host_key_policy == "strict" and tunnel.timeout == 10 and tunnel.compression is False
    # the key stays in this process's environment, under a name derived from the connection id only
    stored = json.dumps(serialize.encode(tunnel))
    assert tunnel.identity_env and tunnel.identity_env in stored
    assert key_text.strip().splitlines()[1] not in stored and "PRIVATE KEY" not in stored
    assert os.environ[tunnel.identity_env].strip() == key_text.strip()
    # another process (the triggerer) rebuilding it gets the same names, hence the same pooled connection
    again = asyncio.run(NemorunSSHHook("nr_login").aget_tunnel(job_dir="/other"))
    assert (again.identity_env, again.known_hosts, again.job_dir) == (tunnel.identity_env, tunnel.known_hosts,
                                                                       "/other")
    assert hook.test_connection() == (True, f"connected to {tunnel.address}")


@pytest.mark.ssh
def test_host_keys_are_checked(monkeypatch) -> None:
    svc = services.ssh()
    _connection(monkeypatch, "nr_wrong_key", host=svc.host, port=svc.port, login=svc.user,
                extra={"key_file": svc.key, "host_key": _host_key(svc.wrong_known_hosts), "job_dir": "/tmp"})
    with pytest.raises(TunnelError, match="has CHANGED"):
        NemorunSSHHook("nr_wrong_key").get_tunnel().run("true")

    # no_host_key_check learns the key on first use (accept-new), into a file of its own
    _connection(monkeypatch, "nr_tofu", host=svc.host, port=svc.port, login=svc.user,
                extra={"key_file": svc.key, "no_host_key_check": True, "job_dir": "/tmp"})
    tunnel = NemorunSSHHook("nr_tofu").get_tunnel()
    assert tunnel.host_key_policy == "accept-new"
    assert tunnel.known_hosts == os.path.join(os.environ["NEMORUN_HOME"], "airflow", "known_hosts", "nr_tofu")
    assert tunnel.run("echo ok").stdout.strip() == "ok"
    with open(tunnel.known_hosts) as f:
        assert _host_key(svc.known_hosts) in f.read()

    ok, message = _refused(monkeypatch, svc)
    assert not ok and "refused authentication" in message


def _refused(monkeypatch, svc) -> tuple[bool, str]:
    _connection(monkeypatch, "nr_refused", host=svc.host, port=svc.port, login=svc.user,
                extra={"key_file": svc.bad_key, "known_hosts": svc.known_hosts, "job_dir": "/tmp"})
    return NemorunSSHHook("nr_refused").test_connection()


@pytest.mark.parametrize(("fields", "message"), [
    ({"password": "hunter2", "extra": {"job_dir": "/x"}},
     "connection 'nr_bad' authenticates with a password, which nemorun's SSH tunnel does not support .* 'private_key'"),
    ({"extra": {}}, "connection 'nr_bad' has no extra 'job_dir'"),
    ({"extra": {"job_dir": "/x", "key_fiel": "/k"}}, "connection 'nr_bad': unknown extra 'key_fiel'; did you mean "
                                                     "'key_file'"),
    ({"extra": {"job_dir": "/x", "host_key": "not a key"}}, "connection 'nr_bad': extra 'host_key' is not a public"),
    ({"extra": {"job_dir": "/x", "no_host_key_check": "maybe"}}, "extra 'no_host_key_check' must be true or false"),
    ({"extra": {"job_dir": "/x", "conn_timeout": "soon"}}, "extra 'conn_timeout' must be a positive number"),
    ({"extra": {"job_dir": "/x", "allow_host_key_change": True}}, "'allow_host_key_change' is not supported"),
    ({"login": "", "extra": {"job_dir": "/x"}}, "connection 'nr_bad' has no login"),
])
def test_unusable_connections_are_clear_errors(monkeypatch, fields, message) -> None:
    _connection(monkeypatch, "nr_bad", **{"host": "login.example", "login": "me", **fields})
    with pytest.raises(ConnectionConfigError, match=message):
        NemorunSSHHook("nr_bad").get_tunnel()


def test_a_connection_saved_by_the_form_works_like_one_written_as_json(monkeypatch) -> None:
    # The form saves every field it shows: empty ones as null or "", the check box as a JSON bool, and older forms
    # under prefixed names (extra__ssh__<name>). Each means what the plain extra means; an empty one is absent.
    _connection(monkeypatch, "nr_form", host="login.example", login="me", port=2222,
                extra={"extra__ssh__key_file": "/keys/id_ed25519", "private_key": None, "private_key_passphrase": "",
                       "host_key": "", "known_hosts": "/etc/ssh/known", "no_host_key_check": False,
                       "job_dir": "/scratch/me/nr", "conn_timeout": None, "keepalive_interval": ""})
    tunnel = NemorunSSHHook("nr_form").get_tunnel()
    assert (tunnel.host, tunnel.port, tunnel.user, tunnel.job_dir) == ("login.example", 2222, "me", "/scratch/me/nr")
    assert tunnel.known_hosts == "/etc/ssh/known" and tunnel.host_key_policy == "strict"
    assert "/keys/id_ed25519" in json.dumps(serialize.encode(tunnel))  # the key file, named by its path
    # a field the form does not know is still named when misspelt, prefixed or not
    _connection(monkeypatch, "nr_form_bad", host="login.example", login="me",
                extra={"job_dir": "/x", "extra__ssh__key_fiel": "/k"})
    with pytest.raises(ConnectionConfigError, match="unknown extra 'key_fiel'; did you mean 'key_file'"):
        NemorunSSHHook("nr_form_bad").get_tunnel()


def test_missing_connection_names_it() -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="nr_nowhere"):
        NemorunSSHHook("nr_nowhere").get_tunnel()


def test_airflow_lists_the_hook_for_ssh_connections(airflow_cli) -> None:
    proc = airflow_cli("providers", "hooks", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    hooks = {h["connection_type"]: h for h in json.loads(proc.stdout)}
    assert hooks["ssh"]["class"] == "nemorun_airflow.hooks.NemorunSSHHook"
    assert hooks["ssh"]["package_name"] == "nemorun" and hooks["ssh"]["conn_id_attribute_name"] == "ssh_conn_id"


# -- connections={slot: conn_id}, resolved by connection type ----------------------------------------------------------
def _conn(monkeypatch, conn_id: str, conn_type: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, **fields}))


def test_token_key_and_kubeconfig_connections_fill_slots_by_type_and_stay_out_of_kwargs(monkeypatch, tmp_path) -> None:
    from nemorun_airflow.hooks import resolve_credentials
    from nemorun_airflow.triggers import NemorunJobTrigger
    from nemorun_core.executors.base import JobHandle
    from nemorun_core.experiment.jobref import executor_config
    from nemorun_core.secrets import Secret
    from tests.unit.test_credentials import API_KEY, KUBECONFIG, TOKEN, TinyExecutor

    _conn(monkeypatch, "nr_token", "nemorun_token", password=TOKEN)
    _conn(monkeypatch, "nr_key", "nemorun_token", password=API_KEY, extra={"header": "X-API-Key"})
    _conn(monkeypatch, "nr_kube", "nemorun_kubeconfig", password=KUBECONFIG, extra={"context": "other"})
    connections = {"token": "nr_token", "key": "nr_key", "cluster": "nr_kube"}
    executor = TinyExecutor()
    filled = resolve_credentials(executor, connections)
    assert executor.token is None and resolve_credentials(executor, None) is executor
    assert filled.token == TOKEN and filled.api_key == API_KEY
    assert all(isinstance(v, Secret) for v in (filled.token, filled.api_key, filled.kubeconfig))
    assert "current-context: other" in filled.kubeconfig
    # what goes to XCom, trigger kwargs and the store: connection ids and redacted values, never the secrets
    config = executor_config(filled)
    trigger = NemorunJobTrigger(handle=JobHandle.create("tiny", "1", "k/t/0", str(tmp_path)).to_dict(),
                                executor=config, connections=connections)
    kwargs = json.dumps(trigger.serialize()[1])
    for secret in (TOKEN, API_KEY, "kube-secret-token"):
        assert secret not in kwargs and secret not in json.dumps(config)
    assert trigger.serialize()[1]["connections"] == connections and "<redacted>" in kwargs
    # the hooks read the same connections (Test button: fields checked, no backend called)
    from nemorun_airflow.hooks import NemorunKubeconfigHook, NemorunTokenHook

    assert NemorunTokenHook("nr_key").test_connection() == (True, "the token is set and well-formed")
    assert NemorunKubeconfigHook("nr_kube").get_credential().context == "other"


def test_an_operator_resolves_a_token_connection_from_the_metadata_database(airflow_db, capfd) -> None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    from tests.airflow._dagrun import run_dag, states, write_dag, xcoms
    from tests.unit.test_credentials import TOKEN

    with create_session() as session:  # this process's fernet key, as the UI or the CLI of a deployment would
        session.query(Connection).filter(Connection.conn_id == "nr_db_token").delete()
        session.add(Connection(conn_id="nr_db_token", conn_type="nemorun_token", password=TOKEN))
    dag = write_dag("nr_db_token", """
from tests.unit.test_credentials import TokenLocalExecutor, token_digest
with DAG("nr_db_token", schedule=None, start_date=START) as dag:
    NemorunOperator(task_id="with_token", task=run.Partial(token_digest),
                    executor=TokenLocalExecutor(cancel_grace_s=2.0), connections={"token": "nr_db_token"},
                    poll_interval=0.2)
""")
    dr = run_dag(dag)
    out = capfd.readouterr()
    assert states(dr) == {"with_token": "success"}, (out.out + out.err)[-3000:]
    value = xcoms(dr)["with_token"]
    import hashlib

    assert value["result"] == hashlib.sha256(TOKEN.encode()).hexdigest()  # the job got the connection's token
    assert TOKEN not in json.dumps(value) and TOKEN not in out.out + out.err
    home = os.environ["NEMORUN_HOME"]
    for folder, _, files in os.walk(home):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert TOKEN.encode() not in f.read(), os.path.join(folder, name)


@pytest.mark.parametrize(("conns", "slots", "message"), [
    ({"nr_kube2": ("nemorun_kubeconfig", {"password": "{}"})}, {"token": "nr_kube2"},
     r"slot 'token' takes a bearer_token credential, but connection 'nr_kube2' is of type 'nemorun_kubeconfig': "
     r"give a connection of type 'nemorun_token'"),
    ({"nr_tok2": ("nemorun_token", {"password": "x" * 20})}, {"cluster": "nr_tok2"},
     r"slot 'cluster' takes a kubeconfig credential, but connection 'nr_tok2' is of type 'nemorun_token': give a "
     r"connection of type 'nemorun_kubeconfig'"),
    ({"nr_empty": ("nemorun_token", {})}, {"token": "nr_empty"},
     r"connection 'nr_empty' has no token: put the token \(or API key\) in its Password field"),
    ({"nr_bearer": ("nemorun_token", {"password": "Bearer abcdefgh"})}, {"token": "nr_bearer"},
     r"connection 'nr_bearer', Password field: give the token alone, without the 'Bearer ' prefix"),
    ({"nr_hdr": ("nemorun_token", {"password": "k" * 20, "extra": {"headr": "X"}})}, {"key": "nr_hdr"},
     r"connection 'nr_hdr': unknown extra 'headr'; did you mean 'header'"),
    ({"nr_badkube": ("nemorun_kubeconfig", {"password": "token: kube-secret-token-0123456789"})},
     {"cluster": "nr_badkube"}, r"connection 'nr_badkube', Password field: not a kubeconfig: it needs 'clusters'"),
    ({"nr_ctx": ("nemorun_kubeconfig", {"password": None, "extra": {"context": "prod"}})}, {"cluster": "nr_ctx"},
     r"connection 'nr_ctx' has no kubeconfig: put the document in its Password field"),
])
def test_connections_that_do_not_fit_their_slot_are_clear_errors(monkeypatch, conns, slots, message) -> None:
    from nemorun_airflow.hooks import resolve_credentials
    from tests.unit.test_credentials import TinyExecutor

    for conn_id, (conn_type, fields) in conns.items():
        _conn(monkeypatch, conn_id, conn_type, **fields)
    with pytest.raises(ConnectionConfigError, match=message) as info:
        resolve_credentials(TinyExecutor(), slots)
    assert "kube-secret-token" not in str(info.value)


def test_an_ssh_slot_takes_only_an_ssh_connection_and_unknown_slots_are_named(monkeypatch) -> None:
    import nemorun_core as run
    from nemorun_airflow.hooks import connection_mapping, resolve_credentials
    from nemorun_core.errors import ConfigError

    _conn(monkeypatch, "nr_tok3", "nemorun_token", password="x" * 20)
    slurm = run.SlurmExecutor(partition="debug")
    with pytest.raises(ConnectionConfigError, match=r"slot 'ssh' takes a ssh credential, but connection 'nr_tok3' is "
                                                    r"of type 'nemorun_token': give a connection of type 'ssh'"):
        resolve_credentials(slurm, {"ssh": "nr_tok3"})
    with pytest.raises(ConfigError, match=r"connections\.tunnel: SlurmExecutor has no credential slot 'tunnel' "
                                          r"\(its slots: 'ssh'\)"):
        resolve_credentials(slurm, {"tunnel": "nr_tok3"})
    with pytest.raises(ConfigError, match=r"t1\.connections: the 'ssh' slot is given twice \(ssh_conn_id='a' and "
                                          r"connections\['ssh'\]='b'\)"):
        connection_mapping(slurm, {"ssh": "b"}, "a", path="t1")
    with pytest.raises(ConfigError, match=r"t1\.connections: must be a dict of slot name -> connection id"):
        connection_mapping(slurm, "slurm_login", path="t1")
    with pytest.raises(ConfigError, match=r"t1\.connections\.ssh: must be an Airflow connection id, not ''"):
        connection_mapping(slurm, {"ssh": ""}, path="t1")
    assert connection_mapping(slurm, None, "a") == connection_mapping(slurm, {"ssh": "a"}) == {"ssh": "a"}
    with pytest.raises(ConfigError, match=r"ssh_conn_id: ssh_conn_id='a' was given, but LocalExecutor does not "
                                          r"reach its jobs through a tunnel"):
        connection_mapping(run.LocalExecutor(), None, "a")


@pytest.mark.slurm
@pytest.mark.ssh
def test_operator_with_connections_runs_on_slurm_deferred(airflow_db, monkeypatch, capfd) -> None:
    from tests.airflow._dagrun import run_dag, states, write_dag, xcoms

    ssh, cluster = services.ssh(), services.slurm()
    with open(ssh.key) as f:
        key_text = f.read()
    _connection(monkeypatch, "nr_slurm_map", host=ssh.host, port=ssh.port, login=ssh.user,
                extra={"private_key": key_text, "host_key": _host_key(ssh.known_hosts), "job_dir": cluster.job_dir})
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dag = write_dag("nr_slurm_connections", """
slurm = run.SlurmExecutor(partition=C["partition"], account=C["account"], python=C["python"], time="00:05:00",
                          env_vars={"PYTHONPATH": C["repo"]})
with DAG("nr_slurm_connections", schedule=None, start_date=START) as dag:
    NemorunOperator(task_id="mapped", task=run.Partial(_tasks.add, a=40, b=2), executor=slurm,
                    connections={"ssh": "nr_slurm_map"}, deferrable=True, poll_interval=0.5)
""", partition=cluster.partition, account=cluster.account, python=cluster.python, repo=repo)
    dr = run_dag(dag)
    out = capfd.readouterr()
    assert states(dr) == {"mapped": "success"}, (out.out + out.err)[-3000:]
    value = xcoms(dr)["mapped"]
    assert value["result"] == 42 and value["handle"]["backend"] == "slurm"
    assert value["log"].startswith(f"{ssh.user}@{ssh.host}:{ssh.port}:")
    assert "PRIVATE KEY" not in json.dumps(value) and key_text.splitlines()[1] not in out.out + out.err
