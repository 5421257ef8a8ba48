"""SSHTunnel against the project's real OpenSSH server (scripts/services/sshd.sh)."""

import copy
import os
import pickle
import pwd
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.tunnel import RemoteCommandError, TunnelError, ssh_stats
from tests.integration import services

pytestmark = pytest.mark.ssh


@pytest.fixture(scope="module")
def server():
    return services.ssh()


def _tunnel(server, **kw):
    kw.setdefault("identity", server.key)
    kw.setdefault("known_hosts", server.known_hosts)
    kw.setdefault("timeout", 10)
    return run.SSHTunnel(host=server.host, port=server.port, user=server.user, job_dir="~/nemorun-tests", **kw)


@pytest.fixture
def tunnel(server):
    return _tunnel(server)


@pytest.fixture
def remote_dir(tunnel):
    path = f"~/nemorun-tests/{uuid.uuid4().hex[:10]}"
    yield path
    tunnel.run(f"rm -rf {path}", check=False)


def _delta(before, after):
    return (after.connections_opened - before.connections_opened, after.commands_run - before.commands_run)


def test_run_exit_status_stdout_stderr_and_stdin(tunnel):
    result = tunnel.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(RemoteCommandError, match=r"exited with status 7: boom") as info:
        tunnel.run("echo boom >&2; exit 7")
    assert info.value.result.exit_code == 7 and tunnel.address in str(info.value)
    assert tunnel.run("tr a-z A-Z", stdin=b"hello").stdout == "HELLO"
    assert tunnel.run("cat", stdin=b"", timeout=5).stdout == ""
    with pytest.raises(TunnelError, match="did not finish"):
        tunnel.run("cat", timeout=0.5)  # without stdin it stays open, as with `ssh host cat`
    big = tunnel.run("head -c 3000000 /dev/zero | tr '\\0' x; head -c 3000000 /dev/zero | tr '\\0' y >&2")
    assert big.stdout == "x" * 3_000_000 and big.stderr == "y" * 3_000_000, "both streams drained together"


def test_run_timeout_is_a_tunnel_error_naming_command_and_timeout(tunnel):
    start = time.monotonic()
    with pytest.raises(TunnelError, match=r"`sleep 30` did not finish within 0.5 s"):
        tunnel.run("sleep 30", timeout=0.5)
    assert time.monotonic() - start < 5
    assert tunnel.run("echo still usable").stdout == "still usable\n"


def test_files_put_get_read_bytes_exists(tunnel, remote_dir, tmp_path):
    path = f"{remote_dir}/a/b/log.txt"
    assert tunnel.read_bytes(path) is None and not tunnel.exists(path)
    tunnel.put_bytes(b"0123456789", path)
    assert tunnel.exists(path) and tunnel.exists(remote_dir)
    assert tunnel.read_bytes(path) == b"0123456789"
    assert tunnel.read_bytes(path, 4) == b"456789"
    assert tunnel.read_bytes(path, 4, 3) == b"456"
    assert tunnel.read_bytes(path, 10) == b""
    tunnel.put_bytes(b"#!/bin/sh\necho ran\n", f"{remote_dir}/a/b/run.sh", mode=0o755)
    assert tunnel.run(f"{remote_dir}/a/b/run.sh").stdout == "ran\n"
    tunnel.put_bytes(b"v2", path)
    assert tunnel.read_bytes(path) == b"v2"
    assert sorted(tunnel.run(f"ls -A {remote_dir}/a/b").stdout.split()) == ["log.txt", "run.sh"], "no temporaries"

    src = tmp_path / "payload 'q'.bin"
    src.write_bytes(os.urandom(2_000_000))
    remote = f"{remote_dir}/dir with space/a'; echo pwned.bin"
    tunnel.put(str(src), remote)
    assert tunnel.read_bytes(remote) == src.read_bytes()
    back = tmp_path / "back" / "copy.bin"
    tunnel.get(remote, str(back))
    assert back.read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        tunnel.get(f"{remote_dir}/missing", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_unwritable_path_is_a_tunnel_error_naming_it(tunnel):
    with pytest.raises(TunnelError, match=r"cannot write /root/forbidden/x: Permission denied"):
        tunnel.put_bytes(b"x", "/root/forbidden/x")


def _echo_server():
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_forward_to_an_echo_server(tunnel):
    server = _echo_server()
    port = server.getsockname()[1]
    try:
        with tunnel.forward(port) as fwd:
            assert fwd.local_port not in (0, port)
            for message in (b"hello", os.urandom(500_000)):
                with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=10) as c:
                    c.sendall(message)
                    c.shutdown(socket.SHUT_WR)  # half-close travels through the forward
                    received = b""
                    while chunk := c.recv(65536):
                        received += chunk
                assert received == message
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", fwd.local_port), timeout=2)
    finally:
        server.close()


