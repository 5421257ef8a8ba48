"""The experiment store under faults, through real local jobs and the real ``nemorun`` console script.

A corrupted store degrades per entry: each damaged file gives an ExperimentError naming it, and the other
experiments keep working. A full disk (a real 512 KiB tmpfs as ``$NEMORUN_HOME``) gives errors that name the path
and the free space, leaves nothing half-made, and never stops a status read. Displayed strings cannot drive the
terminal. Everything under the store is private to the user.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.errors import ExperimentError
from nemorun_core.executors.files import NoSpaceError
from tests.integration import _tasks

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW_ERRORS = ("Traceback", "internal error", "AttributeError", "JSONDecodeError", "UnicodeDecodeError",
              "NotADirectoryError", "KeyError", "TypeError")


def nemorun(home, *args, timeout=120):
    """The real console script, as a user runs it (stdin closed, wide output so cells do not fold)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEMORUN_DEBUG", "PYTHONPATH")}
    env.update(NEMORUN_HOME=str(home), PYTHONPATH=REPO, COLUMNS="250")
    out = subprocess.run([sys.executable, "-m", "nemorun_core.cli.app", *args], env=env, cwd=REPO,
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out.text = out.stdout.decode("utf-8", "replace")
    out.err = out.stderr.decode("utf-8", "replace")
    for raw in RAW_ERRORS:
        assert raw not in out.err, out.err
    return out


def listed(home):
    out = nemorun(home, "experiment", "list", "--json")
    assert out.returncode == 0, out.err
    return [e["id"] for e in json.loads(out.text)], out.err


def _run(name, home, **fields):
    exp = run.Experiment(name, home=str(home), **fields)
    exp.add(_tasks.add, a=1, b=2, name="add")
    exp.run(quiet=True)
    assert exp.result("add") == 3
    return exp


@pytest.fixture
def two(tmp_path):
    """A store with two finished one-task experiments: the one a test damages, and a bystander."""
    home = tmp_path / "home"
    return home, _run("victim", home), _run("bystander", home)


def _task_file(exp, name):
    return os.path.join(exp.dir, "tasks", "add", name)


def _damage(path, raw: bytes):
    with open(path, "wb") as f:
        f.write(raw)


def _bystander_still_works(home, victim, bystander):
    ids, _ = listed(home)
    assert victim.id in ids and bystander.id in ids  # the damaged one is shown, not hidden
    out = nemorun(home, "experiment", "status", bystander.id)
    assert out.returncode == 0 and "SUCCEEDED" in out.text, out.err
    assert run.Experiment.from_id(bystander.id, home=str(home)).result("add") == 3


# -- a corrupted store --------------------------------------------------------------------------------------------
def test_bad_index_lines_are_skipped_with_a_warning(two, caplog):
    home, victim, bystander = two
    index = os.path.join(home, "index.jsonl")
    good = open(index, "rb").read()
    _damage(index, b'{}\n[1,2]\n"x"\n\xff\xfe\x80\n{"title": "no id"}\n' + good)
    ids, err = listed(home)
    assert ids == [bystander.id, victim.id]
    for line in range(1, 6):
        assert f"{index} line {line}:" in err, err
    assert nemorun(home, "experiment", "status", victim.id).returncode == 0
    assert nemorun(home, "experiment", "show", bystander.id).returncode == 0
    with caplog.at_level(logging.WARNING):
        assert [e["id"] for e in run.Experiment.list(home=str(home))] == [victim.id, bystander.id]
    assert f"{index} line 4: not UTF-8" in caplog.text


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_a_lost_index_is_rebuilt(two, loss):
    home, victim, bystander = two
    index = os.path.join(home, "index.jsonl")
    if loss == "emptied":
        open(index, "w").close()
    else:
        os.remove(index)
    out = nemorun(home, "experiment", "list", "--json")
    entries = {e["id"]: e for e in json.loads(out.text)}
    assert set(entries) == {victim.id, bystander.id} and "rebuilt it from 2 experiment directories" in out.err
    assert entries[victim.id]["state"] == "SUCCEEDED" and entries[victim.id]["title"] == "victim"
    assert os.path.getsize(index) > 0
    assert nemorun(home, "experiment", "status", victim.id).returncode == 0


@pytest.mark.parametrize("content", [b"", b'{"backend": "local", "job_', b"\x89PNG\r\n\x1a\n", b"[]"])
def test_a_damaged_handle_never_turns_a_result_into_none(two, content):
    home, victim, bystander = two
    path = _task_file(victim, "handle.json")
    _damage(path, content)
    with pytest.raises(ExperimentError, match=path.replace(".", r"\.") + r".*job handle of task 'add'"):
        run.Experiment.from_id(victim.id, home=str(home)).result("add")
    for command in ("status", "show"):
        out = nemorun(home, "experiment", command, victim.id)
        assert out.returncode == 1 and path in out.err and "restore it" in out.err, out.err
    _bystander_still_works(home, victim, bystander)


def test_a_damaged_executor_is_a_clear_error(two):
    home, victim, bystander = two
    path = _task_file(victim, "executor.json")
    _damage(path, b'{"_target_": ')
    with pytest.raises(ExperimentError, match=r"executor\.json: \(the task's executor\) is not valid JSON"):
        run.Experiment.from_id(victim.id, home=str(home))
    out = nemorun(home, "experiment", "status", victim.id)
    assert out.returncode == 1 and path in out.err and "nemorun experiment rerun" in out.err
    _bystander_still_works(home, victim, bystander)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1]", b"{}"])
