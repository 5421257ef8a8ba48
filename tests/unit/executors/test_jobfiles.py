"""The job directory defined once: ``JobFiles`` names, paths, and that no module spells the names itself."""

import ast
import json
import os
import pathlib
import pickle
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.jobfiles import JobFiles

ROOT = pathlib.Path(__file__).resolve().parents[3]

# The layout every existing job directory and store already has: changing a name breaks re-attaching to them.
LAYOUT = {
    "TASK": "task.json", "LAUNCH_SCRIPT": "launch.sh", "REQUEST": "request.json", "LOG": "log.out",
    "HANDLE": "handle.json", "LAUNCHER": "launcher.json", "STATUS": "status.json", "RESULT": "result.json",
    "RESULT_PICKLE": "result.pkl", "METRICS": "metrics.jsonl", "CANCEL": "cancel",
}


def test_names_are_the_existing_layout():
    assert {attr: getattr(JobFiles, attr) for attr in LAYOUT} == LAYOUT
    assert JobFiles.NAMES == frozenset(LAYOUT.values())


def test_paths_are_joined_posix_style_for_every_name():
    files = JobFiles("/scratch/exp 1/tasks/train")
    for attr, name in LAYOUT.items():
        assert getattr(files, attr.lower()) == f"/scratch/exp 1/tasks/train/{name}" == files.path(name)


@pytest.mark.parametrize("name", ["../escape", "a/b", "/etc/passwd", "..", ".", "", "x\0y", None])
def test_a_name_that_leaves_the_directory_is_refused_naming_it(name):
    with pytest.raises(ValueError, match="not a file name of the job directory /jobs/1"):
        JobFiles("/jobs/1").path(name)


def test_an_empty_directory_is_refused():
    with pytest.raises(ValueError, match="needs a job directory path"):
        JobFiles("")


def test_is_an_immutable_value():
    files = JobFiles("/jobs/1")
    with pytest.raises(AttributeError, match="immutable"):
        files.job_dir = "/elsewhere"
    with pytest.raises(AttributeError, match="immutable"):
        del files.job_dir
    assert files == JobFiles("/jobs/1") and hash(files) == hash(JobFiles("/jobs/1")) and files != JobFiles("/jobs/2")
    assert pickle.loads(pickle.dumps(files)) == files and repr(files) == "JobFiles('/jobs/1')"


def test_importing_it_costs_the_runner_nothing():
    """Every job process imports it through the runner: no typing, dataclasses or Fiddle."""
    code = ("import sys, nemorun_core.runner\n"
            "print(sorted(m for m in ('typing', 'dataclasses', 'inspect', 'fiddle') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# Still spelling the names themselves, to be moved onto JobFiles by their owners (none left).
PENDING: tuple[str, ...] = ()
# The same name for another file: the experiment's own launcher record in its directory, not a job's.
OTHER_FILES = {("nemorun_core/experiment/driver.py", "launcher.json")}


def _literals(path: pathlib.Path) -> list[tuple[int, str]]:
    """String constants of ``path`` that spell a job file name, docstrings left out (they describe the layout)."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names = JobFiles.NAMES - {JobFiles.CANCEL}  # "cancel" is also an ordinary word (a capability, a method)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            for name in names:
                for piece in node.value.replace("/", " ").replace('"', " ").replace("'", " ").split():
                    if piece == name:
                        found.append((node.lineno, name))
    return found


def test_no_module_spells_the_job_file_names_itself():
    problems = []
    for package in ("nemorun_core", "nemorun_prefect", "nemorun_airflow"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "nemorun_core/jobfiles.py" or rel.startswith(PENDING):
                continue
            problems += [f"{rel}:{line}: {name!r}" for line, name in _literals(path) if (rel, name) not in OTHER_FILES]
    assert not problems, "use nemorun_core.jobfiles.JobFiles instead of:\n" + "\n".join(problems)


def test_the_literal_check_sees_a_spelled_name(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Reads status.json."""\nPATH = "$1/status.json"\nLOG = "log.out"\nWORD = "cancel"\n')
    assert _literals(sample) == [(2, "status.json"), (3, "log.out")]


@pytest.mark.local
def test_a_real_local_job_leaves_exactly_the_named_files(tmp_path, monkeypatch):
    """The runner and the Local executor (launch.sh and the fork server) write the layout JobFiles names."""
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for fork_server in (True, False):
        exp = run.Experiment(f"layout{int(fork_server)}")
        exp.add(run.Partial(_report_and_return, 3), name="job", executor=run.LocalExecutor(fork_server=fork_server))
        exp.run(sequential=True, quiet=True)
        job_dir = exp.store.task_dir(exp.dir, "job")  # a local task's job directory is its directory in the store
        files = JobFiles(job_dir)
        assert json.loads(pathlib.Path(files.result).read_text()) == {"value": 6}
        assert json.loads(pathlib.Path(files.status).read_text())["exit_code"] == 0
        assert json.loads(pathlib.Path(files.launcher).read_text()) == {"exit_codes": [0]}
        assert json.loads(pathlib.Path(files.handle).read_text())["job_dir"] == job_dir
        assert json.loads(pathlib.Path(files.metrics).read_text())["twice"] == 6
        assert "reported 6" in pathlib.Path(files.log).read_text() and os.path.exists(files.task)
        assert not os.path.exists(files.cancel) and not os.path.exists(files.result_pickle)


def _report_and_return(x: int) -> int:
    print(f"reported {2 * x}", flush=True)
    run.log_metrics({"twice": 2 * x})
    return 2 * x
