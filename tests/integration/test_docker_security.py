"""Issue 10, items 1 and 6 on the real Docker engine: secrets reach the job byte for byte, never as shell code, and
nothing the engine shows (``docker inspect`` of a running, a kept failed or a finished container) holds them."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

import nemorun_core as run
from nemorun_core.executors.base import JobState
from tests.integration import _tasks
from tests.integration.test_docker import _remove_containers, engine, executor, job_for, labelled, tag, wait  # noqa: F401

pytestmark = pytest.mark.docker

TOKEN = "line1\nline2\n"  # a two-line token whose trailing newline must survive
NEUTRAL = "neutral-value-7f3a"  # a secret under a neutral name, marked with run.Secret
# What an attacker would put in a value if any part of it were read as shell.
HOSTILE = "abc'\"\n$(touch \"$NEMORUN_JOB_DIR/pwned1\")\n`touch \"$NEMORUN_JOB_DIR/pwned2\"`\n; touch pwned3 #"


def secret_env() -> dict:
    return {"API_TOKEN": TOKEN, "MY_VALUE": run.Secret(NEUTRAL), "DB_PASSWORD": HOSTILE, "PLAIN": "visible"}


def assert_not_shown(container, *values: str) -> None:
    """Nothing in the engine's view of the container (all of `docker inspect`) holds a secret value."""
    container.reload()
    shown = json.dumps(container.attrs)
    for value in values:
        for piece in (value, value.strip(), json.dumps(value)[1:-1]):
            assert piece not in shown, f"{piece!r} is visible in docker inspect"
    assert "PLAIN=visible" in container.attrs["Config"]["Env"]


def test_secrets_arrive_byte_for_byte_and_inspect_shows_none(engine, tmp_path, tag):
    ex = executor(engine, env_vars=secret_env(), cleanup="never")
    job = job_for(ex, run.Partial(_tasks.echo_env, names=["API_TOKEN", "MY_VALUE", "DB_PASSWORD", "PLAIN"]),
                  tmp_path, tag)
    dry = ex.dryrun(job).text
    for value in (TOKEN.strip(), NEUTRAL, "pwned1", "abc'"):
        assert value not in dry
    handle = ex.submit(job)
    (container,) = labelled(engine[1], job.key)
    assert_not_shown(container, TOKEN, NEUTRAL, HOSTILE)  # created and running
    assert wait(ex, handle).state is JobState.SUCCEEDED
    got = json.loads((tmp_path / "task" / "result.json").read_text())["value"]
    assert got == {"API_TOKEN": TOKEN, "MY_VALUE": NEUTRAL, "DB_PASSWORD": HOSTILE, "PLAIN": "visible"}
    assert not list((tmp_path / "task").glob("pwned*")), "a value ran as shell code"
    assert_not_shown(container, TOKEN, NEUTRAL, HOSTILE)  # kept after it ended (cleanup="never")
    # The files were removed once read: the container holds no copy (docker cp / export would find none).
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        container.get_archive("/.nemorun/secrets")
    for path in (tmp_path / "task").iterdir():
        if path.is_file() and path.name != "result.json":  # the task's return value: it echoes them on purpose
            text = path.read_text(errors="replace")
            assert NEUTRAL not in text and "line1\nline2" not in text, f"{path.name} holds a secret"


def test_a_kept_failed_container_does_not_show_secrets(engine, tmp_path, tag):
    ex = executor(engine, env_vars=secret_env())  # cleanup="on_success": failed containers are kept
    handle = ex.submit(job_for(ex, run.Partial(_tasks.fail, message="boom"), tmp_path, tag))
    st = wait(ex, handle)
    assert st.state is JobState.FAILED and "boom" in st.message
    (container,) = labelled(engine[1], handle.key)
    assert_not_shown(container, TOKEN, NEUTRAL, HOSTILE)


@pytest.mark.parametrize("settings", [{"user": "nobody"}, {"extra_args": {"read_only": True}}],
                         ids=["non-root-user", "read-only-root"])
def test_busybox_shell_job_gets_secrets_exactly_as_another_user_or_read_only(engine, tmp_path, tag, settings):
    """A shell job in the busybox image (no python): the reader needs only /bin/sh and cat. The job's user reads
    the files and removes them; a read-only root file system gets them through a volume.

    The script lives outside the (private) job directory so that `nobody` can read it; it prints each value in
    base64, so the comparison is byte for byte."""
    import base64
    import tempfile

    code = tempfile.mkdtemp(prefix="nemorun-secret-test-")
    try:
        os.chmod(code, 0o755)
        with open(os.path.join(code, "job.sh"), "w") as f:
            f.write(textwrap.dedent("""
                for n in API_TOKEN MY_VALUE DB_PASSWORD; do
                    eval "v=\\$$n"  # the test's own indirection over fixed names; values stay data
                    printf '%s=' "$n"; printf '%s' "$v" | base64 | tr -d '\\n'; echo
                done
                echo "left=$(ls -A /.nemorun/secrets 2>/dev/null | tr '\\n' ' ')"
                echo "id=$(id -u)"
            """))
        os.chmod(os.path.join(code, "job.sh"), 0o644)
        ex = executor(engine, image="busybox", env_vars=secret_env(), cleanup="never", **settings)
        job = job_for(ex, run.Script(path=os.path.join(code, "job.sh"), cwd=code, entrypoint="sh"), tmp_path, tag)
        handle = ex.submit(job)
        st = wait(ex, handle)
        lines = list(ex.logs(handle))
        assert st.state is JobState.SUCCEEDED, (st, lines)
        out = dict(line.split("=", 1) for line in lines if "=" in line)
        assert base64.b64decode(out["API_TOKEN"]) == TOKEN.encode()
        assert base64.b64decode(out["MY_VALUE"]) == NEUTRAL.encode()
        assert base64.b64decode(out["DB_PASSWORD"]) == HOSTILE.encode()
        assert out["left"].strip() == "", "the secret files are removed once read"
        assert out["id"] == ("65534" if "user" in settings else "0")
        (container,) = labelled(engine[1], job.key)
        assert_not_shown(container, TOKEN, NEUTRAL, HOSTILE)
    finally:
        import shutil

        shutil.rmtree(code, ignore_errors=True)


def test_a_container_running_as_another_user_can_use_its_private_job_directory(engine, home, tag):
    # The store is 0700/0600; a container that runs as another uid gets its job directory handed over (we run as
    # root here, as CI does), so a Python task still reads its payload and writes its result, and the store stays
    # closed to everyone else.
    import stat

    ex = executor(engine, user="65534:65534", env_vars={"API_TOKEN": TOKEN})
    value = run.run(run.Partial(_tasks.echo_env, names=["API_TOKEN"]), executor=ex, name=f"{tag}-nobody",
                    tail_logs=False)
    assert value == {"API_TOKEN": TOKEN}
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            mode = stat.S_IMODE(os.lstat(os.path.join(root, name)).st_mode)
            assert mode & 0o077 == 0, f"{os.path.join(root, name)} is {oct(mode)}"
