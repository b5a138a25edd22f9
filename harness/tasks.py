"""The task contract every adapter implements, and the task registry.

A task owns everything task-specific: which models it can build, how weights load, its data loaders, its loss, its
evaluator and its default prune set. The runner (harness/runner.py) owns everything shared: the pruning method, the
training loop, hard-prune checks, masked retrain and the results record.

Adapters register lazily (module path strings), so `benchmark run --task digits` never imports Ultralytics.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import torch
from torch import nn

from harness.errors import UserError
from harness.evaluation import Evaluator, inference_on_dataset


@dataclass
class TaskConfig:
    """What the runner tells a task about the user's request."""

    model: str
    data: Path | None = None
    weights: Path | None = None
    batch_size: int | None = None  # None: the task's default
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workers: int = 0
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # task-specific knobs (e.g. imgsz, aux head)


@dataclass
class TrainRecipe:
    """A task's default optimisation settings for the pruning phase (overridable from the CLI)."""

    optimizer: str = "adam"  # adam | sgd | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "constant"  # constant | cosine (per epoch) | cosine-iter (per iteration), over each phase
    warmup_iters: int = 0  # linear warm-up iterations at the start of each phase (cosine-iter only)
    epochs: int = 10  # SLR/ADMM (method) epochs
    retrain_epochs: int = 0  # masked-retrain epochs
    retrain_lr: float | None = None  # None: same as lr
    pretrain_epochs: int = 0  # dense training when no weights are given
    pretrain_lr: float | None = None
    check_every: int = 0  # hard-prune check period in epochs (0: only at the end)


class Task(ABC):
    """One task family (dataset + metric) over one or more models."""

    name: ClassVar[str]
    models: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    primary_metric: ClassVar[str]  # key in the evaluator's result dict, e.g. "top1", "Accuracy", "AP50"
    higher_is_better: ClassVar[bool] = True
    headline_rule: ClassVar[str] = "paper"  # compression counting rule shown first: "paper" or "conv"
    data_hint: ClassVar[str] = ""  # how to get the data (named in DataError messages)
    default_rates: ClassVar[tuple[float, ...]] = ()  # rates run when the user gives none (first one for one run)

    def __init__(self, cfg: TaskConfig):
        if cfg.model not in self.models:
            raise UserError(
                f"unknown model {cfg.model!r} for task {self.name!r}; choose one of: {', '.join(self.models)}"
            )
        self.cfg = cfg

    # ---- model -------------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build `cfg.model`, loading `cfg.weights` strictly if given (CheckpointError listing keys otherwise)."""

    @abstractmethod
    def default_prune_set(self, model: nn.Module) -> list[str]:
        """Names (as `model.named_parameters()` yields them) of the tensors pruned by default."""

    def recipe(self) -> TrainRecipe:
        """Default optimisation settings for this task and model."""
        return TrainRecipe()

    # ---- data --------------------------------------------------------------------------------------------------
    @abstractmethod
    def train_loader(self) -> Iterable:
        """Training batches (augmented)."""

    @abstractmethod
    def eval_loader(self) -> Iterable:
        """Evaluation batches (the split the reported metric is computed on)."""

    # ---- optimisation and evaluation ---------------------------------------------------------------------------
    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar task loss (batch mean) for one training batch; moves the batch to `cfg.device` itself."""

    @abstractmethod
    def evaluator(self) -> Evaluator:
        """A fresh evaluator for this task's metric."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: Any) -> Any:
        """Forward one eval batch (moving it to the device) into what the evaluator's `process` expects."""

    def evaluate(self, model: nn.Module, desc: str = "eval") -> dict[str, float]:
        """Metrics of `model` on the eval split. Tasks with their own validator (detection) override this."""
        return inference_on_dataset(model, self.eval_loader(), self.evaluator(), self.predict, desc=desc)

    def write_predictions(self, model: nn.Module, path: Path) -> tuple[Path, dict[str, float]] | None:
        """Optional: write the final model's predictions in the benchmark's own file format (e.g. TuSimple JSON
        lines) to `path` and return (path, metrics); None for tasks without such a file."""
        return None

    def fit_epochs(self) -> Callable | None:
        """Optional: a task-specific training driver replacing harness.training's loop (detection: Ultralytics).

        Return None to use the shared loop (the default). See harness/training.py for the driver signature.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Task facts written into the results record (dataset fingerprint, evaluator identity, …)."""
        return {"task": self.name, "model": self.cfg.model, "metric": self.primary_metric}


# ---- registry ----------------------------------------------------------------------------------------------------
# task name -> "module:Class". Imported on first use.
_REGISTRY: dict[str, str] = {
    "digits": "adapters.classification:DigitsTask",
    "cifar10": "adapters.classification:Cifar10Task",
    "imagenet": "adapters.classification:ImageNetTask",
    "tusimple": "adapters.lanes:TuSimpleTask",
    "coco": "adapters.detection:CocoTask",
}


def register_task(name: str, target: str) -> None:
    """Add a task ("module:Class") so `--task name` finds it; for users' own adapters."""
    _REGISTRY[name] = target


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task_class(name: str) -> type[Task]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"task {name!r} is not available in this install ({exc}); reinstall prunebench") from None
    return getattr(module, cls_name)


def build_task(name: str, cfg: TaskConfig) -> Task:
    return get_task_class(name)(cfg)
