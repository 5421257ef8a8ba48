"""Attacks on the shell boundary of SlurmExecutor, tried on the project's real Slurm cluster over the real sshd
(issue 10): secret values that carry shell, secrets under neutral names, error text that could quote a key, two
submissions that share a job directory, permissions of what a submission creates, and a ``~`` job_dir.

Services: scripts/services/sshd.sh and scripts/services/slurm.sh (started by scripts/test.sh).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
import uuid

import pytest

import nemorun_core as run
from nemorun_core.errors import SubmissionError
from nemorun_core.executors.base import Job, JobState
from tests.integration import services
from tests.integration.conftest import store_files

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Not a real key: shaped like one (several lines, the PEM header) so every place that must hide a key sees one.
FAKE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
            "QyNTUxOQAAACBxZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlAAAAkDk5\n"
            "-----END OPENSSH PRIVATE KEY-----\n")


def _tunnel(job_dir=None):
    ssh = services.ssh()
    return run.SSHTunnel(host=ssh.host, port=ssh.port, user=ssh.user, identity=ssh.key,
                         known_hosts=ssh.known_hosts, job_dir=job_dir or services.slurm().job_dir)


def _executor(tunnel, **kwargs):
    cluster = services.slurm()
    return run.SlurmExecutor(tunnel=tunnel, partition=cluster.partition, account=cluster.account,
                             python=cluster.python, time="00:05:00", **kwargs)


def _dump_env(names):
    """A command that writes each variable's value, byte for byte, to ``$NEMORUN_JOB_DIR/env.<NAME>``."""
    return ["bash", "-c", "; ".join(f'printf %s "${n}" > "$NEMORUN_JOB_DIR/env.{n}"' for n in names)]


