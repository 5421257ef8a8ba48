"""NeMo Run's experiment surface after the rename (issue 13): plugins with ``task.config``, ``exp.add`` ids,
NeMo Run's argument names of ``run.run`` and ``run.Experiment``, with the spec's spellings beside them."""

from __future__ import annotations

import copy
import os
import pickle

import pytest

import nemorun_core as run
from nemorun_core.errors import ExperimentError, JobFailedError, PluginError, UnknownParameterError
from nemorun_core.executors.base import JobState
from nemorun_core.experiment.plugin import TaskArguments, config_view


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "nemorun-home"
    monkeypatch.setenv("NEMORUN_HOME", str(path))
    return str(path)


def train(learning_rate: float = 0.1, logging: dict | None = None, steps: int = 2) -> dict:
    return {"learning_rate": learning_rate, "logging": logging, "steps": steps,
            "env": os.environ.get("LOG_LEVEL")}


def other(a: int = 1) -> int:
    return a


def takes_config(config: dict | None = None, steps: int = 1) -> dict | None:
    return config


def shout(text: str = "") -> str:
    print(f"line {text}")
    print("another")
    return text


# -- the spec's plugins, as written in technical-capabilities.md ("Advanced Plugin Example") ------------------------
class AdvancedLoggingPlugin(run.Plugin):
    """Advanced logging plugin with custom configuration."""

    def __init__(self, log_level: str = "INFO", log_file: str = None):
        self.log_level = log_level
        self.log_file = log_file

    def setup(self, task, executor):
        if hasattr(executor, 'env_vars'):
            executor.env_vars.update({
                'LOG_LEVEL': self.log_level,
                'LOG_FILE': self.log_file or '/tmp/nemo_run.log',
                'WANDB_PROJECT': 'nemo-run-experiments'
            })
        if hasattr(task, 'config'):
            task.config.logging = {
                'level': self.log_level,
                'file': self.log_file,
                'wandb': True
            }


class ResourceMonitoringPlugin(run.Plugin):
    def setup(self, task, executor):
        if hasattr(executor, 'env_vars'):
            executor.env_vars.update({'ENABLE_MONITORING': 'true', 'MONITOR_INTERVAL': '60'})


class CustomValidationPlugin(run.Plugin):
    def setup(self, task, executor):
        if hasattr(task, 'config'):
            if task.config.get('learning_rate', 0) <= 0:
                raise ValueError("Learning rate must be positive")


SPEC_PLUGINS = [AdvancedLoggingPlugin(log_level="DEBUG"), ResourceMonitoringPlugin(), CustomValidationPlugin()]


# -- plugins: task.config ----------------------------------------------------------------------------------------------
@pytest.mark.local
def test_the_spec_validation_plugin_refuses_a_negative_learning_rate(home):
    config = run.Config(train, learning_rate=-1)
    with pytest.raises(PluginError, match="CustomValidationPlugin rejected task 'train'.*Learning rate must be "
                                          "positive"):
        run.run(config, executor=run.LocalExecutor(), plugins=SPEC_PLUGINS)
    assert not os.path.exists(os.path.join(home, "experiments")) or not os.listdir(os.path.join(home, "experiments"))


@pytest.mark.local
def test_the_spec_plugins_change_the_task_and_the_executor(home):
    executor = run.LocalExecutor()
    out = run.run(run.Config(train, learning_rate=3e-4), executor=executor, plugins=SPEC_PLUGINS)
    assert out["logging"] == {"level": "DEBUG", "file": None, "wandb": True}
    assert out["env"] == "DEBUG" and out["learning_rate"] == 3e-4
    assert executor.env_vars == {}, "plugins work on the task's own copy"


