"""Smoke tests of the test services themselves (scripts/services/sshd.sh, slurm.sh and docker.sh), with the
plain `ssh` and `docker` clients and no project code: when one of these fails, the service is broken, not the
tunnel or the executor."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time

import pytest

from tests.integration import services

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def ssh_service() -> services.SSHService:
    return services.ssh()


@pytest.fixture
def slurm_service() -> services.SlurmService:
    return services.slurm()


def run_ssh(
    svc: services.SSHService,
    command: str,
    *,
    key: str | None = None,
    known_hosts: str | None = None,
    host: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run `command` (one shell string, as ssh sends it) as the test user; strict host-key checking always."""
    argv = [
        "ssh",
        "-F", "/dev/null",  # no user or system client config: only what is given here
        "-p", str(svc.port),
        "-i", key or svc.key,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts or svc.known_hosts}",
        "-o", "ConnectTimeout=10",
        f"{svc.user}@{host or svc.host}",
        command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def sbatch(ssh_svc: services.SSHService, slurm_svc: services.SlurmService, *args: str) -> str:
    """Submit a job over SSH into the job directory; return its id."""
    out_dir = f"{slurm_svc.job_dir}/services-smoke"
    cmd = shlex.join(
        ["sbatch", "--parsable", "-p", slurm_svc.partition, "-A", slurm_svc.account, "-D", out_dir,
         "-o", f"{out_dir}/%j.out", "-J", "nemorun-services-smoke", *args]
    )  # fmt: skip
    res = run_ssh(ssh_svc, f"mkdir -p {shlex.quote(out_dir)} && {cmd}")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(";")[0]


