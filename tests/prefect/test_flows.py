"""nemorun_prefect.flows: an Experiment as a Prefect flow, on the real Prefect engine with LocalExecutor jobs."""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from tests.integration import _tasks

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _span(marker_dir, label: str) -> tuple[float, float]:
    with open(os.path.join(marker_dir, f"{label}.span")) as f:
        start, end = f.read().split()
    return float(start), float(end)


def _task_run_states(flow_run_id) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=50)
    return {r.name: r.state for r in runs}


def test_experiment_flow_mirrors_dependencies_and_passes_outputs(prefect_harness: None, tmp_path) -> None:
    from nemorun_prefect import experiment_flow

    marks = str(tmp_path)
    exp = run.Experiment("graph")
    first = exp.add(run.Partial(_tasks.sleep_and_record, seconds=1.0, marker_dir=marks, label="first"), name="first")
    exp.add(run.Partial(_tasks.sleep_and_record, seconds=0.1, marker_dir=marks, label="second"), name="second",
            dependencies=[first])
    train = exp.add(run.Partial(_tasks.train, model=run.Config(_tasks.ModelConfig, hidden_size=64), steps=1),
                    name="train")
    exp.add(run.Partial(_tasks.evaluate, checkpoint=f"{train.output.checkpoint}",
                        hidden_size=f"{train.output.hidden_size}"), name="eval")

    state = experiment_flow(exp, return_state=True)
    assert state.is_completed(), state
    assert state.result() == {
        "first": "first", "second": "second",
        "train": {"checkpoint": "/ckpt/h64", "hidden_size": 64},
        "eval": "evaluated /ckpt/h64 (64)",
    }
    assert _span(marks, "second")[0] >= _span(marks, "first")[1]  # the dependent started after its dependency ended
    states = _task_run_states(state.state_details.flow_run_id)
    assert set(states) == {"first", "second", "train", "eval"}
    assert all(s.is_completed() for s in states.values()), states


def test_failed_task_stops_its_dependents_not_the_others(prefect_harness: None, tmp_path) -> None:
    from nemorun_prefect import experiment_flow

    marks = str(tmp_path)
    exp = run.Experiment("failing")
    breaks = exp.add(run.Partial(_tasks.fail, message="boom"), name="breaks")
    dependent = exp.add(run.Partial(_tasks.sleep_and_record, seconds=0.0, marker_dir=marks, label="dependent"),
                        name="dependent", dependencies=[breaks])
    exp.add(run.Partial(_tasks.add, a=1, b=1), name="transitive", dependencies=[dependent])
    exp.add(run.Partial(_tasks.sleep_and_record, seconds=0.0, marker_dir=marks, label="independent"),
            name="independent")

    state = experiment_flow(exp, return_state=True)
    assert state.is_failed(), state
    assert "breaks" in state.message and "dependent" in state.message, state.message
    assert os.path.exists(os.path.join(marks, "independent.span"))
    assert not os.path.exists(os.path.join(marks, "dependent.span"))
    states = _task_run_states(state.state_details.flow_run_id)
    assert states["independent"].is_completed(), states
    assert states["breaks"].is_failed() and "boom" in states["breaks"].message
    # Not run, the Prefect way (issue 12): Prefect's own NotReady (Pending) state, no longer Failed with
    # DependencyFailedError; the flow's error names the dependencies that did not complete.
    for name in ("dependent", "transitive"):
        assert states[name].is_pending() and states[name].name == "NotReady", states[name]
    assert "dependent: NotReady: not run, its dependencies ['breaks'] did not complete" in state.message
    assert "transitive: NotReady: not run, its dependencies ['dependent'] did not complete" in state.message
    # Nothing was submitted for the tasks that did not run.
    job_root = os.path.join(os.environ["NEMORUN_HOME"], "prefect", f"prefect-{state.state_details.flow_run_id}")
    assert sorted(os.listdir(job_root)) == ["breaks", "independent"]


def test_max_concurrent_runs_one_at_a_time(prefect_harness: None, tmp_path) -> None:
    from nemorun_prefect import experiment_flow

    marks = str(tmp_path)
    exp = run.Experiment("limited")
    for label in ("a", "b", "c"):
        exp.add(run.Partial(_tasks.sleep_and_record, seconds=0.5, marker_dir=marks, label=label), name=label)

    assert experiment_flow(exp, max_concurrent=1) == {"a": "a", "b": "b", "c": "c"}
    spans = sorted(_span(marks, label) for label in ("a", "b", "c"))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans  # no two jobs overlapped


