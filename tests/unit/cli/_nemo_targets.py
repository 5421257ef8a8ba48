"""Functions and classes written as NeMo Run's CLI guide writes them, importable by dotted path for the tests."""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import nemorun_core as run


@dataclasses.dataclass
class Model:
    hidden_size: int = 256
    num_layers: int = 3
    activation: str = "relu"


@dataclasses.dataclass
class Optimizer:
    learning_rate: float = 1e-3
    betas: List[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])


@run.cli.factory
@run.autoconvert
def nr_model(hidden_size: int = 256, num_layers: int = 3, activation: str = "relu") -> Model:
    return Model(hidden_size=hidden_size, num_layers=num_layers, activation=activation)


@run.cli.factory(namespace="nemo_tests.optimizers")
def nr_optimizer(learning_rate: float = 1e-3) -> run.Config[Optimizer]:
    return run.Config(Optimizer, learning_rate=learning_rate)


def unregistered_big(hidden_size: int = 4096) -> run.Config[Model]:
    """Reached only by dotted path (``model=tests.unit.cli._nemo_targets.unregistered_big``)."""
    return run.Config(Model, hidden_size=hidden_size)


def train_nr(model: Model = nr_model(), optimizer: Optimizer = nr_optimizer(), epochs: int = 10,
             batch_size: int = 32, debug: bool = False, tag: Optional[str] = "x",
             models: Sequence[Model] = (), extra: Optional[dict] = None) -> dict:
    """Train a model (NeMo Run's example shape: config defaults in the signature)."""
    return {"model": model, "optimizer": optimizer, "epochs": epochs, "batch_size": batch_size, "debug": debug,
            "tag": tag, "models": list(models), "extra": extra}


@run.cli.factory(target=train_nr)
def quick() -> run.Partial[train_nr]:
    return run.Partial(train_nr, model=nr_model(hidden_size=64), epochs=1)


def custom_defaults() -> run.Partial[train_nr]:
    return run.Partial(train_nr, epochs=50, batch_size=2048)


class DoubleEpochs(run.Plugin):
    """NeMo Run's DummyPlugin: doubles the task's epochs."""

    def setup(self, task, executor):
        task.epochs *= 2


@run.cli.factory
def double_epochs() -> run.Plugin:
    return DoubleEpochs()


@run.cli.factory(target=Model)
def wide() -> run.Config[Model]:
    """NeMo Run's ``target=`` a type: offered to every parameter taking a Model."""
    return run.Config(Model, hidden_size=8192)