def _wait(executor, handle, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = executor.status(handle)
        if status.is_terminal:
            return status
        time.sleep(1)
    raise AssertionError(f"job {handle.job_id} not finished after {timeout} s: {status}")


def _tag():
    return uuid.uuid4().hex[:10]


def test_secret_values_are_data_and_arrive_byte_for_byte(home):
    """A value with newlines is not cut into shell lines: nothing it holds runs, and the job sees every byte."""
    tunnel = _tunnel()
    tag = _tag()
    marker = f"pwned-{tag}"  # the attack of the issue (`touch ~/pwned`), under a name no other run shares
    values = {
        "DB_PASSWORD": f"abc\ntouch ~/{marker}\n",
        "HF_TOKEN": "first-line-of-token\nsecond-line-of-token",  # a two-line token arrives whole
        "GOOGLE_CREDENTIALS": '{\n  "type": "service_account",\n  "key": "a\'b\\"c $(touch ~/%s) `id`"\n}\n\n'
                              % marker,
        "SSH_PRIVATE_KEY": FAKE_KEY,
        "EMPTY_SECRET": "",
    }
    executor = _executor(tunnel, env_vars=values)
    handle = executor.submit(Job("env", f"sec-env-{tag}/env/0", _dump_env(sorted(values)), "/nonexistent-local"))
    assert _wait(executor, handle).state is JobState.SUCCEEDED
    for name, value in values.items():
        assert tunnel.read_bytes(f"{handle.job_dir}/env.{name}") == value.encode(), name
    assert not tunnel.exists(f"~/{marker}"), "a line of a secret value ran as a command on the cluster"
    sbatch = tunnel.read_bytes(f"{handle.job_dir}/sbatch.sh").decode()
    for value in values.values():
        for line in value.splitlines():
            assert len(line) < 8 or line not in sbatch, line


def test_a_secret_under_a_neutral_name_is_never_written(home):
    """``run.Secret`` marks a value secret whatever its name: not in the dryrun text, not in sbatch.sh on the
    cluster, not in the store; the job still gets it."""
    tunnel = _tunnel()
    tag = _tag()
    value = f"neutral-{tag}-value"
    executor = _executor(tunnel, env_vars={"MY_VALUE": run.Secret(value), "PLAIN": "shown"})
    job = Job("neutral", f"sec-neutral-{tag}/neutral/0", _dump_env(["MY_VALUE"]), "/nonexistent-local")
    text = executor.dryrun(job).text
    assert value not in text and "MY_VALUE" in text and "export PLAIN=shown" in text
    handle = executor.submit(job)
    assert _wait(executor, handle).state is JobState.SUCCEEDED
    assert tunnel.read_bytes(f"{handle.job_dir}/env.MY_VALUE") == value.encode()
    assert value not in tunnel.read_bytes(f"{handle.job_dir}/sbatch.sh").decode()
    # through an experiment too: nothing in the store holds it
    exp = run.Experiment("sec-neutral")
    exp.add(run.Script(inline='[ -n "$MY_VALUE" ]'), executor=executor, name="check")
    exp.run(quiet=True)
    assert exp.status(quiet=True)["check"]["state"] == "SUCCEEDED"
    for path in store_files(home):
        with open(path, "rb") as f:
            assert value.encode() not in f.read(), path


def test_a_failed_sbatch_quotes_no_line_of_a_secret(home):
    """sbatch refuses the job (a partition that does not exist) while a multi-line key is in the environment: the
    error, and what the store keeps of it, hold no line of the key."""
    tunnel = _tunnel()
    executor = _executor(tunnel, env_vars={"DEPLOY_KEY_TEXT": FAKE_KEY, "API_TOKEN": "tok-1\ntok-2-second-line"})
    executor.partition = "nope"
    tag = _tag()
    with pytest.raises(SubmissionError) as info:
        executor.submit(Job("x", f"sec-fail-{tag}/x/0", ["true"], "/nonexistent-local"))
    message = str(info.value)
    assert "nope" in message or "partition" in message.lower(), message
    with pytest.raises(Exception):
        run.run(run.Script(inline="true"), executor=executor, name="sec-fail", tail_logs=False)
    stored = b"".join(open(p, "rb").read() for p in store_files(home))
    for line in [*FAKE_KEY.splitlines(), "tok-1", "tok-2-second-line"]:
        assert line not in message, line
        if len(line) >= 8:
            assert line.encode() not in stored, line


def test_a_directory_that_holds_another_keys_job_is_refused(home):
    """Two submissions into one job directory under different keys (two stores that chose the same directory):
    the second is refused, naming the directory and both keys, and the first job is untouched; the same key twice
    finds its job."""
    tunnel = _tunnel()
    executor = _executor(tunnel)
    tag = _tag()
    first = Job("t", f"sec-shared-{tag}/t/0", ["bash", "-c", "sleep 2; echo first"], "/nonexistent-local")
    # the job directory scheme uses the first three parts of a key: this other store's key maps to the same one
    other = Job("t", f"sec-shared-{tag}/t/0/other-store", ["bash", "-c", "echo second"], "/nonexistent-local")
    assert executor.remote_dir(first) == executor.remote_dir(other)
    handle = executor.submit(first)
    with pytest.raises(SubmissionError) as info:
        executor.submit(other)
    message = str(info.value)
    assert handle.job_dir in message and first.key in message and other.key in message and "job_dir" in message
    assert executor.submit(first).job_id == handle.job_id, "the same key re-attaches"
    assert executor.find(first.key, "").job_id == handle.job_id
    assert _wait(executor, handle).state is JobState.SUCCEEDED
    assert tunnel.read_bytes(f"{handle.job_dir}/slurm_job_id").decode().strip() == handle.job_id
    assert tunnel.read_bytes(f"{handle.job_dir}/log.out") == b"first\n", "the other job's files never landed"
    assert f"# key: {first.key}\n" in tunnel.read_bytes(f"{handle.job_dir}/sbatch.sh").decode()


def test_concurrent_submissions_of_two_keys_into_one_directory(home):
    """The race of the issue: both submit at once; exactly one gets the directory, the other is refused."""
    executor = _executor(_tunnel())
    tag = _tag()
    jobs = [Job("t", f"sec-race-{tag}/t/0" + suffix, ["bash", "-c", f"echo {i}"], "/nonexistent-local")
            for i, suffix in enumerate(["", "/store-b"])]
    outcomes: dict[int, object] = {}
    start = threading.Barrier(2)

    def submit(i):
        start.wait()
        try:
            outcomes[i] = executor.submit(jobs[i])
        except SubmissionError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    handles = [o for o in outcomes.values() if not isinstance(o, Exception)]
    refused = [o for o in outcomes.values() if isinstance(o, SubmissionError)]
    assert len(handles) == 1 and len(refused) == 1, outcomes
    assert _wait(executor, handles[0]).state is JobState.SUCCEEDED


def test_job_and_code_directories_are_private(home, tmp_path, monkeypatch):
    """What a submission creates on the cluster (code, job directory, its files, what the job writes) has no
    group or other permission bits."""
    tunnel = _tunnel()
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "privtask.py").write_text(f"# {time.time_ns()}\ndef hello() -> str:\n    return 'hi'\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(repo / "run.sh", 0o755)
    for args in (["init", "-q"], ["config", "user.email", "t@example.invalid"], ["config", "user.name", "t"],
                 ["add", "."], ["commit", "-q", "-m", "code"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    import privtask

    executor = _executor(tunnel, packager=run.GitArchivePackager())
    exp = run.Experiment("sec-private")
    exp.add(run.Partial(privtask.hello), executor=executor, name="hello")
    exp.run(quiet=True)
    assert exp.results() == {"hello": "hi"}
    job_dir = exp._tasks["hello"].handle.job_dir
    code_dir = tunnel.run(f"grep -o '{tunnel.job_dir}/code/[0-9a-f]*' {shlex.quote(job_dir)}/task.json | head -n1"
                          ).stdout.strip()
    assert code_dir, "the task runs from the uploaded code"
    listing = tunnel.run(f"find {shlex.quote(os.path.dirname(job_dir))} {shlex.quote(code_dir)} "
                         "-printf '%m %y %p\\n'").stdout.splitlines()
    assert any(line.endswith("/result.json") for line in listing) and any("privtask.py" in l for l in listing)
    for line in listing:
        mode, kind, path = line.split(" ", 2)
        assert int(mode, 8) & 0o077 == 0, f"{path} is {mode}"
        if kind == "d":
            assert mode == "700", f"{path} is {mode}"


def test_a_job_dir_under_home_is_expanded_on_the_cluster(home):
    """``job_dir="~/nj-..."`` means the cluster user's home: no literal ``~`` directory appears, the job runs there."""
    name = f"nj-{_tag()}"
    tunnel = _tunnel(job_dir=f"~/{name}")
    executor = _executor(tunnel)
    remote_home = tunnel.run('printf %s "$HOME"').stdout
    try:
        handle = executor.submit(Job("t", "sec-home/t/0", ["bash", "-c", 'echo "$PWD"'], "/nonexistent-local"))
        assert handle.job_dir == f"{remote_home}/{name}/sec-home/t"
        assert _wait(executor, handle).state is JobState.SUCCEEDED
        assert list(executor.logs(handle)) == [handle.job_dir]
        assert tunnel.run("ls -a ~").stdout.split().count("~") == 0, "a literal '~' directory was made"
        assert not tunnel.exists(f"{remote_home}/{name}/sec-home/t/~")
        assert executor.find("sec-home/t/0", "").job_id == handle.job_id
    finally:
        tunnel.run(f"rm -rf ~/{name}", check=False)
