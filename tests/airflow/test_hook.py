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