def test_a_name_the_task_cannot_take_is_an_error_naming_it_and_the_parameters():
    with pytest.raises(PluginError) as info:
        run.Experiment("p").add(run.Partial(other), plugins=[AdvancedLoggingPlugin()])
    text = str(info.value)
    assert "no parameter 'logging'" in text and "its parameters: a" in text and "'other'" in text
    assert isinstance(info.value.__cause__, UnknownParameterError)

    class Misspelled(run.Plugin):
        def setup(self, task, executor):
            task.config.get("learnig_rate", 1)  # a typo must not validate nothing

    with pytest.raises(PluginError, match="no parameter 'learnig_rate'.*did you mean 'learning_rate'"):
        run.Experiment("p").add(run.Partial(train), plugins=Misspelled())


def test_task_config_reads_sets_and_checks():
    task = run.Partial(train, learning_rate=0.5)
    view = TaskArguments(task, "train")
    assert view.learning_rate == 0.5 and view["steps"] == 2 and view.get("logging", "x") is None
    assert dict(view) == {"learning_rate": 0.5, "logging": None, "steps": 2}
    assert "steps" in view and "nope" not in view and not hasattr(view, "nope")
    view.steps = 7
    view["logging"] = {"a": 1}
    view.update(learning_rate=0.25)
    assert (task.steps, task.logging, task.learning_rate) == (7, {"a": 1}, 0.25)
    with pytest.raises(Exception, match="steps"):
        view.steps = "many"  # checked against the annotation, as cfg.steps = ... is
    with pytest.raises(UnknownParameterError, match="no parameter 'stpes'.*did you mean 'steps'"):
        view.update(stpes=1, steps=3)
    assert task.steps == 7, "nothing is set when one name is wrong"
    del view.steps
    assert task.steps == 2


def test_task_config_is_only_there_during_setup_and_keeps_isinstance():
    seen = {}

    class Look(run.Plugin):
        def setup(self, task, executor):
            seen["partial"] = isinstance(task, run.Partial)
            seen["config"] = task.config.get("learning_rate")
            task.learning_rate = 0.01  # NeMo Run's spelling still works

    exp = run.Experiment("look")
    exp.add(run.Partial(train, learning_rate=0.5), plugins=[Look()], name="t")
    spec = exp.spec("t")
    assert seen == {"partial": True, "config": 0.5}
    assert spec.task.learning_rate == 0.01 and "config" not in spec.task.__dict__
    assert spec.plugins == ["Look"]
    copy.deepcopy(spec.task)


def test_a_task_with_its_own_config_parameter_keeps_it_and_a_script_has_none():
    task = run.Partial(takes_config, config={"lr": 1})
    with config_view(task, "t"):
        assert task.config == {"lr": 1}
    seen = []

    class Look(run.Plugin):
        def setup(self, task, executor):
            seen.append(hasattr(task, "config"))

    run.Experiment("s").add(run.Script(inline="echo hi"), plugins=[Look()])
    assert seen == [False]


def test_plugins_must_have_setup_and_configs_of_plugins_are_built():
    with pytest.raises(ExperimentError, match="run.Plugin objects"):
        run.Experiment("x").add(run.Partial(other), plugins=["wandb"])
    exp = run.Experiment("x")
    exp.add(run.Partial(train), plugins=run.Config(AdvancedLoggingPlugin, log_level="WARN"), name="t")
    assert exp.spec("t").task.logging["level"] == "WARN" and exp.spec("t").plugins == ["AdvancedLoggingPlugin"]


# -- exp.add ids ------------------------------------------------------------------------------------------------------
@pytest.mark.local
def test_add_returns_a_string_id_that_is_also_the_spec_reference(home, capsys):
    with run.Experiment("ids", executor=run.LocalExecutor(), skip_status_at_exit=True) as exp:
        first = exp.add(run.Partial(train, steps=3), name="train")
        second = exp.add(run.Partial(other, a=5), name="train", dependencies=[first])
        third = exp.add(run.Partial(takes_config, config=first.output), dependencies=[first, "train_1"])
        assert isinstance(first, str) and first == "train" and second == "train_1" and third == "takes_config"
        assert f"{first}" == "train" and str(second) == "train_1" and {first: 1}["train"] == 1
        assert first.output == "{train.output}" and first.name == "train" and second.dir == "{train_1.dir}"
        assert pickle.loads(pickle.dumps(first)) == "train" and type(copy.deepcopy(first)) is str
    assert exp.spec("train_1").dependencies == ["train"]
    assert exp.spec("takes_config").dependencies == ["train", "train_1"]
    assert exp.result("takes_config")["steps"] == 3
    err = capsys.readouterr().err
    assert f"Experiment.from_id('{exp.id}')" in err, "the closing hint says how to find the experiment again"