def test_a_damaged_result_is_a_clear_error(two, content):
    home, victim, bystander = two
    path = _task_file(victim, "result.json")
    _damage(path, content)
    exp = run.Experiment.from_id(victim.id, home=str(home))
    assert exp.status(quiet=True)["add"]["state"] == "SUCCEEDED"  # status does not need the result
    with pytest.raises(ExperimentError, match=path.replace(".", r"\.") + r": the result of task 'add' is damaged"):
        exp.result("add")
    _bystander_still_works(home, victim, bystander)


def test_a_binary_experiment_json_is_a_clear_error(two):
    home, victim, bystander = two
    path = os.path.join(victim.dir, "experiment.json")
    _damage(path, bytes(range(256)))
    with pytest.raises(ExperimentError, match=path.replace(".", r"\.") + r".*not UTF-8"):
        run.Experiment.from_id(victim.id, home=str(home))
    out = nemorun(home, "experiment", "show", victim.id)
    assert out.returncode == 1 and path in out.err and "remove" in out.err, out.err
    _bystander_still_works(home, victim, bystander)


def test_an_unknown_state_is_a_clear_error(two):
    home, victim, bystander = two
    path = _task_file(victim, "info.json")
    info = json.load(open(path))
    info["status"]["state"] = "EXPLODED"
    _damage(path, json.dumps(info).encode())
    with pytest.raises(ExperimentError, match=r"info\.json: holds an unknown state 'EXPLODED' for task 'add'"):
        run.Experiment.from_id(victim.id, home=str(home))
    out = nemorun(home, "experiment", "status", victim.id)
    assert out.returncode == 1 and path in out.err and "known: PENDING" in out.err
    _bystander_still_works(home, victim, bystander)


def test_a_deleted_experiment_directory_the_index_still_lists(two, tmp_path):
    home, victim, bystander = two
    os.rename(victim.dir, str(tmp_path / "moved-away"))
    with pytest.raises(ExperimentError, match=r"listed in .*index\.jsonl but its directory .* is gone"):
        run.Experiment.from_id(victim.id, home=str(home))
    out = nemorun(home, "experiment", "show", victim.id)
    assert out.returncode == 2 and "is gone" in out.err and "forget" in out.err, out.err
    _bystander_still_works(home, victim, bystander)


def test_a_home_that_is_a_file(tmp_path):
    home = tmp_path / "home"
    home.write_text("oops")
    for args in (("list",), ("status", "x"), ("show", "x")):
        out = nemorun(home, "experiment", *args)
        assert out.returncode == 1 and f"{home} is a file, not a directory" in out.err, out.err
    exp = run.Experiment("x", home=str(home))
    exp.add(_tasks.add, a=1, name="add")
    with pytest.raises(ExperimentError, match="is a file, not a directory; point NEMORUN_HOME"):
        exp.run(quiet=True)
    with pytest.raises(ExperimentError, match="is a file"):
        run.Experiment.list(home=str(home))


# -- what is displayed ---------------------------------------------------------------------------------------------
def test_terminal_escapes_in_stored_strings_are_shown_escaped(tmp_path):
    home = tmp_path / "home"
    hostile = "\x1b]0;pwn\x07\x1b[2J"
    exp = run.Experiment("escapes", home=str(home), title=hostile, description=f"about {hostile}",
                         tags=[f"tag{hostile}"])
    exp.add(_tasks.add, a=1, name="add")
    exp.run(quiet=True)
    for args in (("list",), ("show", exp.id), ("status", exp.id)):
        out = nemorun(home, "experiment", *args)
        assert out.returncode == 0, out.err
        assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout, out.stdout
        assert r"\x1b]0;pwn\x07\x1b[2J" in out.text
    assert json.loads(nemorun(home, "experiment", "list", "--json").text)[0]["title"] == hostile  # data unchanged


def test_the_python_status_table_escapes_stored_strings_and_reads_no_markup(tmp_path, capsys):
    hostile = "\x1b]0;pwn\x07[red]markup[/]"
    exp = run.Experiment("escapes-py", home=str(tmp_path / "home"), title=hostile)
    exp.add(_tasks.add, a=1, name="add")
    exp.run(quiet=True)
    exp.status()  # the table for people
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert r"\x1b]0;pwn\x07[red]markup[/]" in out  # escaped, and the brackets shown as text


# -- permissions -------------------------------------------------------------------------------------------------
def _loose(home, skip=()):
    """Paths under ``home`` with any group or other permission bit."""
    found = []
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = os.path.join(root, name)
            if name not in skip and stat.S_IMODE(os.lstat(path).st_mode) & 0o077:
                found.append(f"{path} {oct(stat.S_IMODE(os.lstat(path).st_mode))}")
    return found


