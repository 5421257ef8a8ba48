"""LocalTunnel: the tunnel contract on this machine (real processes, real files)."""

import os
import socket
import threading
import time

import pytest

import nemorun_core as run
from nemorun_core.tunnel import CommandResult, RemoteCommandError, TunnelError


@pytest.fixture
def tunnel(tmp_path):
    return run.LocalTunnel(job_dir=str(tmp_path / "jobs"))


def test_public_api_names():
    from nemorun_core.tunnel.local import LocalTunnel

    assert run.LocalTunnel is LocalTunnel
    assert run.LocalTunnel("/x").address == "local"


def test_run_returns_exit_status_stdout_and_stderr(tunnel):
    result = tunnel.run("echo out; echo err >&2; exit 3", check=False)
    assert result == CommandResult("echo out; echo err >&2; exit 3", 3, "out\n", "err\n")
    assert not result.ok
    assert tunnel.run("true").ok


def test_run_check_raises_with_status_and_output(tunnel):
    with pytest.raises(RemoteCommandError) as info:
        tunnel.run("echo boom >&2; exit 7")
    assert info.value.result.exit_code == 7
    assert "exited with status 7" in str(info.value) and "boom" in str(info.value)


def test_run_uses_a_shell_and_feeds_stdin(tunnel):
    assert tunnel.run("x='a b'; printf '%s|' $x").stdout == "a|b|"
    assert tunnel.run("tr a-z A-Z", stdin=b"hello").stdout == "HELLO"
    # stdin is closed even when none is given: a command reading it must not hang
    assert tunnel.run("cat", timeout=5).stdout == ""


def test_run_timeout_kills_the_command_and_its_children(tunnel, tmp_path):
    marker = tmp_path / "survived"
    start = time.monotonic()
    with pytest.raises(TunnelError, match=r"did not finish within 0.5 s") as info:
        tunnel.run(f"(sleep 2; touch {marker}) & sleep 30", timeout=0.5)
    assert "sleep 30" in str(info.value)
    assert time.monotonic() - start < 5
    time.sleep(2.5)
    assert not marker.exists(), "the background child must be killed with the command"


def test_put_bytes_creates_parents_sets_mode_and_leaves_no_temporary(tunnel, tmp_path):
    target = tmp_path / "jobs" / "a" / "b" / "file.sh"
    tunnel.put_bytes(b"#!/bin/sh\necho hi\n", str(target), mode=0o755)
    assert target.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert target.stat().st_mode & 0o777 == 0o755
    tunnel.put_bytes(b"v2", str(target))
    assert target.read_bytes() == b"v2"
    assert os.listdir(target.parent) == ["file.sh"]


def test_put_bytes_is_atomic_for_concurrent_readers(tunnel, tmp_path):
    target = tmp_path / "status.json"
    tunnel.put_bytes(b"A" * 100_000, str(target))
    seen = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(tunnel.read_bytes(str(target)))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(50):
        tunnel.put_bytes((b"AB"[i % 2:i % 2 + 1]) * 100_000, str(target))
    stop.set()
    thread.join()
    assert seen <= {b"A" * 100_000, b"B" * 100_000}, "a reader saw a half-written file"


def test_read_bytes_offsets_and_limits(tunnel, tmp_path):
    path = str(tmp_path / "log.txt")
    tunnel.put_bytes(b"0123456789", path)
    assert tunnel.read_bytes(path) == b"0123456789"
    assert tunnel.read_bytes(path, 4) == b"456789"
    assert tunnel.read_bytes(path, 4, 3) == b"456"
    assert tunnel.read_bytes(path, 10) == b""
    assert tunnel.read_bytes(path, 20) == b""
    assert tunnel.read_bytes(str(tmp_path / "missing")) is None


def test_exists(tunnel, tmp_path):
    assert tunnel.exists(str(tmp_path))
    assert not tunnel.exists(str(tmp_path / "missing"))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert not tunnel.exists(str(tmp_path / "dangling"))


def test_put_and_get_round_trip_with_nasty_names(tunnel, tmp_path):
    src = tmp_path / "src file 'quoted'.bin"
    src.write_bytes(os.urandom(300_000))
    src.chmod(0o600)
    remote = tmp_path / "jobs" / "dir with space" / "a'; echo pwned.bin"
    tunnel.put(str(src), str(remote))
    assert remote.read_bytes() == src.read_bytes()
    assert remote.stat().st_mode & 0o777 == 0o600
    back = tmp_path / "back" / "copy.bin"
    tunnel.get(str(remote), str(back))
    assert back.read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        tunnel.get(str(tmp_path / "missing"), str(tmp_path / "x"))


def test_home_relative_paths(tunnel, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    tunnel.put_bytes(b"x", "~/in-home/f")
    assert (tmp_path / "in-home" / "f").read_bytes() == b"x"
    assert tunnel.exists("~/in-home/f")
    assert tunnel.read_bytes("~/in-home/f") == b"x"


def test_forward_is_the_port_itself(tunnel):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with tunnel.forward(port) as fwd:
        assert fwd.local_port == port
        socket.create_connection(("127.0.0.1", fwd.local_port), timeout=5).close()
    server.close()
    with pytest.raises(TunnelError, match="only exposes ports"):
        tunnel.forward(port, local_port=port + 1)
    tunnel.close()
    tunnel.close()