def test_a_job_group_is_refused_with_what_to_do():
    with pytest.raises(ExperimentError, match="job group.*add each task on its own"):
        run.Experiment("g").add([run.Script(inline="echo 1"), run.Script(inline="echo 2")], name="group")


# -- run.run ----------------------------------------------------------------------------------------------------------
def test_run_direct_runs_here_with_the_executors_environment(home, monkeypatch):
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    out = run.run(run.Partial(train, learning_rate=0.5), direct=True, plugins=AdvancedLoggingPlugin("WARN"))
    assert out["env"] == "WARN" and out["logging"]["level"] == "WARN"
    assert "LOG_LEVEL" not in os.environ, "the executor's environment is set only for the call"
    assert not os.path.exists(os.path.join(home, "experiments")), "a direct run is not recorded"
    assert run.run(run.Config(other, a=4), "named", direct=True) == 4
    with pytest.raises(PluginError, match="Learning rate must be positive"):
        run.run(run.Partial(train, learning_rate=0), direct=True, plugins=[CustomValidationPlugin()])
    with pytest.raises(JobFailedError, match="exit status 3"):
        run.run(run.Script(inline="exit 3"), direct=True)


def test_run_direct_refuses_what_it_cannot_honour():
    with pytest.raises(ExperimentError, match="DockerExecutor cannot apply"):
        run.run(run.Partial(other), executor=run.DockerExecutor(container_image="python:3.11-slim"), direct=True)
    with pytest.raises(ExperimentError, match="launcher"):
        run.run(run.Partial(other), executor=run.LocalExecutor(launcher="torchrun"), direct=True)
    with pytest.raises(ExperimentError, match="detach=True cannot apply"):
        run.run(run.Partial(other), direct=True, detach=True)
    with pytest.raises(ExperimentError, match="log_level 'LOUD'"):
        run.run(run.Partial(other), log_level="LOUD")
    with pytest.raises(ExperimentError, match="second argument"):
        run.run(run.Partial(other), 42)


def test_experiment_run_direct_runs_the_tasks_here_in_order(home, monkeypatch):
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    exp = run.Experiment("direct")
    first = exp.add(run.Partial(train, learning_rate=0.5), plugins=[AdvancedLoggingPlugin("ERROR")], name="train")
    exp.add(run.Partial(takes_config, config=first.output), name="use")
    exp.run(direct=True)
    assert exp.result("use") == exp.result("train") and exp.result("train")["env"] == "ERROR"
    assert set(exp.results()) == {"train", "use"}
    assert exp.status(return_dict=True)["use"]["status"] is JobState.SUCCEEDED
    assert not os.path.exists(os.path.join(home, "experiments")), "a direct run is not recorded"
    with pytest.raises(ExperimentError, match="already run"):
        exp.run(direct=True)

    failing = run.Experiment("direct-fail")
    failing.add(run.Partial(shout, text="a"), name="a")
    failing.add(run.Script(inline="exit 4"), name="b")
    failing.add(run.Partial(other), name="c")
    with pytest.raises(JobFailedError, match="exit status 4"):
        failing.run(direct=True)
    states = {n: e["state"] for n, e in failing.status(return_dict=True).items()}
    assert states == {"a": "SUCCEEDED", "b": "FAILED", "c": "CANCELLED"}

    remote = run.Experiment("direct-remote")
    remote.add(run.Partial(other), executor=run.DockerExecutor(container_image="python:3.11-slim"))
    with pytest.raises(ExperimentError, match="DockerExecutor cannot apply"):
        remote.run(direct=True)
    with pytest.raises(ExperimentError, match="detach=True cannot apply"):
        run.Experiment("d").run(direct=True, detach=True)


