"""NemorunJobTrigger (serialization, one poll per round for many jobs, kill vs. cleanup) and NemorunJobSensor."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import nemorun_core as run
from nemorun_airflow.triggers import NemorunJobTrigger
from nemorun_core.executors.base import JobHandle, JobState
from nemorun_core.experiment.jobref import executor_config
from nemorun_core.experiment.tasks import TaskSpec, make_job
from tests.airflow import _jobs
from tests.airflow._dagrun import run_dag, states, task_instances, write_dag
from tests.integration import _tasks

pytestmark = [pytest.mark.airflow, pytest.mark.local]

SECRET = "wandb-0011223344556677"


def _submit(executor, task, tmp_path, name: str) -> JobHandle:
    job_dir = tmp_path / "jobs" / name
    job_dir.mkdir(parents=True)
    return executor.submit(make_job(TaskSpec(name, task, executor, []), f"trigger-test/{name}/0", str(job_dir)))


def _wait(executor, handle, timeout: float = 30):
    deadline = time.monotonic() + timeout
    status = executor.status(handle)
    while not status.is_terminal and time.monotonic() < deadline:
        executor.wait_any([handle], 0.2)
        status = executor.status(handle)
    return status


def test_trigger_serializes_to_plain_data_without_secrets(tmp_path) -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    executor = run.LocalExecutor(env_vars={"WANDB_API_KEY": SECRET, "MODE": "fast"})
    handle = JobHandle.create("local", "123", "k/t/0", str(tmp_path))
    trigger = NemorunJobTrigger(handle=handle.to_dict(), executor=executor_config(executor), ssh_conn_id="slurm",
                                offset=7, poll_interval=2.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "nemorun_airflow.triggers.NemorunJobTrigger"
    assert sorted(kwargs) == ["cancel_on_kill", "connections", "executor", "handle", "masks", "offset",
                              "poll_interval"]
    assert kwargs["connections"] == {"ssh": "slurm"}  # ssh_conn_id= is the "ssh" slot; ids only, never secrets
    assert SECRET not in json.dumps(kwargs) and "<redacted>" in json.dumps(kwargs)
    # what Airflow stores for the triggerer round-trips into an equal trigger
    stored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    again = NemorunJobTrigger(**stored)
    assert again.serialize() == (classpath, kwargs)


def test_trigger_redacts_secrets_it_is_given_only_as_digests(tmp_path, capfd) -> None:
    from nemorun_core.secrets import secret_digests

    secret = "sk-trigger-only-0123456789"
    executor = run.LocalExecutor()
    handle = _submit(executor, run.Partial(_jobs.train_with_token, hidden_size=1, api_token=secret, steps=1),
                     tmp_path, "printer")
    trigger = NemorunJobTrigger(handle=handle.to_dict(), executor=executor_config(executor), poll_interval=0.2,
                                masks=secret_digests([secret]))
    assert secret not in json.dumps(trigger.serialize()[1])
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["status"]["state"] == "SUCCEEDED"
    out = capfd.readouterr().out
    assert "step 0 of h1 token=<redacted> wandb=None" in out and secret not in out


def test_triggers_of_one_executor_share_one_poll_per_round(tmp_path, capfd) -> None:
    calls = tmp_path / "calls"
    executor = _jobs.CountingLocalExecutor(calls=str(calls))
    handles = [_submit(executor, run.Partial(_jobs.count_run, marker=str(tmp_path / f"m{i}"), value=i,
                                             seconds=0.5 + i), tmp_path, f"job{i}") for i in range(3)]
    config = executor_config(executor)
    triggers = [NemorunJobTrigger(handle=h.to_dict(), executor=config, poll_interval=0.2) for h in handles]

    async def first_events():
        # Executors built first (each in a worker thread, finishing in any order): all three triggers then subscribe
        # before the first round, instead of one joining a round late.
        await asyncio.gather(*(t._executor() for t in triggers))
        return await asyncio.gather(*(anext(t.run()) for t in triggers))

    events = asyncio.run(first_events())
    assert [e.payload["status"]["state"] for e in events] == ["SUCCEEDED"] * 3
    assert [e.payload["offset"] for e in events] == [1, 1, 1]  # each job printed one line, logged by its trigger
    assert capfd.readouterr().out.count("counted run, returning 2") == 1
    rounds = [json.loads(line) for line in calls.read_text().splitlines()]
    # one poll_many call per round for every job still running, never one call per trigger
    # (per-trigger polling would make calls of one job each)
    assert rounds[0] == sorted(h.key for h in handles)
    sizes = [len(r) for r in rounds]
    assert sizes == sorted(sizes, reverse=True) and set(sizes) == {3, 2, 1}, sizes


def test_an_unreachable_backend_fails_the_trigger_after_repeated_polls(tmp_path) -> None:
    from nemorun_airflow.triggers import MAX_POLL_FAILURES

    handle = JobHandle.create("local", "1", "trigger-test/gone/0", str(tmp_path))
    trigger = NemorunJobTrigger(handle=handle.to_dict(), executor=executor_config(_jobs.UnreachableLocalExecutor()),
                                poll_interval=0.05)
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["error"] == (f"polling the job failed {MAX_POLL_FAILURES} times in a row; last error: "
                                      "ConnectionError: injected: the backend is unreachable")


def test_on_kill_cancels_the_job_but_leaving_the_triggerer_does_not(tmp_path) -> None:
    executor = run.LocalExecutor()
    handle = _submit(executor, run.Partial(_tasks.sleep_forever, child=False), tmp_path, "sleeper")
    trigger = NemorunJobTrigger(handle=handle.to_dict(), executor=executor_config(executor), poll_interval=0.2)

    async def moved_then_killed():
        # The triggerer stops running the trigger (restart, another triggerer takes it): run() is cancelled and
        # cleanup() called; the job must keep running.
        task = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await trigger.cleanup()
        state_after_move = executor.status(handle).state
        # a user kills the deferred task: on_kill cancels
        await NemorunJobTrigger(**trigger.serialize()[1]).on_kill()
        return state_after_move

    assert asyncio.run(moved_then_killed()) is JobState.RUNNING
    assert _wait(executor, handle).state is JobState.CANCELLED

    # a sensor's trigger never cancels: the job is not its own
    other = _submit(executor, run.Partial(_tasks.sleep_forever, child=False), tmp_path, "not-mine")
    asyncio.run(NemorunJobTrigger(handle=other.to_dict(), executor=executor_config(executor),
                                  cancel_on_kill=False).on_kill())
    assert executor.status(other).state is JobState.RUNNING
    executor.cancel(other)


def test_sensor_waits_for_jobs_from_an_experiment_and_from_xcom(airflow_db, tmp_path) -> None:
    good = run.Experiment("sensed")
    good.add(run.Partial(_jobs.count_run, marker=str(tmp_path / "good"), value=5, seconds=4), name="job")
    good.run(detach=True, quiet=True)
    bad = run.Experiment("sensed-bad")
    bad.add(run.Partial(_tasks.fail, message="sensed failure"), name="job")
    bad.run(detach=True, quiet=True)

    dag = write_dag("nr_sensor", """
