"""nemorun_prefect.artifacts on the real Prefect engine: a config artifact per submitted job, a job table per
experiment flow run, read back through the Prefect client, with no secret in them."""

from __future__ import annotations

import json
import re

import pytest
import yaml

import nemorun_core as run
from tests.integration import _tasks

pytestmark = pytest.mark.prefect

TOKEN = "tok-0123456789abcdef-config-secret"
API_KEY = "sk-abcdefghijklmnopqrstuvwxyz012345"


def use_token(api_token: str, value: int) -> int:
    """A task with a secret-named argument (module level: the job's runner imports it)."""
    assert api_token == TOKEN  # the job itself gets the real value
    return value


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _artifacts(flow_run_id) -> list:
    """Every artifact of the flow run (its own and its task runs'), through the API."""
    from prefect import get_client
    from prefect.client.schemas.objects import Artifact

    # A raw request: Prefect 3.8's read_artifacts sends the filters it was not given as null, which its server
    # refuses (422), and an empty task-run filter would keep only artifacts of task runs.
    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "sort": "KEY_ASC", "limit": 100, "offset": 0}
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json=body)
    return [Artifact.model_validate(item) for item in response.json()]


def _executor() -> run.LocalExecutor:
    return run.LocalExecutor(env_vars={"WANDB_API_KEY": API_KEY, "MODE": "fast"})


def test_artifact_keys_follow_prefects_rule() -> None:
    from nemorun_prefect.artifacts import artifact_key

    assert artifact_key("nemorun", "experiment-Sweep_2", "Train_Model.v1", "config") == \
        "nemorun-experiment-sweep-2-train-model-v1-config"
    assert artifact_key("--A  b--", "") == "a-b"
    assert artifact_key("__") == "nemorun"


