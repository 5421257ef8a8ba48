"""nemorun_prefect.jobs: NemorunJob / NemorunJobRun as Prefect's JobBlock / JobRun, on a real Prefect API server,
with real local and Slurm jobs: trigger / wait_for_completion / fetch_result, failures with our JobFailedError text,
redacted logs in the flow run's log, and a retried flow run that re-attaches instead of submitting again."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError, JobFailedError
from tests.integration import _tasks, services
from tests.prefect.test_blocks import REPO, SECRET, _cluster_block, _document, secret_digest

pytestmark = pytest.mark.prefect


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "home"))


def _logs(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                limit=200, offset=0)
    return [log.message for log in logs]


def test_the_job_block_implements_prefects_abstract_job_interface() -> None:
    from prefect.blocks.abstract import JobBlock, JobRun

    from nemorun_prefect.jobs import NemorunJob, NemorunJobRun

    assert issubclass(NemorunJob, JobBlock) and issubclass(NemorunJobRun, JobRun)
    assert not NemorunJob.__abstractmethods__ and not NemorunJobRun.__abstractmethods__
    for cls, base, names in ((NemorunJob, JobBlock, ["trigger"]),
                             (NemorunJobRun, JobRun, ["wait_for_completion", "fetch_result"])):
        for name in names:  # async where Prefect declares them async
            assert inspect.iscoroutinefunction(getattr(base, name)) and inspect.iscoroutinefunction(getattr(cls, name))
    assert NemorunJob.get_block_type_slug() == "nemorun-job"


def test_job_block_round_trip_trigger_wait_fetch_on_the_local_executor(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect.blocks import NemorunLocalExecutor, executor_block
    from nemorun_prefect.jobs import NemorunJob

    executor = run.LocalExecutor(env_vars={"WANDB_API_KEY": SECRET, "MODE": "fast"}, cancel_grace_s=2.0)
    executor_block(executor).save("ci-job-local", overwrite=True)
    task = run.Partial(secret_digest, name="WANDB_API_KEY")
    NemorunJob.from_task(task, NemorunLocalExecutor.load("ci-job-local"), name="digest").save("ci-job",
                                                                                              overwrite=True)
    stored = _document("ci-job", "nemorun-job", include_secrets=False)
    assert SECRET not in stored.model_dump_json()  # the executor's secret stays in its own block, encrypted
    assert stored.block_document_references["executor"]["block_document"]["name"] == "ci-job-local"
    loaded = NemorunJob.load("ci-job")
    assert isinstance(loaded.executor, NemorunLocalExecutor) and loaded.executor.executor() == executor
    assert loaded.task_object() == task and loaded.name == "digest"

    @flow
    async def job_flow() -> tuple:
        job = await NemorunJob.load("ci-job")
        job_run = await job.trigger()
        again = await job.trigger()
        await job_run.wait_for_completion()
        await job_run.wait_for_completion()  # idempotent
        return job_run.reason, again.reason, str(job_run.key), str(again.key), await job_run.fetch_result()

    state = asyncio.run(job_flow(return_state=True))
    assert state.is_completed(), state
    first, second, key, again_key, digest = state.result()
    import hashlib

    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()  # the job got the secret
    assert (first, second) == ("submitted", "found") and key == again_key  # one job for two triggers
    assert key == f"prefect-{state.state_details.flow_run_id}/digest/0"
    logs = _logs(state.state_details.flow_run_id)
    assert any("submitted job" in m and key in m for m in logs), logs
    assert all(SECRET not in m for m in logs)


def test_a_failed_job_raises_our_job_failed_error_and_its_log_reaches_the_run_log(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect.blocks import executor_block
    from nemorun_prefect.jobs import NemorunJob

    job = NemorunJob.from_task(run.Partial(_tasks.fail, message=f"bad token {SECRET}"),
                               executor_block(run.LocalExecutor(env_vars={"API_TOKEN": SECRET})), name="fails")
    caught: dict = {}

    @flow
    async def failing_flow() -> None:
        job_run = await job.trigger()
        with pytest.raises(JobFailedError) as info:
            await job_run.wait_for_completion()
        caught["wait"] = str(info.value)
        with pytest.raises(JobFailedError):
            await job_run.fetch_result()

    state = asyncio.run(failing_flow(return_state=True))
    assert state.is_completed(), state
    text = caught["wait"]
    assert "fails" in text and "FAILED" in text.upper() and "RuntimeError" in text, text
    assert SECRET not in text and "<redacted>" in text, text  # scrubbed from the error's log tail
    logs = _logs(state.state_details.flow_run_id)
    assert any(m == "about to fail" for m in logs), logs  # the job's own line, followed into the run log
    assert all(SECRET not in m for m in logs)


def test_a_retried_flow_run_re_attaches_to_the_job_instead_of_submitting_again(prefect_harness: None,
                                                                             tmp_path) -> None:
    from prefect import flow

    from nemorun_prefect.blocks import executor_block
    from nemorun_prefect.jobs import NemorunJob

    from tests.integration._faults import count_run

    marker = tmp_path / "runs.txt"
    job = NemorunJob.from_task(run.Partial(count_run, marker=str(marker), value=7, seconds=1.0),
                               executor_block(run.LocalExecutor()), name="slow")
    tries: list[tuple] = []

    @flow(retries=1, retry_delay_seconds=0)
    async def flaky_flow() -> int:
        job_run = await job.trigger()
        tries.append((job_run.reason, str(job_run.key), job_run.handle.job_id))
        if len(tries) == 1:
            raise RuntimeError("the flow run fails after the trigger, before waiting")
        await job_run.wait_for_completion()
        return await job_run.fetch_result()

    state = asyncio.run(flaky_flow(return_state=True))
    assert state.is_completed(), state
    assert [t[0] for t in tries] == ["submitted", "found"], tries
    assert tries[0][1:] == tries[1][1:]  # the same key and the same job
    assert state.result() == 7
    assert len(marker.read_text().splitlines()) == 1  # the task ran once, for two tries of the flow run


def test_bad_job_blocks_are_clear_errors_naming_the_field() -> None:
    from nemorun_prefect.blocks import executor_block
    from nemorun_prefect.jobs import NemorunJob

    with pytest.raises(ConfigError, match=r"NemorunJob\.task: .*from_task"):
        NemorunJob(name="x", task={"_target_": "no_such_module:f", "_partial_": True},
                   executor=executor_block(run.LocalExecutor())).task_object()
    with pytest.raises(ConfigError, match=r"NemorunJob\.name"):
        NemorunJob.from_task(run.Partial(_tasks.add, a=1), executor_block(run.LocalExecutor()), name="a b/c")


@pytest.mark.slurm
@pytest.mark.ssh
def test_job_block_on_the_slurm_executor_with_the_key_from_the_cluster_block(prefect_harness: None) -> None:
    from prefect import flow

    from nemorun_prefect.blocks import NemorunSlurmExecutor
    from nemorun_prefect.jobs import NemorunJob

    slurm = services.slurm()
    cluster, key_text, _ = _cluster_block("ci-job-slurm-login", slurm.job_dir)
    executor = run.SlurmExecutor(partition=slurm.partition, account=slurm.account, python=slurm.python,
                                 time="00:05:00", env_vars={"PYTHONPATH": REPO, "WANDB_API_KEY": SECRET})
    NemorunSlurmExecutor.from_executor(executor, credentials={"ssh": cluster}).save("ci-job-slurm", overwrite=True)
    stored = _document("ci-job-slurm", "nemorun-slurm-executor", include_secrets=False)
    assert stored.data["partition"] == slurm.partition and stored.data["tunnel"] is None
    assert stored.block_document_references["ssh"]["block_document"]["name"] == "ci-job-slurm-login"
    assert SECRET not in stored.model_dump_json() and key_text.splitlines()[1] not in stored.model_dump_json()
    NemorunJob.from_task(run.Partial(_tasks.add, a=20, b=22), NemorunSlurmExecutor.load("ci-job-slurm"),
                         name="add").save("ci-job-on-slurm", overwrite=True)

    @flow
    async def slurm_job_flow() -> tuple:
        job_run = await (await NemorunJob.load("ci-job-on-slurm")).trigger()
        await job_run.wait_for_completion()
        return job_run.handle.backend, job_run.handle.job_id, await job_run.fetch_result()

    state = asyncio.run(slurm_job_flow(return_state=True))
    assert state.is_completed(), state
    backend, job_id, value = state.result()
    assert (backend, value) == ("slurm", 42) and job_id


def test_the_job_block_example_runs_as_its_docstring_says(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(NEMORUN_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=REPO,
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "examples", "prefect_job_block.py")], env=env,
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "result: {'steps': 3, 'final_loss': 0.729}" in proc.stdout, output
    assert "(submitted); again:" in output and "(found)" in output, output
    assert "step 2: loss=0.7290 (token <redacted>)" in output, output
    assert "example-token-0123456789" not in output