@pytest.mark.local
def test_run_takes_nemo_runs_positional_name(home):
    assert run.run(run.Partial(other, a=9), "nine", executor=run.LocalExecutor()) == 9
    assert [e["name"] for e in run.Experiment.list()] == ["nine"]


# -- Experiment -------------------------------------------------------------------------------------------------------
def test_experiment_takes_nemo_runs_title_and_arguments(home, tmp_path):
    exp = run.Experiment("My Experiment", run.LocalExecutor(), log_level="warn", clean_mode=True,
                         threadpool_workers=4, skip_status_at_exit=True, enable_goodbye_message=False)
    assert (exp.title, exp.name) == ("My Experiment", "My-Experiment")
    assert exp.console.quiet and exp.threadpool_workers == 4
    spec_style = run.Experiment(name="llm_finetuning", description="d")
    assert (spec_style.name, spec_style.title) == ("llm_finetuning", "llm_finetuning")
    old_style = run.Experiment("sweep", title="LR sweep")
    assert (old_style.name, old_style.title) == ("sweep", "LR sweep")
    other_store = run.Experiment("x", base_dir=str(tmp_path / "elsewhere"))
    assert other_store.store.root == str(tmp_path / "elsewhere")
    for kwargs, fragment in [({"log_level": "LOUD"}, "log_level"), ({"threadpool_workers": 0}, "threadpool_workers"),
                             ({"id": "bad id"}, "experiment id"), ({"tital": "x"}, "did you mean 'title'"),
                             ({"home": "/a", "base_dir": "/b"}, "same store"),
                             ({"executor": "local"}, "executor must be an executor")]:
        with pytest.raises(ExperimentError, match=fragment):
            run.Experiment("x", **kwargs)


@pytest.mark.local
def test_status_logs_cancel_jobs_reset_from_id_and_from_title(home, capsys):
    exp = run.Experiment("Log Study", id="log-study-1", clean_mode=True)
    ref = exp.add(run.Partial(shout, text="hello"), name="talk", tail_logs=True)
    exp.add(run.Partial(shout, text="quiet"), name="talk")
    exp.run()
    assert exp.id == "log-study-1"
    out = capsys.readouterr().out
    assert "line hello" in out and "line quiet" not in out, "only the task added with tail_logs=True is tailed"
    assert exp.status(return_dict=False) is None and "talk_1" in capsys.readouterr().out
    report = exp.status(return_dict=True)
    assert capsys.readouterr().out == ""
    assert report["talk"]["status"] is JobState.SUCCEEDED and report["talk"]["state"] == "SUCCEEDED"
    assert report["talk"]["local_dir"].endswith(os.path.join("log-study-1", "tasks", "talk"))
    assert exp.logs(ref, regex=r"^line") == "line hello"
    assert "another" in exp.logs(ref)
    with pytest.raises(ExperimentError, match="regular expression"):
        exp.logs(ref, regex="(")
    exp.cancel(ref)  # ended already: cancelling is a no-op
    assert [(j.id, j.state) for j in exp.jobs] == [("talk", JobState.SUCCEEDED), ("talk_1", JobState.SUCCEEDED)]
    again = run.Experiment.from_id("log-study-1")
    assert again.tasks == ["talk", "talk_1"] and again.title == "Log Study"
    assert run.Experiment.from_title("Log Study").id == "log-study-1"
    fresh = exp.reset()
    assert fresh.id is None and fresh.tasks == ["talk", "talk_1"] and not fresh.launched
    fresh.run(quiet=True)
    assert fresh.id != exp.id and fresh.result("talk") == "hello"
    taken = run.Experiment("Log Study", id="log-study-1", clean_mode=True)
    taken.add(run.Partial(other))
    with pytest.raises(ExperimentError, match="id 'log-study-1' is already in"):
        taken.run()
    assert taken.id is None and not taken.launched, "nothing was started: the same object may run again"
