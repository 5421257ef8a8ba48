"""Importable targets shared by the config tests (round trips need names that resolve)."""

from __future__ import annotations

import dataclasses
import enum
import pathlib
from typing import Callable, List, Optional, Tuple

import nemorun_core as run


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class ModelConfig:
    architecture: str = "transformer"
    hidden_size: int = 512
    num_layers: int = 12
    num_heads: int = 8
    dropout: float = 0.1
    activation: str = "gelu"

    def __post_init__(self):
        assert self.hidden_size % self.num_heads == 0, "hidden_size must be divisible by num_heads"


@dataclasses.dataclass
class BigModelConfig(ModelConfig):
    experts: int = 4


@dataclasses.dataclass
class TrainingConfig:
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 100
    optimizer: str = "adam"
    scheduler: Optional[str] = "cosine"
    tags: Optional[List[str]] = None


@dataclasses.dataclass
class DataConfig:
    dataset_path: str
    tokenizer_path: str = "tok"
    max_length: int = 512
    num_workers: int = 4


@dataclasses.dataclass
class Point:
    x: int = 0
    y: int = 0


@dataclasses.dataclass
class Everything:
    """One field per kind of value the serializers must carry."""

    name: str = ""
    ratio: float = 0.0
    shape: Tuple[int, ...] = ()
    maybe: Optional[int] = 0
    color: Color = Color.RED
    where: pathlib.Path = pathlib.Path(".")
    point: Optional[Point] = None
    activation: Optional[Callable[[float], float]] = None
    nested: Optional[dict] = None
    items: Optional[list] = None


def relu(x: float) -> float:
    return max(0.0, x)


def train_model(model: ModelConfig, training: TrainingConfig, data: DataConfig, seed: int = 42):
    """Return what it was given, so tests can check what a built task received."""
    return {"model": model, "training": training, "data": data, "seed": seed}


def add(a: int, b: int = 1) -> int:
    return a + b


def fails(x: int = 0):
    raise RuntimeError(f"boom {x}")


@run.partial
def decorated_train(model: ModelConfig, seed: int = 42) -> int:
    """Decorated training function."""
    return model.hidden_size + seed


@run.autoconvert
def small_model() -> ModelConfig:
    """A small model."""
    return ModelConfig(hidden_size=256, num_layers=4)


@run.autoconvert(partial=True)
def train_recipe():
    return [ModelConfig(hidden_size=64, num_heads=4), TrainingConfig(batch_size=8)]


def nested_experiment():
    return run.Partial(
        train_model,
        model=run.Config(ModelConfig, hidden_size=768, num_heads=12),
        training=run.Config(TrainingConfig, learning_rate=3e-4, tags=["a", "b"]),
        data=run.Config(DataConfig, dataset_path="/data/train"),
        seed=7,
    )


def concat(*parts: str, sep: str = "") -> str:
    return sep.join(parts)
