"""The ``nemorun`` console script, run as a real subprocess against experiments made by real local runs.

Experiments are launched by ``_app_tasks.py`` in its own process (as a user's script would), into a temporary
store; the console script is then run as ``python -m nemorun_core.cli.app`` with stdin closed, so a prompt
that waited for input would show up as a timeout, not a hang.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from nemorun_core.experiment.store import Store

pytestmark = pytest.mark.local

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def _env(home, pythonpath=(HERE, REPO), **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NEMORUN_DEBUG", "PYTHONPATH")}
    # COLUMNS: rich folds long cells at 80 columns when not on a terminal; wide output keeps asserts simple.
    env.update({"NEMORUN_HOME": str(home), "PYTHONPATH": os.pathsep.join(pythonpath), "COLUMNS": "200", **extra})
    return env


def nemorun(home, *args, timeout=60, cwd=None, **env_extra):
    """Run the console script; stdin is /dev/null so nothing may wait for input."""
    return subprocess.run([sys.executable, "-m", "nemorun_core.cli.app", *args], env=_env(home, **env_extra),
                          cwd=cwd or str(home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def launch(home, kind):
    """Run one experiment of ``_app_tasks.py`` the way a user's script does; return its id."""
    out = subprocess.run([sys.executable, "_app_tasks.py", kind], env=_env(home), cwd=HERE,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def as_json(result):
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with three finished experiments: ok (one task), multi (two, dependent), fail (failing)."""
    home = tmp_path_factory.mktemp("nemorun_home")
    ids = {kind: launch(home, kind) for kind in ("ok", "multi", "fail")}
    return home, ids


def test_version(tmp_path):
    from nemorun_core._version import __version__

    out = nemorun(tmp_path, "version")
    assert out.returncode == 0 and out.stdout.strip() == f"nemorun {__version__}"
    top = nemorun(tmp_path, "--help")
    assert top.returncode == 0 and "--install-completion" in top.stdout and "--show-completion" in top.stdout


def test_list(store):
    home, ids = store
    entries = as_json(nemorun(home, "experiment", "list", "--json"))
    listed = [e["id"] for e in entries]
    assert set(ids.values()) <= set(listed)
    assert listed.index(ids["fail"]) < listed.index(ids["ok"])  # newest first
    by_id = {e["id"]: e for e in entries}
    assert by_id[ids["ok"]]["state"] == "SUCCEEDED" and by_id[ids["fail"]]["state"] == "FAILED"
    assert by_id[ids["multi"]]["tasks"] == 2 and by_id[ids["ok"]]["title"] == "cli ok"

    tagged = as_json(nemorun(home, "experiment", "list", "--json", "--tag", "cli", "--tag", "ok"))
    assert [e["id"] for e in tagged] == [ids["ok"]]
    titled = as_json(nemorun(home, "experiment", "list", "--json", "--title", "CLI MUL"))
    assert [e["id"] for e in titled] == [ids["multi"]]
    assert len(as_json(nemorun(home, "experiment", "list", "--json", "--limit", "1"))) == 1

    table = nemorun(home, "experiment", "list")
    assert table.returncode == 0
    assert all(exp_id in table.stdout for exp_id in ids.values()) and "SUCCEEDED" in table.stdout
    # Piped into an 80-column terminal: states whole, titles and tags still there (folded, not collapsed to nothing)
    narrow = nemorun(home, "experiment", "list", COLUMNS="80").stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "SUCCEEDED" in narrow and "FAILED" in narrow, narrow
    rows = " ".join(line.replace("│", " ") for line in narrow.splitlines())
    assert {"cli", "ok", "2"} <= set(rows.split()), narrow


def test_list_of_a_large_index_reads_only_the_index(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    start = time.perf_counter()
    assert as_json(nemorun(empty, "experiment", "list", "--json")) == []
    baseline = time.perf_counter() - start  # interpreter + typer start-up

    big = Store(str(tmp_path / "big"))
    now = time.time()
    for i in range(1000):
        # No experiment directories at all: listing must come from the index alone.
        big.record(f"exp{i:04d}_20250101_000000", name=f"exp{i:04d}", title=f"experiment {i}", tags=["bulk"],
                   created_at=now - 1000 + i, state="SUCCEEDED", tasks=1, dir=f"/nowhere/{i}")
    start = time.perf_counter()
    entries = as_json(nemorun(big.root, "experiment", "list", "--json"))
    elapsed = time.perf_counter() - start
    assert len(entries) == 1000 and entries[0]["id"] == "exp0999_20250101_000000"
    print(f"list --json of 1,000 entries: {elapsed:.2f}s (empty store: {baseline:.2f}s)")
    assert elapsed - baseline < 2.0  # generous: only catches scanning per experiment, not start-up noise
    table = nemorun(big.root, "experiment", "list", "--limit", "3")
    assert table.returncode == 0 and "exp0999" in table.stdout
    assert "997 older experiments not shown" in table.stdout


def test_show(store):
    home, ids = store
    meta = as_json(nemorun(home, "experiment", "show", ids["multi"], "--json"))
    assert meta["id"] == ids["multi"] and meta["title"] == "cli multi" and meta["tags"] == ["cli"]
    assert meta["state"] == "SUCCEEDED"
    assert meta["environment"]["python"]["version"] and meta["environment"]["host"]
    train = meta["tasks"]["train"]
    assert train["executor"] == "local" and train["dependencies"] == ["prep"]
    assert train["state"] == "SUCCEEDED"
    assert "_app_tasks:train" in train["config_yaml"] and "steps: 3" in train["config_yaml"]
    assert "LocalExecutor" in train["executor_yaml"]

    shown = nemorun(home, "experiment", "show", ids["ok"])
    assert shown.returncode == 0, shown.stderr
    for text in ("cli ok", "one greeting task", "environment", "_app_tasks:greet", "task greet · local"):
        assert text in shown.stdout


def test_status_exit_codes(store):
    home, ids = store
    ok = nemorun(home, "experiment", "status", ids["ok"])
    assert ok.returncode == 0 and "SUCCEEDED" in ok.stdout
    failed = nemorun(home, "experiment", "status", ids["fail"])
    assert failed.returncode == 1 and "planned failure" in failed.stdout
    report = as_json(nemorun(home, "experiment", "status", ids["multi"], "--json"))
    assert report["state"] == "SUCCEEDED" and list(report["tasks"]) == ["prep", "train"]
    assert report["tasks"]["train"]["exit_code"] == 0


def test_status_watch_waits_for_the_end(tmp_path):
    exp_id = launch(tmp_path, "short")
    out = nemorun(tmp_path, "experiment", "status", exp_id, "--watch", "--interval", "0.2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tasks"]["nap"]["state"] == "SUCCEEDED"
    live = nemorun(tmp_path, "experiment", "status", exp_id, "--watch")
    assert live.returncode == 0 and "1/1 ended" in live.stdout


def test_logs(store):
    home, ids = store
    full = nemorun(home, "experiment", "logs", ids["ok"])
    assert full.returncode == 0 and full.stdout.splitlines() == [f"line {i} world" for i in range(5)]
    tail = nemorun(home, "experiment", "logs", ids["ok"], "-n", "2")
    assert tail.stdout.splitlines() == ["line 3 world", "line 4 world"]
    followed = nemorun(home, "experiment", "logs", ids["ok"], "--follow", timeout=30)
    assert followed.returncode == 0 and followed.stdout == full.stdout
    tail_follow = nemorun(home, "experiment", "logs", ids["ok"], "-f", "-n", "1", timeout=30)
    assert tail_follow.stdout.splitlines() == ["line 4 world"]
    named = nemorun(home, "experiment", "logs", ids["multi"], "train")
    assert named.stdout.splitlines() == ["step 0", "step 1", "step 2"]


def test_logs_task_name_is_required_and_checked(store):
    home, ids = store
    missing = nemorun(home, "experiment", "logs", ids["multi"])
    assert missing.returncode == 2 and "prep, train" in missing.stderr
    typo = nemorun(home, "experiment", "logs", ids["multi"], "trian")
    assert typo.returncode == 2 and "did you mean 'train'?" in typo.stderr


def test_unknown_experiment_is_a_usage_error(store):
    home, ids = store
    typo = ids["multi"][:-1]
    out = nemorun(home, "experiment", "status", typo)
    assert out.returncode == 2
    assert f"did you mean {ids['multi']!r}?" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    debug = nemorun(home, "experiment", "status", typo, NEMORUN_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_title_is_accepted_for_an_id(store):
    home, ids = store
    out = nemorun(home, "experiment", "status", "cli fail", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["id"] == ids["fail"]
    assert f"using the latest experiment titled 'cli fail': {ids['fail']}" in out.stderr


def test_task_code_is_found_next_to_the_launching_script(store, tmp_path):
    # The CLI runs from elsewhere, without _app_tasks on its path: the recorded launch directory is used.
    home, ids = store
    out = nemorun(home, "experiment", "status", ids["ok"], "--json", cwd=str(tmp_path), pythonpath=(REPO,))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "SUCCEEDED"


def _group_alive(pgid):
    """Whether any live (not zombie) process is in process group ``pgid``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_cancel_a_running_job(tmp_path):
    exp_id = launch(tmp_path, "sleep")
    handle = Store.read_json(os.path.join(tmp_path, "experiments", exp_id, "tasks", "nap", "handle.json"))
    pgid = int(handle["extras"]["pgid"])
    try:
        assert _wait_for(lambda: "napping" in nemorun(tmp_path, "experiment", "logs", exp_id).stdout, 20)
        started = time.monotonic()
        out = nemorun(tmp_path, "experiment", "cancel", exp_id, "nap")
        assert out.returncode == 0, out.stderr
        assert f"cancelled {exp_id} nap: RUNNING -> CANCELLED" in out.stdout
        state = as_json(nemorun(tmp_path, "experiment", "status", exp_id, "--json"))
        assert state["tasks"]["nap"]["state"] == "CANCELLED" and state["state"] == "CANCELLED"
        assert _wait_for(lambda: not _group_alive(pgid), 5), "the cancelled job's processes still run"
        assert time.monotonic() - started < 20
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, 9)
    again = nemorun(tmp_path, "experiment", "cancel", exp_id, "--all")
    assert again.returncode == 0 and "nothing to cancel" in again.stdout
    # The index now says so too, although no attached run or driver was left to record it.
    assert as_json(nemorun(tmp_path, "experiment", "list", "--json"))[0]["state"] == "CANCELLED"


