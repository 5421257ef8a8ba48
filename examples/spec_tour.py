"""The examples of the specification, run on this machine with ``import nemorun_core as run``.

Each section mirrors one example of the spec; where the spec leaves a name undefined (``train_transformer``,
``slurm_exec``) it is defined here with a small local stand-in. Run it with:

    python examples/spec_tour.py
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional

import nemorun_core as run


# -- Advanced Configuration System ------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    architecture: str = "transformer"
    hidden_size: int = 512
    num_layers: int = 12
    num_heads: int = 8
    dropout: float = 0.1
    activation: str = "gelu"

    def __post_init__(self):
        assert self.hidden_size % self.num_heads == 0, "hidden_size must be divisible by num_heads"


@dataclass
class TrainingConfig:
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 100
    optimizer: str = "adam"
    scheduler: Optional[str] = "cosine"
    warmup_steps: int = 1000
    gradient_clipping: float = 1.0


def train_model(model_config: ModelConfig = None, learning_rate: float = 1e-4, batch_size: int = 32,
                epochs: int = 100):
    print(f"training lr={learning_rate} batch={batch_size}")
    return {"learning_rate": learning_rate, "batch_size": batch_size}


def configuration() -> None:
    config = run.Config(ModelConfig, hidden_size=1024, num_layers=24, num_heads=16)
    model = config.build()  # Returns validated ModelConfig instance
    assert model.hidden_size == 1024

    train_fn = run.Partial(train_model, learning_rate=1e-4, batch_size=64)
    script_config = run.Script("train_script.py", env={"CUDA_VISIBLE_DEVICES": "0,1"}, cwd="/path/to/project")

    # type safety: typos and wrong types fail now, with the path and a suggestion
    for bad in (lambda: run.Config(ModelConfig, hiden_size=3), lambda: run.Config(ModelConfig, hidden_size="big"),
                lambda: run.Config(ModelConfig, hidden_size=7).build()):
        try:
            bad()
        except Exception as exc:  # noqa: BLE001 - showing the messages
            print(f"  {type(exc).__name__}: {exc}")

    # walking, broadcasting, diffing, exporting
    bigger = config.walk(hidden_size=lambda v: v * 2)
    print(run.diff(config, bigger))
    print(train_fn.broadcast(batch_size=128).batch_size)
    print(config.to_yaml())
    assert run.config.serialize.from_yaml(config.to_yaml()) == config
    print(config.to_code())
    print(script_config)


# -- Multi-Environment Execution (local parts) ---------------------------------------------------------------------
@run.partial
def distributed_training(config, num_epochs=100):
    """Distributed training function."""
    return {"epochs": num_epochs, "hidden": config["hidden_size"]}


def execution(project_dir: str) -> None:
    local_exec = run.LocalExecutor(
        env_vars={"CUDA_VISIBLE_DEVICES": "0,1", "PYTHONPATH": project_dir, "WANDB_PROJECT": "ml-experiment"},
        working_dir=project_dir,
    )
    result_local = distributed_training.with_executor(local_exec)({"hidden_size": 8}, num_epochs=10)
    assert result_local == {"epochs": 10, "hidden": 8}

    with run.Experiment() as exp:
        exp.add(run.Config(train_model, batch_size=32), executor=run.LocalExecutor())
    assert exp.results()["train_model"]["batch_size"] == 32


# -- Reproducibility: a task reads another task's output -------------------------------------------------------------
def train_llm(model_size: str, dataset: str) -> str:
    return f"/checkpoints/{model_size}-{dataset}"


def evaluate_model(checkpoint_path: str) -> str:
    return f"evaluated {checkpoint_path}"


def reproducibility() -> None:
    with run.Experiment(name="llm_finetuning", description="Fine-tuning Llama-2-7B on custom dataset") as exp:
        exp.add(run.Config(train_llm, model_size="7b", dataset="custom"), executor=run.LocalExecutor(),
                name="train_task")
        exp.add(run.Config(evaluate_model, checkpoint_path="{train_task.output}"), executor=run.LocalExecutor())
    assert exp.results()["evaluate_model"] == "evaluated /checkpoints/7b-custom"


# -- Advanced Experiment Management -----------------------------------------------------------------------------------
def train_transformer(model_config: dict, training_config: dict) -> dict:
    score = model_config["hidden_size"] * training_config["learning_rate"]
    run.log_metrics({"score": score})
    return {"score": score, **model_config, **training_config}


def evaluate_models() -> str:
    return "all models evaluated"


def analyze_results() -> str:
    return "analysis done"


def experiment_management() -> None:
    local_exec = slurm_exec = run.LocalExecutor()  # the spec runs training on Slurm; here everything is local
    with run.Experiment(
        name="transformer-architecture-study",
        description="Comprehensive study of transformer architectures",
        tags=["transformer", "nlp", "research"],
    ) as exp:
        model_configs = [
            {"hidden_size": 512, "num_layers": 12, "num_heads": 8},
            {"hidden_size": 768, "num_layers": 12, "num_heads": 12},
        ]
        training_configs = [{"learning_rate": 1e-4, "batch_size": 32}, {"learning_rate": 2e-4, "batch_size": 64}]
        training_tasks = []
        for model_config in model_configs:
            for training_config in training_configs:
                task = exp.add(
                    train_transformer,
                    model_config=model_config,
                    training_config=training_config,
                    executor=slurm_exec,
                    name=f"train-{model_config['hidden_size']}-{training_config['learning_rate']}",
                )
                training_tasks.append(task)
        exp.add(evaluate_models, dependencies=training_tasks, executor=local_exec, name="comprehensive-evaluation")
        exp.add(analyze_results, dependencies=training_tasks, executor=local_exec, name="results-analysis")
        exp.run(tail_logs=True, sequential=False, max_concurrent=4)

    exp = run.Experiment.from_id(exp.id)
    metadata = exp.metadata()
    configs = exp.configurations()
    results = exp.results()
    task_logs = exp.logs("train-768-0.0002")
    task_metrics = exp.metrics("train-768-0.0002")
    print(metadata["id"], len(configs), results["results-analysis"], task_metrics, len(task_logs))


# -- Plugins ---------------------------------------------------------------------------------------------------------
class AdvancedLoggingPlugin(run.Plugin):
    """Advanced logging plugin with custom configuration."""

    def __init__(self, log_level: str = "INFO", log_file: str = None):
        self.log_level = log_level
        self.log_file = log_file

    def setup(self, task, executor):
        if hasattr(executor, "env_vars"):
            executor.env_vars.update({"LOG_LEVEL": self.log_level, "LOG_FILE": self.log_file or "/tmp/nemo_run.log",
                                      "WANDB_PROJECT": "nemo-run-experiments"})
        if hasattr(task, "config"):
            task.config.logging = {"level": self.log_level, "file": self.log_file, "wandb": True}


class ResourceMonitoringPlugin(run.Plugin):
    def setup(self, task, executor):
        if hasattr(executor, "env_vars"):
            executor.env_vars.update({"ENABLE_MONITORING": "true", "MONITOR_INTERVAL": "60"})


class CustomValidationPlugin(run.Plugin):
    def setup(self, task, executor):
        if hasattr(task, "config"):
            if task.config.get("learning_rate", 0) <= 0:
                raise ValueError("Learning rate must be positive")


def read_env(learning_rate: float = 3e-4, logging: dict | None = None) -> dict:
    return {"logging": logging, **{k: os.environ.get(k) for k in ("LOG_LEVEL", "ENABLE_MONITORING")}}


def plugins() -> None:
    plugins = [AdvancedLoggingPlugin(log_level="DEBUG"), ResourceMonitoringPlugin(), CustomValidationPlugin()]
    config = run.Partial(read_env)
    executor = run.LocalExecutor()
    assert run.run(config, executor=executor, plugins=plugins) == {
        "logging": {"level": "DEBUG", "file": None, "wandb": True}, "LOG_LEVEL": "DEBUG", "ENABLE_MONITORING": "true"}
    try:  # the validation plugin reads task.config: a learning rate that is not positive is refused
        run.run(run.Partial(read_env, learning_rate=-1), executor=executor, plugins=plugins)
    except run.errors.PluginError as exc:
        assert "Learning rate must be positive" in str(exc)
    else:
        raise AssertionError("CustomValidationPlugin let learning_rate=-1 run")


if __name__ == "__main__":
    configuration()
    with tempfile.TemporaryDirectory() as project:
        execution(project)
    reproducibility()
    experiment_management()
    plugins()
    print("spec tour: all examples ran")