def test_cancellation_hook_cancels_the_flow_runs_jobs(prefect_harness: None) -> None:
    from prefect import flow, get_client
    from prefect.runtime import flow_run
    from prefect.states import Cancelled

    from nemorun_core.executors.base import JobState
    from nemorun_prefect import build_experiment_flow, cancel_flow_jobs, submit_nemorun_task

    exp = run.Experiment("cancelled")
    exp.add(run.Partial(_tasks.sleep_forever, child=False), executor=run.LocalExecutor(cancel_grace_s=1.0),
            name="sleeper")
    exp.add(run.Partial(_tasks.add, a=1, b=2), name="never-submitted")
    experiment = build_experiment_flow(exp)
    assert experiment.on_cancellation_hooks and experiment.on_crashed_hooks
    sleeper = exp._tasks["sleeper"]

    # The submit part of the flow, as the flow would do it under its run id; the job keeps running after.
    @flow
    def submit_only() -> str:
        submit_nemorun_task(sleeper.task, sleeper.executor, name="sleeper")
        return str(flow_run.id)

    run_id = submit_only()
    key = f"prefect-{run_id}/sleeper/0"
    from nemorun_prefect.tasks import job_dir_for, recorded_job

    handle = sleeper.executor.find(key, job_dir_for(key))
    assert handle is not None and not sleeper.executor.status(handle).is_terminal
    # The record the hook reads: this task's job, and nothing for a task that never submitted.
    recorded_key, ref = recorded_job("sleeper", run_id)
    assert recorded_key == key and ref.job_handle() == handle
    assert recorded_job("never-submitted", run_id) is None

    with get_client(sync_client=True) as client:
        flow_run_obj = client.read_flow_run(run_id)
    experiment.on_cancellation_hooks[0](experiment, flow_run_obj, Cancelled())
    assert sleeper.executor.status(handle).state is JobState.CANCELLED
    # Idempotent, and only the submitted job is reported.
    assert cancel_flow_jobs(run_id, {n: s.executor for n, s in exp._tasks.items()}) == {
        "sleeper": JobState.CANCELLED}


def test_cancellation_hook_under_another_nemorun_home_finds_the_jobs_in_prefect(prefect_harness: None, tmp_path,
                                                                                monkeypatch) -> None:
    # The hook runs where Prefect runs it (a worker, a serving process): its NEMORUN_HOME need not be the flow run's.
    # The jobs must be found from what Prefect stores, not from files under the flow run's home.
    from prefect import flow, get_client
    from prefect.runtime import flow_run
    from prefect.states import Cancelled

    from nemorun_core.executors.base import JobState
    from nemorun_prefect import on_cancellation_cancel_jobs, submit_nemorun_task
    from nemorun_prefect.tasks import job_dir_for, job_records

    flow_home, hook_home = tmp_path / "flow-home", tmp_path / "hook-home"
    monkeypatch.setenv("NEMORUN_HOME", str(flow_home))
    executor = run.LocalExecutor(cancel_grace_s=1.0)

    @flow
    def two_sleepers() -> str:
        for name in ("first", "second"):
            submit_nemorun_task(run.Partial(_tasks.sleep_forever, child=False), executor, name=name)
        return str(flow_run.id)

    run_id = two_sleepers()
    handles = {}
    for name in ("first", "second"):
        key = f"prefect-{run_id}/{name}/0"
        handles[name] = executor.find(key, job_dir_for(key))
        assert handles[name] is not None and not executor.status(handles[name]).is_terminal
        assert handles[name].job_dir.startswith(str(flow_home))

    monkeypatch.setenv("NEMORUN_HOME", str(hook_home))
    assert not os.path.exists(os.path.join(hook_home, "prefect")), "the hook's home holds no record of the flow run"
    records = job_records(run_id)
    assert sorted(records) == ["first", "second"]
    assert all(r.ref.job_handle() == handles[n] for n, r in records.items()), records
    with get_client(sync_client=True) as client:
        flow_run_obj = client.read_flow_run(run_id)
    on_cancellation_cancel_jobs(subflows=False)(two_sleepers, flow_run_obj, Cancelled())
    for name, handle in handles.items():
        assert executor.status(handle).state is JobState.CANCELLED, name


def test_a_job_recorded_but_not_yet_handled_is_found_by_key_from_another_home(prefect_harness: None, tmp_path,
                                                                              monkeypatch) -> None:
    # A crash between the backend accepting the job and the record of its handle: the record written before the
    # submission (key and job directory, in Prefect) is enough for a hook with another NEMORUN_HOME.
    from prefect import flow
    from prefect.runtime import flow_run

    from nemorun_core.executors.base import JobState
    from nemorun_core.executors.jobkey import JobKey
    from nemorun_core.experiment.jobref import JobRef, executor_config
    from nemorun_core.experiment.tasks import TaskSpec, make_job
    from nemorun_prefect import cancel_flow_jobs
    from nemorun_prefect.tasks import job_dir_for, record_job

    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "flow-home"))
    executor = run.LocalExecutor(cancel_grace_s=1.0)

    @flow
    def crashes_after_submit() -> tuple[str, dict]:
        key = JobKey(f"prefect-{flow_run.id}", "lost")
        spec = TaskSpec("lost", run.Partial(_tasks.sleep_forever, child=False), executor, [])
        record_job(key, JobRef("lost", spec.kind, {}, executor_config(executor)))  # the record before submitting
        os.makedirs(job_dir_for(key), exist_ok=True)
        handle = executor.submit(make_job(spec, str(key), job_dir_for(key)))
        return str(flow_run.id), handle.to_dict()  # ...and no record of the handle: the process "died" here

    run_id, handle_data = crashes_after_submit()
    from nemorun_core.executors.base import JobHandle

    handle = JobHandle.from_dict(handle_data)
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "hook-home"))
    assert cancel_flow_jobs(run_id, timeout=30) == {"lost": JobState.CANCELLED}
    assert executor.status(handle).state is JobState.CANCELLED
