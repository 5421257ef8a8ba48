"""Functions and dataclasses shared by the CLI tests (importable by name, so configs of them export and load)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional

import nemorun_core as run


@dataclasses.dataclass
class ModelConfig:
    """A model.

    Attributes:
        architecture: the network family.
        hidden_size: width of every layer.
    """

    architecture: str = "transformer"
    hidden_size: int = 512
    num_layers: int = 12
    dropout: float = 0.1


@dataclasses.dataclass
class TrainingConfig:
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 100
    optimizer: str = "adam"


@dataclasses.dataclass
class DataConfig:
    dataset_path: str
    tokenizer_path: str = "tok"
    max_length: int = 512


class Precision(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"


@dataclasses.dataclass
class Layer:
    size: int = 8


@run.cli.entrypoint
def train_model(
    model: ModelConfig,
    training: TrainingConfig,
    data_path: str,
    output_dir: str,
    seed: int = 42,
    debug: bool = False,
):
    """Train a machine learning model with comprehensive configuration.

    Args:
        model: the model to train.
        training: optimizer settings.
        data_path: where the training data lives.
        output_dir: where checkpoints go; created if
            it does not exist.
        seed: random seed.
        debug: print more.
    """
    return {
        "hidden_size": model.hidden_size,
        "learning_rate": training.learning_rate,
        "batch_size": training.batch_size,
        "data_path": data_path,
        "output_dir": output_dir,
        "seed": seed,
        "debug": debug,
    }


def everything(
    layers: list = None,  # type: ignore[assignment]
    shape: tuple = (1, 2),
    precision: Precision = Precision.FP32,
    path: str = "data",
    name: Optional[str] = "x",
    ratio: float = 0.5,
    count: int = 10,
    flag: bool = False,
    tags: Optional[list] = None,
    data: Optional[DataConfig] = None,
    mapping: dict = None,  # type: ignore[assignment]
):
    return locals()


def uses_layers(layers: tuple = (Layer(), Layer(size=16)), count: int = 1):
    return [layer.size for layer in layers]


@run.cli_command
def train(model_size: str = "7b", learning_rate: float = 1e-4, batch_size: int = 32, epochs: int = 100):
    """Train a language model with specified parameters."""
    return {"model_size": model_size, "learning_rate": learning_rate, "batch_size": batch_size, "epochs": epochs}


def failing(x: int = 1):
    raise RuntimeError(f"boom {x}")


def model_with_check(model: ModelConfig):
    return model.hidden_size
