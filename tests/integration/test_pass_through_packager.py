"""NeMo Run's pass-through ``run.Packager()`` on real local processes: nothing is packaged, the job runs in the
working directory the executor gives it, on the code already there."""

from __future__ import annotations

import os

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from tests.integration import _tasks

pytestmark = pytest.mark.local


def test_local_run_with_the_pass_through_packager(home, tmp_path):
    wd = tmp_path / "project"
    wd.mkdir()
    (wd / "helper.py").write_text("VALUE = 'from the working directory'\n")
    (wd / "train.py").write_text("import helper\nopen('out.txt', 'w').write(helper.VALUE)\n")
    executor = run.LocalExecutor(working_dir=str(wd), packager=run.Packager())
    run.run(run.Script("train.py", entrypoint="python"), executor=executor)
    assert (wd / "out.txt").read_text() == "from the working directory"
    assert run.run(run.Partial(_tasks.where), executor=executor)["cwd"] == str(wd)
    assert not os.path.exists(os.path.join(home, "packages")), "nothing was packaged"


def test_experiment_with_the_pass_through_packager_as_nemo_run_writes_it(home, tmp_path):
    executor = run.LocalExecutor(packager=run.Packager())
    with run.Experiment("pass-through", executor=executor) as exp:
        exp.add(run.Partial(_tasks.add, a=2, b=3), name="add")
        exp.run(detach=False)
    assert exp.status(return_dict=True)["add"]["state"] == "SUCCEEDED"
    # the store keeps the executor with its pass-through packager, and gives it back
    (job,) = run.Experiment.from_id(exp.id).jobs
    assert job.executor.packager == run.Packager() and type(job.executor.packager) is run.Packager


def test_local_executor_refuses_a_packager_that_packages(home):
    with pytest.raises(ConfigError,
                       match=r"LocalExecutor.packager: .*packager=None or the pass-through run.Packager\(\)"):
        run.LocalExecutor(packager=run.GitArchivePackager())
