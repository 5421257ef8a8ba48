"""The example DAGs run the way their docstrings and docs/airflow.md say: `python examples/airflow/<file>.py` in a
fresh Airflow home (no database, no DAGs folder set up), and through a real scheduler triggered as the docs show
(`POST .../dagRuns {"logical_date": null}`, a run without a logical date); a template an override cannot render is
our error, naming the override, with a fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.integration import services

pytestmark = pytest.mark.airflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples", "airflow")


def _fresh_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               NEMORUN_HOME=str(tmp_path / "nemorun-home"), PYTHONPATH=REPO)
    return env


def _run_example(name: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], env=env, cwd=str(cwd), capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", ["single_task_dag.py", "experiment_group_dag.py"])
def test_local_example_runs_with_python_as_its_docstring_says(name, tmp_path) -> None:
    out = _run_example(name, _fresh_env(tmp_path), tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "state=success" in text, text[-4000:]


@pytest.mark.slurm
@pytest.mark.ssh
def test_slurm_example_runs_with_python_and_the_connection_as_its_docstring_says(tmp_path) -> None:
    ssh, cluster = services.ssh(), services.slurm()
    with open(ssh.known_hosts) as f:
        host_key = " ".join(f.readline().split()[1:3])  # "ssh-ed25519 AAAA...", as the docstring's extra
    with open(ssh.key) as f:
        key_text = f.read()
    env = _fresh_env(tmp_path)
    env.update(NEMORUN_EXAMPLE_SLURM_PARTITION=cluster.partition, NEMORUN_EXAMPLE_SLURM_ACCOUNT=cluster.account,
               NEMORUN_EXAMPLE_SLURM_PYTHON=cluster.python)
    conn = {"conn_type": "ssh", "host": ssh.host, "login": ssh.user, "port": ssh.port,
            "extra": {"private_key": key_text, "host_key": host_key, "job_dir": cluster.job_dir}}
    env["AIRFLOW_CONN_NEMORUN_SLURM"] = json.dumps(conn)  # as the docstring says for `python <this file>`
    out = _run_example("slurm_deferrable_dag.py", env, tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "state=success" in text, text[-4000:]
    assert key_text.strip().splitlines()[1] not in text  # the key stays in the connection


def test_single_task_example_succeeds_when_triggered_without_a_logical_date(airflow_server) -> None:
    for name in ("single_task_dag.py", "nemorun_example_tasks.py"):
        shutil.copy(os.path.join(EXAMPLES, name), os.path.join(airflow_server.dags_folder, name))
    airflow_server.wait_for_dag("nemorun_single_task")
    run_id = airflow_server.trigger("nemorun_single_task")["dag_run_id"]  # {"logical_date": null}, as the docs say
    assert airflow_server.wait_for_run("nemorun_single_task", run_id, timeout=240)["state"] == "success"


def test_an_override_template_that_cannot_render_is_our_error_with_a_fix() -> None:
    import jinja2

    import nemorun_core as run
    from nemorun_airflow import NemorunOperator
    from nemorun_core.errors import ConfigError
    from tests.integration import _tasks

    op = NemorunOperator(task_id="train", task=run.Partial(_tasks.add, a=1),
                         overrides=["a=1", "b={{ ds_nodash }}"])
    context = {"params": {}, "run_id": "manual__x"}  # what a run without a logical date has: no ds, ts, ...
    with pytest.raises(ConfigError) as info:
        op.render_template_fields(context, jinja2.Environment(undefined=jinja2.StrictUndefined))
    message = str(info.value)
    assert "train.overrides" in message and "override 1 'b={{ ds_nodash }}'" in message
    assert "no logical date" in message and "dag_run.run_after | ds" in message