def test_one_connection_for_every_copy_of_a_tunnel(server):
    a = _tunnel(server)
    a.close()  # start from no pooled connection for this login
    b = copy.deepcopy(_tunnel(server))
    c = pickle.loads(pickle.dumps(a))
    before = ssh_stats(a.address)
    for i in range(20):
        assert [a, b, c][i % 3].run(f"echo {i}").stdout == f"{i}\n"
    assert _delta(before, ssh_stats(a.address)) == (1, 20)
    assert a.stats == ssh_stats(a.address)


def test_threads_share_one_connection(server, remote_dir):
    tunnel = _tunnel(server)
    tunnel.close()
    before = ssh_stats(tunnel.address)
    errors = []

    def work(i):
        try:
            mine = copy.deepcopy(tunnel)  # as executors are copied per task
            for j in range(5):
                assert mine.run(f"echo {i}-{j}").stdout == f"{i}-{j}\n"
                mine.put_bytes(f"{i}-{j}".encode(), f"{remote_dir}/{i}")
                assert mine.read_bytes(f"{remote_dir}/{i}") == f"{i}-{j}".encode()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _delta(before, ssh_stats(tunnel.address)) == (1, 40)


def test_forked_child_opens_its_own_connection(tunnel):
    tunnel.run("true")  # the parent holds a pooled connection (and an SFTP session) when it forks
    tunnel.exists("~")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if tunnel.run("echo child").stdout == "child\n" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    before = ssh_stats(tunnel.address)
    assert tunnel.run("echo parent").stdout == "parent\n"
    assert _delta(before, ssh_stats(tunnel.address))[0] == 0, "the child must not disturb the parent's connection"


def _session_pid(tunnel):
    # $PPID of the remote shell is sshd's process for this connection: killing it drops the connection as a
    # restarted sshd or a flaky network would (scripts/services/sshd.sh restart keeps open sessions on purpose).
    return int(tunnel.run("echo $PPID").stdout)


def test_reconnects_transparently_after_the_connection_drops(server, remote_dir):
    tunnel = _tunnel(server)
    tunnel.close()
    before = ssh_stats(tunnel.address)
    tunnel.put_bytes(b"kept", f"{remote_dir}/f")
    os.kill(_session_pid(tunnel), signal.SIGTERM)
    assert tunnel.run("echo back").stdout == "back\n"  # not sent before the drop was seen: retried
    assert _delta(before, ssh_stats(tunnel.address))[0] == 2

    os.kill(_session_pid(tunnel), signal.SIGTERM)
    assert tunnel.read_bytes(f"{remote_dir}/f") == b"kept"  # reads are always safe to retry
    assert _delta(before, ssh_stats(tunnel.address))[0] == 3


def test_restarted_sshd_and_dropped_session(server):
    tunnel = _tunnel(server)
    tunnel.run("true")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "services", "sshd.sh")
    subprocess.run(["bash", script, "restart"], check=True, capture_output=True)
    os.kill(_session_pid(tunnel), signal.SIGTERM)
    before = ssh_stats(tunnel.address)
    assert tunnel.exists("~")
    assert _delta(before, ssh_stats(tunnel.address))[0] == 1


def test_a_command_is_not_run_twice_when_the_connection_drops_after_it_was_sent(server, remote_dir):
    tunnel = _tunnel(server)
    tunnel.run(f"mkdir -p {remote_dir}")
    with pytest.raises(TunnelError, match="may or may not have run, so it was not retried"):
        tunnel.run(f"echo x >> {remote_dir}/count; kill $PPID; sleep 5")
    assert tunnel.read_bytes(f"{remote_dir}/count") == b"x\n"


