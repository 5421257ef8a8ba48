"""Code written for NeMo Run, with only the import renamed (see docs/migrating-from-nemo-run.md).

    python examples/from_nemo_run.py

Runs a small experiment on this machine: a dataclass model config built by an ``@run.autoconvert`` factory, a
plugin that checks the learning rate through ``task.config``, two tasks of one name (``train``, ``train_1``), the
second after the first, NeMo Run's module paths and its pass-through ``run.Packager()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nemorun_core as run  # was: import nemo_run as run
from nemorun_core.core.execution.local import LocalExecutor  # was: from nemo_run.core.execution.local import ...
from nemorun_core.exceptions import PluginError
from nemorun_core.run.plugin import ExperimentPlugin  # was: from nemo_run.run.plugin import ExperimentPlugin


@dataclass
class Model:
    hidden_size: int = 256
    num_layers: int = 2


@run.autoconvert
def small_model() -> Model:
    return Model(hidden_size=128, num_layers=2)


def train(model: Model, lr: float = 1e-3, epochs: int = 2) -> dict:
    loss = 1.0
    for epoch in range(epochs):
        loss *= 1 - lr * model.hidden_size / 100
        print(f"epoch {epoch}: loss {loss:.4f}", flush=True)
    return {"hidden_size": model.hidden_size, "loss": round(loss, 4)}


class ValidateLR(ExperimentPlugin):
    """Refuses a task whose learning rate is not positive, before anything is submitted."""

    def setup(self, task, executor):
        if task.config.get("lr", 0) <= 0:
            raise ValueError(f"lr must be positive, got {task.config.lr}")


def main() -> None:
    executor = LocalExecutor(packager=run.Packager())  # the code is already here: nothing to package
    with run.Experiment("from-nemo-run", executor=executor) as exp:
        first = exp.add(run.Partial(train, model=small_model(), lr=3e-3), name="train", plugins=[ValidateLR()])
        second = exp.add(run.Partial(train, model=small_model(), lr=1e-3, epochs=3), name="train",
                         dependencies=[first], plugins=[ValidateLR()])
        exp.run(sequential=True)
    states = exp.status(return_dict=True)
    print(f"{first}: {states[first]['state']}, {second}: {states[second]['state']}")
    try:
        run.run(run.Partial(train, model=small_model(), lr=-1.0), executor=executor, plugins=[ValidateLR()])
    except PluginError as exc:  # the plugin's ValueError, named with the plugin and the task
        print(f"refused before submission: {exc}")


if __name__ == "__main__":
    main()