def test_cancel_arguments(store):
    home, ids = store
    both = nemorun(home, "experiment", "cancel", ids["multi"], "train", "--all")
    assert both.returncode == 2 and "not both" in both.stderr
    neither = nemorun(home, "experiment", "cancel", ids["multi"])
    assert neither.returncode == 2 and "--all" in neither.stderr


def test_rerun_makes_a_new_experiment(store):
    home, ids = store
    out = nemorun(home, "experiment", "rerun", ids["multi"], "--yes", timeout=120)
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.strip().splitlines()[-1]
    assert new_id != ids["multi"] and new_id.startswith("multi_")
    report = as_json(nemorun(home, "experiment", "status", new_id, "--json"))
    assert report["state"] == "SUCCEEDED" and list(report["tasks"]) == ["prep", "train"]

    failed = nemorun(home, "experiment", "rerun", ids["fail"], "--yes", timeout=120)
    assert failed.returncode == 1 and failed.stdout.strip() != ids["fail"]


def test_rerun_never_prompts_without_a_terminal(store):
    # No --yes and stdin is /dev/null: the command must run, not wait for an answer (the timeout would fire).
    home, ids = store
    out = nemorun(home, "experiment", "rerun", ids["ok"], "--detach", timeout=60)
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.strip()
    assert new_id != ids["ok"] and "launched" in out.stderr
    waited = nemorun(home, "experiment", "status", new_id, "--watch", "--json", "--interval", "0.2")
    assert waited.returncode == 0 and json.loads(waited.stdout)["tasks"]["greet"]["state"] == "SUCCEEDED"