with DAG("nr_sensor", schedule=None, start_date=START) as dag:
    NemorunJobSensor(task_id="experiment_deferred", experiment_id=C["good"], task_name="job", deferrable=True,
                     poke_interval=0.2)
    NemorunJobSensor(task_id="experiment_failed", experiment_id=C["bad"], task_name="job", poke_interval=0.2,
                     retries=0)
    producer = NemorunOperator(task_id="producer", task=run.Partial(_tasks.add, a=1, b=2), poll_interval=0.2)
    producer >> NemorunJobSensor(task_id="from_xcom", handle="{{ ti.xcom_pull(task_ids='producer') }}",
                                 executor=run.LocalExecutor(), poke_interval=0.2)
""", good=good.id, bad=bad.id)
    dr = run_dag(dag)
    assert states(dr) == {"experiment_deferred": "success", "experiment_failed": "failed", "producer": "success",
                          "from_xcom": "success"}


def test_sensor_retries_when_the_backend_stays_unreachable(airflow_db, tmp_path) -> None:
    executor = run.LocalExecutor()
    handle = _submit(executor, run.Partial(_tasks.sleep_forever, child=False), tmp_path, "watched")
    try:
        dag = write_dag("nr_sensor_unreachable", """
with DAG("nr_sensor_unreachable", schedule=None, start_date=START) as dag:
    NemorunJobSensor(task_id="watch", handle=C["handle"], executor=_jobs.UnreachableLocalExecutor(),
                     deferrable=True, poke_interval=0.05, retries=1, retry_delay=0)
""", handle=handle.to_dict())
        dr = run_dag(dag)
        assert states(dr) == {"watch": "failed"}
        # polling failed, the job did not: the try is retried (a failed job fails the sensor without retries)
        assert task_instances(dr)["watch"].try_number == 2
        assert executor.status(handle).state is JobState.RUNNING  # and the sensor never cancels the job
    finally:
        executor.cancel(handle)
