"""NemorunOperator on the real backends: Slurm over SSH (the tunnel from an Airflow ``ssh`` connection holding the
key TEXT), and Docker; sync and deferrable, with dag.test()."""

from __future__ import annotations

import json
import os

import pytest

from tests.airflow._dagrun import run_dag, states, write_dag, xcoms
from tests.integration import services

pytestmark = pytest.mark.airflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slurm
@pytest.mark.ssh
def test_slurm_over_an_ssh_connection_sync_and_deferrable(airflow_db, monkeypatch, capfd) -> None:
    ssh, cluster = services.ssh(), services.slurm()
    with open(ssh.key) as f:
        key_text = f.read()
    with open(ssh.known_hosts) as f:
        host_key = " ".join(f.readline().split()[1:3])
    monkeypatch.setenv("AIRFLOW_CONN_NR_SLURM", json.dumps({
        "conn_type": "ssh", "host": ssh.host, "port": ssh.port, "login": ssh.user,
        "extra": {"private_key": key_text, "host_key": host_key, "job_dir": cluster.job_dir}}))
    dag = write_dag("nr_slurm", """
slurm = run.SlurmExecutor(partition=C["partition"], account=C["account"], python=C["python"], time="00:05:00",
                          env_vars={"PYTHONPATH": C["repo"]})
with DAG("nr_slurm", schedule=None, start_date=START, params={"b": 40}) as dag:
    NemorunOperator(task_id="sync", task=run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig), steps=2),
                    executor=slurm, ssh_conn_id="nr_slurm", overrides=["model.hidden_size=128"], poll_interval=0.5)
    NemorunOperator(task_id="deferred", task=run.Partial(_tasks.add, a=2), executor=slurm, ssh_conn_id="nr_slurm",
                    overrides=["b={{ params.b }}"], deferrable=True, poll_interval=0.5)
""", partition=cluster.partition, account=cluster.account, python=cluster.python, repo=REPO)
    dr = run_dag(dag)
    out = capfd.readouterr()
    log = out.out + out.err
    assert states(dr) == {"sync": "success", "deferred": "success"}, log[-3000:]
    values = xcoms(dr)
    assert values["sync"]["result"] == {"checkpoint": "/ckpt/h128", "hidden_size": 128}
    assert values["deferred"]["result"] == 42
    for value in values.values():
        handle = value["handle"]
        assert handle["backend"] == "slurm" and handle["job_id"].isdigit()
        assert handle["job_dir"].startswith(cluster.job_dir + "/airflow-nr_slurm-")
        assert value["log"].startswith(f"{ssh.user}@{ssh.host}:{ssh.port}:")
    assert "step 1 loss 0.500" in log  # the job's log, read over SSH, in the task log
    assert "PRIVATE KEY" not in json.dumps(values) and key_text.splitlines()[1] not in log


@pytest.mark.docker
def test_docker_deferrable(airflow_db) -> None:
    svc = services.docker()
    dag = write_dag("nr_docker", """
with DAG("nr_docker", schedule=None, start_date=START) as dag:
    NemorunOperator(task_id="in_container", task=run.Partial(_tasks.echo_env, names=["NR_MODE"]),
                    executor=run.DockerExecutor(container_image=C["image"], docker_host=C["host"],
                                                env_vars={"NR_MODE": "container"}),
                    deferrable=True, poll_interval=0.5)
""", image=svc.python, host=svc.host)
    dr = run_dag(dag)
    assert states(dr) == {"in_container": "success"}
    value = xcoms(dr)["in_container"]
    assert value["result"] == {"NR_MODE": "container"}
    assert value["handle"]["backend"] == "docker" and value["handle"]["extras"]["docker_host"] == svc.host