def test_config_artifact_once_per_job_with_config_and_executor_and_no_secret(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import submit_nemorun_task, wait_nemorun_task

    @flow(name="Artifact_Flow")
    def artifact_flow() -> tuple:
        task = run.Partial(use_token, api_token=TOKEN, value=5)
        first = submit_nemorun_task(task, _executor(), name="Train_Model.v1")
        again = submit_nemorun_task(task, _executor(), name="Train_Model.v1")  # same key: re-attaches
        return first, again, wait_nemorun_task(first)

    state = artifact_flow(return_state=True)
    assert state.is_completed(), state
    first, again, value = state.result()
    assert value == 5 and first.handle == again.handle
    artifacts = _artifacts(state.state_details.flow_run_id)
    # One config artifact and one log link (issue 12), once: the re-attach makes no second ones.
    assert [a.key for a in artifacts] == ["nemorun-artifact-flow-train-model-v1-config",
                                          "nemorun-artifact-flow-train-model-v1-log"], artifacts
    artifact, link = artifacts
    assert link.type == "markdown" and link.task_run_id is not None  # Prefect stores link artifacts as markdown
    assert f"(file://{first.handle['job_dir']}/log.out)" in link.data, link.data
    assert artifact.type == "markdown" and artifact.task_run_id is not None
    text = artifact.data
    assert TOKEN not in text and API_KEY not in text
    assert first.handle["key"] in text and "local" in text
    config_yaml, executor_yaml = re.findall(r"```yaml\n(.*?)```", text, re.S)
    config = yaml.safe_load(config_yaml)
    assert config["_target_"].endswith(":use_token") and config["value"] == 5
    assert config["api_token"] == "<redacted>"
    executor = yaml.safe_load(executor_yaml)
    assert executor["env_vars"] == {"WANDB_API_KEY": "<redacted>", "MODE": "fast"}


def test_experiment_job_table_also_when_the_flow_fails(prefect_harness: None) -> None:
    from nemorun_prefect import experiment_flow

    exp = run.Experiment("Table_Exp")
    exp.add(run.Partial(use_token, api_token=TOKEN, value=1), executor=_executor(), name="ok")
    breaks = exp.add(run.Partial(_tasks.fail, message="boom"), executor=_executor(), name="breaks")
    exp.add(run.Partial(_tasks.add, a=1, b=1), name="skipped", dependencies=[breaks])

    state = experiment_flow(exp, return_state=True)
    assert state.is_failed(), state
    run_id = state.state_details.flow_run_id
    everything = _artifacts(run_id)  # also Prefect's own (no key): the persisted exception of the failed flow
    for artifact in everything:
        assert TOKEN not in str(artifact.data) and API_KEY not in str(artifact.data), artifact.key
    artifacts = [a for a in everything if a.key is not None]
    assert all(re.fullmatch(r"[a-z0-9-]+", a.key) for a in artifacts), [a.key for a in artifacts]
    # One config artifact per submitted job (not for the task that never ran), one table for the flow run. (Since
    # issue 12 each job also has a log link, which Prefect stores as markdown too: the config ones end -config.)
    assert sorted(a.key for a in artifacts if a.type == "markdown" and a.key.endswith("-config")) == [
        "nemorun-experiment-table-exp-breaks-config", "nemorun-experiment-table-exp-ok-config"]
    (table,) = [a for a in artifacts if a.type == "table"]
    assert table.key == "nemorun-experiment-table-exp-jobs" and table.task_run_id is None
    rows = {row["task"]: row for row in json.loads(table.data)}
    assert set(rows) == {"ok", "breaks", "skipped"}
    ok, breaks_row, skipped = rows["ok"], rows["breaks"], rows["skipped"]
    assert (ok["backend"], ok["state"], ok["exit code"]) == ("local", "SUCCEEDED", 0)
    assert ok["job id"] and ok["log"].endswith("log.out") and f"prefect-{run_id}" in ok["log"]
    assert isinstance(ok["duration (s)"], float) and 0 <= ok["duration (s)"] < 60
    assert (breaks_row["state"], breaks_row["exit code"]) == ("FAILED", 1) and "boom" in breaks_row["message"]
    assert (skipped["state"], skipped["job id"], skipped["exit code"]) == ("NOT SUBMITTED", "", None)
    # The columns a user reads first come first, the long paths last (issue 12).
    assert list(ok) == ["task", "state", "duration (s)", "message", "backend", "job id", "exit code", "log"], list(ok)
    links = {a.key: a for a in artifacts if a.key.endswith("-log")}
    assert sorted(links) == ["nemorun-experiment-table-exp-breaks-log", "nemorun-experiment-table-exp-ok-log"]
    assert f"(file://{ok['log']})" in links["nemorun-experiment-table-exp-ok-log"].data


def test_metrics_a_task_logged_are_a_table_artifact(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task

    @flow(name="metrics-flow")
    def metrics_flow() -> dict:
        return run_nemorun_task(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=8),
                                            steps=3), run.LocalExecutor(), name="train")

    state = metrics_flow(return_state=True)
    assert state.is_completed(), state
    tables = [a for a in _artifacts(state.state_details.flow_run_id) if a.type == "table"]
    assert [a.key for a in tables] == ["nemorun-metrics-flow-train-metrics"], tables
    (table,) = tables
    assert table.task_run_id is not None
    rows = json.loads(table.data)
    assert [(r["step"], r["loss"]) for r in rows] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)], rows
    assert all(list(r) == ["step", "loss", "time"] for r in rows), rows


def test_metric_rows_and_log_urls() -> None:
    from nemorun_prefect.artifacts import METRICS_ROWS, log_url, metric_rows

    rows = metric_rows([{"time": 1.0, "loss": 2.0}, {"time": 2.0, "step": 1, "acc": 0.5}])
    assert rows == [{"step": None, "loss": 2.0, "acc": None, "time": 1.0},
                    {"step": 1, "loss": None, "acc": 0.5, "time": 2.0}]
    assert len(metric_rows([{"time": float(i), "x": i} for i in range(METRICS_ROWS + 5)])) == METRICS_ROWS
    assert log_url("/a dir/log.out") == "file:///a%20dir/log.out"
    assert log_url("https://ray.example/#/jobs/1") == "https://ray.example/#/jobs/1"
    assert log_url("user@cluster:/jobs/x/log.out") is None and log_url(None) is None


def test_a_backend_with_a_ui_of_its_own_gets_a_link_to_the_jobs_page(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect import run_nemorun_task
    from tests.integration._faults import WithDashboard

    @flow(name="Dashboard_Flow")
    def dashboard_flow() -> int:
        return run_nemorun_task(run.Partial(use_token, api_token=TOKEN, value=3), WithDashboard(), name="train")

    state = dashboard_flow(return_state=True)
    assert state.is_completed(), state
    links = {a.key: a for a in _artifacts(state.state_details.flow_run_id)}
    page = links["nemorun-dashboard-flow-train-backend"]
    assert "(http://127.0.0.1:8265/#/jobs/" in page.data, page.data
    assert "nemorun-dashboard-flow-train-log" in links