def wait_sacct_state(ssh_svc: services.SSHService, job_id: str, timeout: float = 30) -> str:
    """Poll sacct until the job has a final state (records reach slurmdbd a few seconds after the job ends)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        res = run_ssh(ssh_svc, f"sacct -j {job_id} -X -n -P -o State")
        assert res.returncode == 0, res.stderr
        state = res.stdout.strip().split(" ")[0]  # "CANCELLED by 0": the first word is the state
        if state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}:
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished in sacct after {timeout} s (last state {state!r})")


# ---- SSH --------------------------------------------------------------------------------------------------


@pytest.mark.ssh
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_key_login_with_strict_host_key_checking(ssh_service, host):
    res = run_ssh(ssh_service, "id -un", host=host)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ssh_service.user
    assert ssh_service.user != "root"


@pytest.mark.ssh
def test_unauthorized_key_is_refused(ssh_service):
    res = run_ssh(ssh_service, "true", key=ssh_service.bad_key)
    assert res.returncode == 255
    assert "Permission denied" in res.stderr


@pytest.mark.ssh
def test_changed_host_key_is_refused(ssh_service):
    res = run_ssh(ssh_service, "true", known_hosts=ssh_service.wrong_known_hosts)
    assert res.returncode == 255
    assert "Host key verification failed" in res.stderr


def restart_sshd(svc: services.SSHService) -> None:
    env = {**os.environ, "NEMORUN_SSHD_PORT": str(svc.port)}  # restart on the port the tests were given
    subprocess.run(["bash", f"{REPO}/scripts/services/sshd.sh", "restart"], check=True, env=env, timeout=60)


@pytest.mark.ssh
def test_restart_keeps_open_sessions(ssh_service):
    session = subprocess.Popen(
        ["ssh", "-F", "/dev/null", "-p", str(ssh_service.port), "-i", ssh_service.key, "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={ssh_service.known_hosts}",
         f"{ssh_service.user}@{ssh_service.host}", "echo started; sleep 2; echo survived"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert session.stdout.readline().strip() == "started"
        restart_sshd(ssh_service)
        out, err = session.communicate(timeout=30)
    finally:
        session.kill()
    assert session.returncode == 0, err
    assert out.strip() == "survived"
    assert run_ssh(ssh_service, "true").returncode == 0  # and the restarted server takes new logins


# ---- Slurm over SSH ---------------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.ssh
def test_sbatch_over_ssh_completes_and_sacct_reports_it(ssh_service, slurm_service):
    job_id = sbatch(ssh_service, slurm_service, "--wrap", "hostname")
    assert wait_sacct_state(ssh_service, job_id) == "COMPLETED"
    out = run_ssh(ssh_service, f"cat {slurm_service.job_dir}/services-smoke/{job_id}.out")
    assert out.returncode == 0 and out.stdout.strip(), out.stderr


@pytest.mark.slurm
@pytest.mark.ssh
def test_srun_spans_two_nodes(ssh_service, slurm_service):
    res = run_ssh(
        ssh_service, f"srun -N2 -p {slurm_service.partition} -A {slurm_service.account} -l hostname", timeout=60
    )
    assert res.returncode == 0, res.stderr
    lines = sorted(res.stdout.strip().splitlines())
    assert [line.split(":")[0].strip() for line in lines] == ["0", "1"]
    res = run_ssh(ssh_service, f"srun -N2 -p {slurm_service.partition} printenv SLURMD_NODENAME")
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == ["node1", "node2"]


@pytest.mark.slurm
@pytest.mark.ssh
def test_unknown_partition_is_rejected_at_submission(ssh_service, slurm_service):
    res = run_ssh(ssh_service, f"cd {slurm_service.job_dir} && sbatch -p nope --wrap true")
    assert res.returncode != 0
    assert "invalid partition" in res.stderr.lower()


@pytest.mark.slurm
@pytest.mark.ssh
def test_jobs_run_the_project_python(ssh_service, slurm_service):
    code = "import nemorun_core, sys; print(sys.prefix)"
    res = run_ssh(
        ssh_service,
        f"cd {slurm_service.job_dir} && srun -N1 -p {slurm_service.partition} "
        f"{shlex.quote(slurm_service.python)} -c {shlex.quote(code)}",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


@pytest.mark.slurm
@pytest.mark.ssh
def test_job_survives_sshd_restart(ssh_service, slurm_service):
    job_id = sbatch(ssh_service, slurm_service, "--wrap", "sleep 3")
    restart_sshd(ssh_service)
    assert wait_sacct_state(ssh_service, job_id) == "COMPLETED"


# ---- Docker -----------------------------------------------------------------------------------------------


@pytest.fixture
def docker_service() -> services.DockerService:
    return services.docker()


def docker_cli(svc: services.DockerService) -> tuple[str, dict[str, str]]:
    """The plain `docker` CLI and an environment that reaches the test engine only: no user config or context
    (DOCKER_CONFIG names a folder that does not exist; the CLI only reads it), no other DOCKER_* setting."""
    exe = shutil.which("docker")
    assert exe, "no docker client on PATH (scripts/services/docker.sh installs docker.io)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = svc.host
    env["DOCKER_CONFIG"] = "/nonexistent/nemorun-docker-client"
    return exe, env


def run_docker(svc: services.DockerService, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    exe, env = docker_cli(svc)
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def run_container(
    svc: services.DockerService, image: str, *command: str, network: str | None = "none"
) -> subprocess.CompletedProcess:
    """`docker run --rm --pull never [--network NETWORK] IMAGE COMMAND...`; network None: no --network."""
    net = ["--network", network] if network else []
    return run_docker(svc, "run", "--rm", "--pull", "never", *net, image, *command)


def ipv4_addresses(ip_addr_output: str) -> list[str]:
    """The `inet` addresses in `ip -4 addr` output."""
    return [line.split()[1] for line in ip_addr_output.splitlines() if line.strip().startswith("inet ")]


@pytest.mark.docker
def test_busybox_runs_with_network_none(docker_service):
    res = run_container(docker_service, docker_service.busybox, "true")
    assert res.returncode == 0, res.stderr
    res = run_container(docker_service, docker_service.busybox, "ip", "-4", "addr")
    assert res.returncode == 0, res.stderr
    assert ipv4_addresses(res.stdout) == ["127.0.0.1/8"]


@pytest.mark.docker
def test_container_exit_status_and_streams(docker_service):
    res = run_container(docker_service, docker_service.busybox, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3
    assert res.stdout.strip() == "out"
    assert "err" in res.stderr


@pytest.mark.docker
def test_python_image_runs_python3(docker_service):
    res = run_container(docker_service, docker_service.python, "python3", "-c", "print(1)")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "1\n"
    res = run_container(docker_service, docker_service.python, "python3", "-V")
    assert res.stdout.startswith("Python 3.11."), res.stdout


@pytest.mark.docker
def test_network_host_reaches_host_loopback(docker_service):
    # A listener on the host's 127.0.0.1: only a container in the host's network namespace can connect to it.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(60)
        port = srv.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 10).sendall(b'hello')"
        exe, env = docker_cli(docker_service)
        proc = subprocess.Popen(
            [exe, "run", "--rm", "--pull", "never", "--network", "host", docker_service.python,
             "python3", "-c", code],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(30)
                data = conn.recv(16)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert data == b"hello"


@pytest.mark.docker
def test_missing_image_fails_without_pulling(docker_service):
    image = "nemorun-test/does-not-exist:never"
    res = run_container(docker_service, image, "true")
    assert res.returncode == 125
    assert "No such image" in res.stderr
    assert "Unable to find image" not in res.stderr and "Pulling" not in res.stdout + res.stderr
    assert run_docker(docker_service, "image", "inspect", image).returncode != 0


@pytest.mark.docker
def test_no_bridge_network(docker_service):
    """The engine runs with --bridge=none: only the `host` and `none` networks exist.

    Seen with docker.io 20.10.24: `docker network ls` lists host (driver host) and none (driver null), no
    bridge, and there is no docker0 interface. A container started without --network (NetworkMode "default")
    or with `--network bridge` still starts, but is attached to no network: loopback only, no 172.17.x.x
    address, an empty IPAddress; it behaves as `--network none` (the client prints "WARNING: IPv4 forwarding
    is disabled").
    Tests and executors should still always ask for `none` or `host` explicitly.
    """
    res = run_docker(docker_service, "network", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == ["host host", "none null"]
    for network in (None, "bridge"):
        res = run_container(docker_service, docker_service.busybox, "ip", "-4", "addr", network=network)
        assert res.returncode == 0, res.stderr
        assert ipv4_addresses(res.stdout) == ["127.0.0.1/8"], res.stdout
    name = f"nemorun-services-smoke-{os.getpid()}"
    res = run_docker(docker_service, "create", "--pull", "never", "--name", name, docker_service.busybox)
    assert res.returncode == 0, res.stderr
    try:
        fmt = "{{.HostConfig.NetworkMode}}|{{.NetworkSettings.IPAddress}}"
        res = run_docker(docker_service, "inspect", "-f", fmt, name)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() in {"default|", "bridge|"}
    finally:
        run_docker(docker_service, "rm", "-f", name)