def test_unknown_host_key_is_a_clear_error_without_prompt(server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    start = time.monotonic()
    with pytest.raises(TunnelError) as info:
        _tunnel(server, known_hosts=str(empty)).run("true")
    msg = str(info.value)
    assert f"unknown host key for [{server.host}]:{server.port}" in msg
    assert "ssh-ed25519 SHA256:" in msg
    assert f"ssh-keyscan -p {server.port} {server.host} >> {empty}" in msg and "accept-new" in msg
    assert time.monotonic() - start < 10
    assert empty.read_text() == ""


def test_accept_new_adds_the_key_then_strict_accepts_it(server, tmp_path):
    path = tmp_path / "ssh" / "known_hosts"
    assert _tunnel(server, known_hosts=str(path), host_key_policy="accept-new").exists("~")
    assert path.read_text().startswith(f"[{server.host}]:{server.port} ssh-ed25519 ")
    assert _tunnel(server, known_hosts=str(path)).exists("~")


def test_changed_host_key_is_a_clear_error(server):
    with pytest.raises(TunnelError) as info:
        _tunnel(server, known_hosts=server.wrong_known_hosts).run("true")
    msg = str(info.value)
    assert f"host key for [{server.host}]:{server.port} has CHANGED" in msg
    assert msg.count("SHA256:") == 2 and "ssh-keygen -R" in msg and "ssh-keyscan" in msg


def test_refused_key_names_user_host_and_identity(server, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(TunnelError) as info:
        _tunnel(server, identity=server.bad_key).run("true")
    msg = str(info.value)
    assert f"refused authentication as user {server.user!r}" in msg
    assert f"identity {server.bad_key} (ssh-ed25519 SHA256:" in msg
    assert f"ssh-copy-id -i {server.bad_key}.pub" in msg


def test_wrong_port_fails_within_the_timeout(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    start = time.monotonic()
    with pytest.raises(TunnelError, match=rf"cannot connect to {server.host}:{port}: .*refused"):
        run.SSHTunnel(host=server.host, port=port, user=server.user, identity=server.key, job_dir="/tmp",
                      timeout=3).run("true")
    assert time.monotonic() - start < 3


def test_key_text_from_identity_env(server, monkeypatch):
    with open(server.key) as f:
        monkeypatch.setenv("NEMORUN_TEST_KEY_TEXT", f.read())
    tunnel = run.SSHTunnel(host=server.host, port=server.port, user=server.user, job_dir="/tmp",
                           identity_env="NEMORUN_TEST_KEY_TEXT", known_hosts=server.known_hosts)
    assert tunnel.run("whoami").stdout.strip() == server.user
    tunnel.close()  # the variable is read when connecting: drop the pooled connection
    monkeypatch.setenv("NEMORUN_TEST_KEY_TEXT", "not a key")
    with pytest.raises(TunnelError, match=r"cannot load the private key from the key in \$NEMORUN_TEST_KEY_TEXT"):
        _tunnel(server, identity=None, identity_env="NEMORUN_TEST_KEY_TEXT").run("true")


def test_no_key_at_all_is_a_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(TunnelError, match="no key to offer .* set identity"):
        _tunnel(server, identity=None, use_agent=False).run("true")


@pytest.fixture
def passphrase_key(server, tmp_path):
    """A passphrase-protected key, authorized for the test user for the length of the test (tests run as root)."""
    key = tmp_path / "id_pass"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-C", "nemorun-test-pass",
                    "-f", str(key)], check=True)
    authorized = os.path.join(pwd.getpwnam(server.user).pw_dir, ".ssh", "authorized_keys")
    with open(authorized) as f:
        original = f.read()
    line = (tmp_path / "id_pass.pub").read_text()
    with open(authorized, "a") as f:
        f.write(("" if original.endswith("\n") or not original else "\n") + line)
    yield str(key)
    with open(authorized) as f:
        kept = [entry for entry in f.read().splitlines(keepends=True) if entry.strip() != line.strip()]
    with open(authorized, "w") as f:
        f.write("".join(kept))


def test_passphrase_protected_key_via_passphrase_env(server, passphrase_key, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(TunnelError, match="is encrypted: set passphrase_env"):
        _tunnel(server, identity=passphrase_key).run("true")
    with pytest.raises(TunnelError, match="'NEMORUN_TEST_PASS': that environment variable is not set"):
        _tunnel(server, identity=passphrase_key, passphrase_env="NEMORUN_TEST_PASS").run("true")
    monkeypatch.setenv("NEMORUN_TEST_PASS", "wrong")
    with pytest.raises(TunnelError, match="wrong passphrase"):
        _tunnel(server, identity=passphrase_key, passphrase_env="NEMORUN_TEST_PASS").run("true")
    monkeypatch.setenv("NEMORUN_TEST_PASS", "correct horse")
    tunnel = _tunnel(server, identity=passphrase_key, passphrase_env="NEMORUN_TEST_PASS")
    assert tunnel.run("echo ok").stdout == "ok\n"
    tunnel.close()