def _metrics_experiment(home):
    old = os.umask(0o022)  # the usual umask: files would be 0644 and directories 0755 unless made private
    try:
        exp = run.Experiment("private", home=str(home))
        exp.add(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), name="train")
        # both supervisors: the fork server's and launch.sh
        exp.add(_tasks.add, a=1, name="add", executor=run.LocalExecutor(fork_server=False))
        exp.run(quiet=True)
        exp.status(quiet=True)
        return exp
    finally:
        os.umask(old)


def test_the_store_is_private_to_the_user(tmp_path):
    home = tmp_path / "home"
    exp = _metrics_experiment(home)
    assert exp.result("train")["hidden_size"] == 64
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    # log.out, launcher.json and metrics.jsonl are written by the job's supervisor and the task (see the next test)
    assert _loose(home, skip=("log.out", "launcher.json", "metrics.jsonl")) == []


def test_job_written_files_are_private_too(tmp_path):
    home = tmp_path / "home"
    _metrics_experiment(home)
    assert _loose(home) == []


# -- a full disk -------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 512 KiB tmpfs (the tests run as root), unmounted afterwards whatever happens."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path):
    """Write ``path`` until the file system has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"x" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)


def _leftovers(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if ".tmp." in f]


def test_a_full_disk_names_the_path_and_leaves_nothing_half_made(small_disk):
    home = os.path.join(small_disk, "home")
    done = _run("first", home)
    fill(os.path.join(small_disk, "filler"))
    exp = run.Experiment("second", home=home)
    exp.add(_tasks.add, a=1, name="add")
    with pytest.raises(NoSpaceError) as caught:
        exp.run(quiet=True)
    message = str(caught.value)
    assert message.startswith(f"no space left on device writing {home}/experiments/second_")
    assert f"bytes free on {small_disk})" in message and "[Errno" not in message
    assert isinstance(caught.value, OSError) and caught.value.errno == 28
    assert os.listdir(os.path.join(home, "experiments")) == [os.path.basename(done.dir)]  # no half-made one
    assert [json.loads(line)["id"] for line in open(os.path.join(home, "index.jsonl"))] == [done.id, done.id]
    assert _leftovers(small_disk) == []
    ids, _ = listed(home)
    assert ids == [done.id]
    # once there is space again, the same experiment object runs
    os.remove(os.path.join(small_disk, "filler"))
    exp.run(quiet=True)
    assert exp.result("add") == 2


def test_reading_a_status_on_a_full_disk_answers_and_warns(small_disk, caplog):
    home = os.path.join(small_disk, "home")
    exp = _run("reader", home)
    # As if the launcher had died before recording the end: a reader now wants to write info.json and the outcome.
    os.remove(os.path.join(exp.dir, "tasks", "add", "info.json"))
    os.remove(os.path.join(exp.dir, "outcome.json"))
    fill(os.path.join(small_disk, "filler"))
    out = nemorun(home, "experiment", "status", exp.id)
    assert out.returncode == 0 and "SUCCEEDED" in out.text, out.err
    assert "could not record" in out.err and "no space left on device writing" in out.err
    with caplog.at_level(logging.WARNING):
        loaded = run.Experiment.from_id(exp.id, home=home)
        assert loaded.status(quiet=True)["add"]["state"] == "SUCCEEDED"
        assert loaded.result("add") == 3
    assert "bytes free on" in caplog.text
    assert _leftovers(small_disk) == []
    # space again: the next read records the outcome, so the index does not keep it RUNNING
    os.remove(os.path.join(small_disk, "filler"))
    assert nemorun(home, "experiment", "status", exp.id).returncode == 0
    entries = {e["id"]: e for e in json.loads(nemorun(home, "experiment", "list", "--json").text)}
    assert entries[exp.id]["state"] == "SUCCEEDED"


def fill_then_return(path):
    """A task that fills the disk its own job directory is on, then returns."""
    fill(path)
    return "filled"


def test_a_disk_that_fills_during_the_run_does_not_leave_it_running(small_disk):
    home = os.path.join(small_disk, "home")
    filler = os.path.join(small_disk, "filler")
    exp = run.Experiment("filling", home=home)
    exp.add(fill_then_return, path=filler, name="fill")
    try:
        exp.run(quiet=True)
    except NoSpaceError as exc:  # the run may end with the store's error (naming the path); never a raw one
        assert "bytes free on" in str(exc)
    statuses = exp.refresh()
    assert statuses["fill"].is_terminal  # followed to its end, not abandoned
    os.remove(filler)
    out = nemorun(home, "experiment", "status", exp.id)
    assert out.returncode in (0, 1), out.err
    entries = {e["id"]: e for e in json.loads(nemorun(home, "experiment", "list", "--json").text)}
    assert entries[exp.id]["state"] in ("SUCCEEDED", "FAILED")
    assert _leftovers(small_disk) == []
