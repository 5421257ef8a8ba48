"""Experiments on the local executor: graph, concurrency, store, reload from another process, plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import nemorun_core as run
from nemorun_core.errors import ExperimentError, PluginError
from nemorun_core.executors.base import JobState
from nemorun_core.experiment.store import Store
from tests.integration import _tasks
from tests.integration.conftest import store_files

pytestmark = pytest.mark.local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_dependencies_references_and_results(home):
    with run.Experiment("graph", description="a small graph", tags=["t1", "t2"]) as exp:
        train = exp.add(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=256), name="train")
        exp.add(run.Partial(_tasks.evaluate, checkpoint=train.output.checkpoint,
                            hidden_size="{train.output.hidden_size}"), name="eval")
        exp.add(run.Partial(_tasks.evaluate, checkpoint=f"{train.output.checkpoint}/best"), name="eval-text")
    assert exp.results() == {
        "train": {"checkpoint": "/ckpt/h256", "hidden_size": 256},
        "eval": "evaluated /ckpt/h256 (256)",
        "eval-text": "evaluated /ckpt/h256/best (0)",
    }
    status = exp.status(quiet=True)
    assert status["eval"]["dependencies"] == ["train"]
    assert all(row["state"] == "SUCCEEDED" for row in status.values())
    assert [m["loss"] for m in exp.metrics("train")] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert "step 2 loss" in exp.logs("train")
    # the store keeps the task as configured (with its reference), not only as it ran
    reloaded = run.Experiment.from_id(exp.id).configurations()
    assert reloaded["eval"].hidden_size == "{train.output.hidden_size}"
    assert json.load(open(os.path.join(exp.dir, "tasks/eval/task.json")))["task"]["hidden_size"] == 256


def test_failed_dependency_stops_dependents_only(home):
    exp = run.Experiment("failing")
    bad = exp.add(_tasks.fail, name="bad")
    exp.add(_tasks.add, a=1, dependencies=[bad], name="child")
    exp.add(_tasks.add, a=2, dependencies=["child"], name="grandchild")
    exp.add(_tasks.add, a=3, name="independent")
    exp.run(quiet=True)
    st = exp.status(quiet=True)
    assert st["bad"]["state"] == "FAILED"
    assert st["child"]["state"] == "CANCELLED" and "dependency 'bad' ended FAILED" in st["child"]["message"]
    assert st["grandchild"]["state"] == "CANCELLED" and "'child'" in st["grandchild"]["message"]
    assert st["independent"]["state"] == "SUCCEEDED"
    assert exp.results() == {"independent": 4}


def _max_overlap(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


@pytest.mark.parametrize("limit, sequential", [(2, False), (None, True)])
def test_concurrency_limit_is_honoured(home, tmp_path, limit, sequential):
    exp = run.Experiment("limited")
    for i in range(5):
        exp.add(_tasks.sleep_and_record, seconds=0.4, marker_dir=str(tmp_path), label=f"t{i}", name=f"t{i}")
    exp.run(max_concurrent=limit, sequential=sequential, quiet=True)
    spans = [tuple(map(float, p.read_text().split())) for p in tmp_path.glob("*.span")]
    assert len(spans) == 5
    assert _max_overlap(spans) <= (1 if sequential else 2)
    if not sequential:
        assert _max_overlap(spans) == 2, "independent tasks should run in parallel up to the limit"


def test_store_layout_metadata_and_reload_from_another_process(home):
    exp = run.Experiment("stored", title="Stored experiment", description="desc", tags=["x"])
    exp.add(_tasks.add, a=1, b=2, name="one")
    exp.run(quiet=True)
    files = {os.path.relpath(p, exp.dir) for p in store_files(exp.dir)}
    for expected in ("experiment.json", "environment.json", "tasks/one/task.yaml", "tasks/one/executor.yaml",
                     "tasks/one/task.json", "tasks/one/handle.json", "tasks/one/status.json",
                     "tasks/one/result.json", "tasks/one/log.out"):
        assert expected in files
    meta = exp.metadata()
    assert meta["title"] == "Stored experiment" and meta["tags"] == ["x"]
    env = meta["environment"]
    assert env["python"]["version"] and "fiddle" in env["packages"]
    assert env["git"] is None or "dirty" in env["git"]
    assert "add" in open(os.path.join(exp.dir, "tasks/one/task.yaml")).read()

    code = (
        "import json, nemorun_core as run\n"
        f"e = run.Experiment.from_id({exp.id!r})\n"
        "print(json.dumps({'results': e.results(), 'state': e.status(quiet=True)['one']['state'], "
        "'title': e.title, 'config': repr(e.configurations()['one'])}))"
    )
    env_vars = {**os.environ, "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_vars, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data == {"results": {"one": 3}, "state": "SUCCEEDED", "title": "Stored experiment",
                    "config": repr(run.Partial(_tasks.add, a=1, b=2))}
    assert run.Experiment.from_title("Stored experiment").id == exp.id
    assert exp.id in [e["id"] for e in run.Experiment.list()]


def test_from_id_unknown_suggests(home):
    exp = run.Experiment("findme")
    exp.add(_tasks.add, a=1)
    exp.run(quiet=True)
    with pytest.raises(ExperimentError) as info:
        run.Experiment.from_id(exp.id[:-1] + "x")
    assert "did you mean" in str(info.value) and exp.id in str(info.value)


def test_rerun_uses_the_same_configuration(home):
    exp = run.Experiment("again")
    exp.add(_tasks.add, a=5, b=5, name="sum")
    exp.run(quiet=True)
    again = run.Experiment.from_id(exp.id).rerun(quiet=True)
    assert again.id != exp.id and again.results() == {"sum": 10}


def test_secrets_never_reach_the_store(home):
    secret = "tok_9f8e7d6c5b4a39281706"
    ex = run.LocalExecutor(env_vars={"HF_TOKEN": secret, "PLAIN": "visible"})
    exp = run.Experiment("secretive")
    exp.add(_tasks.echo_env, names=["HF_TOKEN"], executor=ex, name="peek")
    exp.run(quiet=True)
    # the task itself received the secret...
    assert exp.results() == {"peek": {"HF_TOKEN": secret}}
    # ...but except for the task's own return value, no file in the store holds it
    leaks = [p for p in store_files(home) if not p.endswith("result.json") and secret in open(p, errors="ignore").read()]
    assert leaks == []
    assert "visible" in open(os.path.join(exp.dir, "tasks/peek/executor.yaml")).read()


def test_detached_experiment_with_dependencies_is_followed_elsewhere(home):
    exp = run.Experiment("detached")
    a = exp.add(_tasks.add, a=1, name="a")
    exp.add(run.Partial(_tasks.add, a="{a.output}", b=10), name="b")
    started = time.monotonic()
    exp.run(detach=True, quiet=True)
    assert time.monotonic() - started < 5
    statuses = run.Experiment.from_id(exp.id).wait(timeout=60)
    assert {n: s.state for n, s in statuses.items()} == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    assert run.Experiment.from_id(exp.id).results() == {"a": 2, "b": 12}


class _EnvPlugin(run.Plugin):
    def setup(self, task, executor):
        executor.env_vars["FROM_PLUGIN"] = "yes"
        task.b = 100


class _Rejecting(run.Plugin):
    def setup(self, task, executor):
        raise ValueError("learning rate must be positive")


def test_plugins_change_tasks_and_can_reject(home):
    user_executor = run.LocalExecutor()
    exp = run.Experiment("plugins")
    exp.add(_tasks.add, a=1, executor=user_executor, plugins=[_EnvPlugin()], name="p")
    exp.add(_tasks.echo_env, names=["FROM_PLUGIN"], executor=user_executor, plugins=(), name="plain")
    exp.run(quiet=True)
    assert exp.results() == {"p": 101, "plain": {"FROM_PLUGIN": None}}
    assert user_executor.env_vars == {}, "plugins work on the task's own copy of the executor"
    with pytest.raises(PluginError) as info:
        run.run(run.Partial(_tasks.add, a=1), plugins=[_Rejecting()], name="rejected")
    assert "_Rejecting" in str(info.value) and "learning rate" in str(info.value)
    assert not any("rejected" in e["id"] for e in run.Experiment.list()), "a rejected task leaves nothing behind"


def test_index_is_safe_with_two_writers(tmp_path):
    root = str(tmp_path / "store")
    code = ("import sys; from nemorun_core.experiment.store import Store\n"
            "s = Store(sys.argv[1])\n"
            "for i in range(200): s.record(f'{sys.argv[2]}-{i}', name='n', created_at=i)")
    env_vars = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-c", code, root, w], env=env_vars) for w in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    ids = {e["id"] for e in Store(root).list()}
    assert len(ids) == 400


def test_listing_a_thousand_experiments_reads_one_file(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "big"))
    for i in range(1000):
        store.record(f"exp-{i}", name="e", title=f"t{i}", created_at=float(i), state="SUCCEEDED")
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    entries = store.list()
    assert len(entries) == 1000 and entries[0]["id"] == "exp-0"
    assert opened == [os.path.join(store.root, "index.jsonl")]


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda e: e.add(_tasks.add, a=1, name="bad name;rm -rf /"), "task name"),
        (lambda e: e.add(_tasks.add, a=1, name="../escape"), "task name"),
        (lambda e: e.add(_tasks.add, a=1, dependencies=["ghost"]), "ghost"),
        (lambda e: e.add(run.Partial(_tasks.evaluate, checkpoint="{trian.output}")), "trian"),
        (lambda e: e.add(run.Partial(_tasks.add, a=1), b=2), "keyword arguments"),
        (lambda e: e.add(42), "cannot run 42"),
        (lambda e: e.add(_tasks.add, a=1, executor="local"), "executor"),
        (lambda e: e.run(), "no tasks"),
        (lambda e: e.add(run.Script("does/not/exist.sh")), "does not exist"),
    ],
)
def test_bad_experiment_inputs_are_rejected_before_anything_runs(home, call, fragment):
    exp = run.Experiment("bad")
    with pytest.raises(Exception) as info:
        call(exp)
    assert fragment in str(info.value)
    assert exp.id is None
    assert not os.path.exists(os.path.join(home, "experiments")) or not os.listdir(os.path.join(home, "experiments"))


def test_duplicate_task_names_and_bad_experiment_name(home):
    exp = run.Experiment("dups")
    assert exp.add(_tasks.add, a=1, name="x") == "x"
    assert exp.add(_tasks.add, a=2, name="x") == "x_1"  # made unique as NeMo Run does, not refused
    assert exp.add(_tasks.add, a=2).name == "add"
    assert exp.add(_tasks.add, a=3).name == "add_1"
    assert exp.tasks == ["x", "x_1", "add", "add_1"]
    with pytest.raises(ExperimentError, match="experiment name"):
        run.Experiment(name="my experiment $(whoami)")
    titled = run.Experiment("my experiment $(whoami)")  # NeMo Run's title: the name is made safe from it
    assert titled.title == "my experiment $(whoami)" and titled.name == "my-experiment-whoami"


def test_from_id_works_where_the_task_code_is_not_importable(home, tmp_path):
    code_dir = tmp_path / "project"
    code_dir.mkdir()
    (code_dir / "mytasks.py").write_text("def hello():\n    print('hi')\n    return 'hi'\n")
    launch = ("import nemorun_core as run, mytasks\n"
              "exp = run.Experiment('elsewhere')\nexp.add(mytasks.hello, name='hello')\nexp.run(quiet=True)\n"
              "print(exp.id)")
    env_vars = {**os.environ, "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", launch], cwd=code_dir, capture_output=True, text=True,
                         env=env_vars, timeout=60)
    assert out.returncode == 0, out.stderr
    exp = run.Experiment.from_id(out.stdout.strip())  # this process cannot import mytasks
    assert exp.status(quiet=True)["hello"]["state"] == "SUCCEEDED"
    assert exp.results() == {"hello": "hi"} and exp.logs("hello") == "hi"
    with pytest.raises(ExperimentError, match="cannot be loaded in this process"):
        exp.rerun()


def test_index_records_the_outcome_of_a_detached_run(home):
    exp = run.Experiment("outcome")
    exp.add(run.Script(inline="sleep 30"), name="nap")
    exp.run(detach=True, quiet=True)
    run.Experiment.from_id(exp.id).cancel()
    run.Experiment.from_id(exp.id).wait(timeout=30)
    entry = next(e for e in run.Experiment.list() if e["id"] == exp.id)
    assert entry["state"] == "CANCELLED"
    lines = open(os.path.join(home, "index.jsonl")).read().count(exp.id)
    run.Experiment.from_id(exp.id).status(quiet=True)
    assert open(os.path.join(home, "index.jsonl")).read().count(exp.id) == lines, "refreshing appends nothing"


def test_logs_follow_with_tail(home, capsys):
    exp = run.Experiment("followtail")
    exp.add(run.Script(inline="for i in 1 2 3 4; do echo l$i; done"), name="p")
    exp.run(quiet=True)
    capsys.readouterr()
    exp.logs("p", follow=True, tail=2)
    assert capsys.readouterr().out.splitlines() == ["l3", "l4"]
    assert exp.logs("p", tail=0) == ""
