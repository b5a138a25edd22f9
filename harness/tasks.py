"""The task contract every adapter implements, and the task registry.

A task owns everything task-specific: its models, how weights load, its default prune set and recipe, how a model is
evaluated, and which training driver trains it. The runner (harness/runner.py) owns everything shared: the method,
the phases, hard-prune checks, masked retraining and the results record.

Two layers, so no task stubs what it does not use:

* `Task` (the core): `build_model`, `default_prune_set`, `recipe`, `evaluate`, `driver`, `describe`, typed `Options`.
* `LoopTask` (for tasks trained by our loop, harness/training.py): `train_loader`, `eval_loader`, `loss`, `predict`,
  `evaluator`; it implements `evaluate` with the one inference loop and `driver` with `LoopDriver`.

Detection implements the core directly: Ultralytics' trainer is its driver and its validator its evaluation.
Tasks are found by name in `TASKS` (lazy "module:Class" entries; outside packages add theirs through the
`prunebench.tasks` entry-point group).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

import torch
from torch import nn

from harness.config import TrainRecipe
from harness.errors import UserError
from harness.evaluation import Evaluator, inference_on_dataset
from harness.options import build, describe_fields
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.phases import TrainDriver


@dataclass
class NoOptions:
    """A task without options."""


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
    options: Any = None  # an instance of the task's `Options` dataclass (None: its defaults)
    trust_weights: bool = False  # --trust-weights: full unpickling of weight files that need it


class Task(ABC):
    """One task family (dataset + metric) over one or more models."""

    name: ClassVar[str]
    models: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    primary_metric: ClassVar[str]  # key in the evaluation's result dict, e.g. "top1", "Accuracy", "AP50"
    higher_is_better: ClassVar[bool] = True
    headline_rule: ClassVar[str] = "paper"  # compression counting rule shown first: "paper" or "conv"
    data_hint: ClassVar[str] = ""  # how to get the data (named in DataError messages and `benchmark tasks`)
    default_rates: ClassVar[tuple[float, ...]] = ()  # rates run when the user gives none (first one for one run)
    Options: ClassVar[type] = NoOptions  # the task's `--opt key=value` settings, a dataclass (harness/options.py)
    kind: ClassVar[str] = "classification"  # classification | lanes | detection (how exported models are checked)

    def __init__(self, cfg: TaskConfig):
        if cfg.model not in self.models:
            raise UserError(f"unknown model {cfg.model!r} for task {self.name!r}; choose one of: "
                            f"{', '.join(self.models)}")
        if cfg.options is None or isinstance(cfg.options, dict):
            cfg.options = self.parse_options(cfg.options or {})
        self.cfg = cfg
        self.opts = cfg.options

    # ---- options and defaults ----------------------------------------------------------------------------------
    @classmethod
    def parse_options(cls, raw: dict[str, Any]) -> Any:
        """`--opt` values (text or YAML scalars) typed against `Options`; unknown keys list the valid ones."""
        return build(cls.Options, raw, f"--opt for task {cls.name}:", extra=cls.extra_option)

    extra_option: ClassVar[Any] = None  # optional classmethod (key, value) -> value accepting keys outside Options

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        """Default optimisation settings for `model` (a classmethod: run ids are resolved before data is read)."""
        return TrainRecipe()

    @classmethod
    def describe_class(cls) -> dict[str, Any]:
        """What `benchmark tasks` shows."""
        return {"task": cls.name, "models": list(cls.models), "metric": cls.primary_metric,
                "data": cls.data_hint, "options": describe_fields(cls.Options)}

    # ---- the core ----------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build `cfg.model`, loading `cfg.weights` strictly if given (CheckpointError listing keys otherwise)."""

    @abstractmethod
    def default_prune_set(self, model: nn.Module) -> list[str]:
        """Names (as `model.named_parameters()` yields them) of the tensors pruned by default."""

    @abstractmethod
    def evaluate(self, model: nn.Module, desc: str = "eval") -> dict[str, float]:
        """Metrics of `model` on the evaluation split (accuracy-like metrics in percent)."""

    @abstractmethod
    def driver(self) -> "TrainDriver":
        """The training driver that runs this task's phases (harness/phases.py)."""

    @abstractmethod
    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A model input of `batch` items on the task's device (for MACs, latency and model export)."""

    def write_predictions(self, model: nn.Module, path: Path) -> tuple[Path, dict[str, float]] | None:
        """Optional: write the final model's predictions in the benchmark's own file format (e.g. TuSimple JSON
        lines) to `path` and return (path, metrics); None for tasks without such a file."""
        return None

    @classmethod
    def score_files(cls, pred: Path, gt: Path, options: dict[str, Any]) -> dict[str, float]:
        """Score a prediction file against a ground-truth file (`benchmark eval`)."""
        raise UserError(f"task {cls.name!r} has no prediction-file scorer; `benchmark eval` supports: "
                        f"{', '.join(n for n in TASKS.names() if _has_scorer(n))}")

    # ---- provenance ----------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Task facts written into the results record (dataset, evaluator, …)."""
        return {"task": self.name, "model": self.cfg.model, "metric": self.primary_metric,
                "data_fingerprint": self.data_fingerprint(), "options": _plain(self.opts)}

    def ground_truth_files(self) -> list[Path]:
        """Files the metric is computed against (their sha256 goes into the record's provenance)."""
        return []

    def evaluator_identity(self) -> dict[str, str]:
        return {"name": type(self).__name__ + ".evaluate", "version": "1"}

    def data_fingerprint(self) -> str | None:
        """A cheap fingerprint of the dataset folder: names, sizes and mtimes of its top two levels."""
        if self.cfg.data is None:
            return None
        root = Path(self.cfg.data).expanduser().resolve()
        h = hashlib.sha256(str(root).encode())
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else []
            for e in entries[:1000]:
                st = e.stat()
                h.update(f"{e.name}:{st.st_size}:{int(st.st_mtime)}".encode())
            if root.is_file():
                st = root.stat()
                h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
        except OSError:
            pass
        return h.hexdigest()[:16]


class LoopTask(Task):
    """A task trained by our loop: it supplies loaders, a loss, a forward for evaluation and an evaluator."""

    @abstractmethod
    def train_loader(self, seed: int) -> Iterable:
        """Training batches for one epoch, shuffled and augmented from `seed` (the loop derives it from the run
        seed, the phase and the epoch, so every epoch differs and a resumed run sees the same data)."""

    @abstractmethod
    def eval_loader(self) -> Iterable:
        """Evaluation batches (the split the reported metric is computed on)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar task loss (batch mean) for one training batch; moves the batch to `cfg.device` itself."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: Any) -> Any:
        """Forward one eval batch (moving it to the device) into what the evaluator's `process` expects."""

    @abstractmethod
    def evaluator(self) -> Evaluator:
        """A fresh evaluator for this task's metric."""

    def evaluate(self, model: nn.Module, desc: str = "eval") -> dict[str, float]:
        return inference_on_dataset(model, self.eval_loader(), self.evaluator(), self.predict, desc=desc)

    def driver(self) -> "TrainDriver":
        from harness.training import LoopDriver

        return LoopDriver(self)

    def evaluator_identity(self) -> dict[str, str]:
        ev = self.evaluator()
        return {"name": str(getattr(ev, "name", type(ev).__name__)), "version": str(getattr(ev, "version", "1"))}


def _plain(opts: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else opts


def _has_scorer(name: str) -> bool:
    try:
        return TASKS.get(name).score_files.__func__ is not Task.score_files.__func__  # type: ignore[attr-defined]
    except UserError:
        return False


# ---- registry ----------------------------------------------------------------------------------------------------
TASKS: Registry[type[Task]] = Registry("task", base=Task, entry_point_group="prunebench.tasks")
for _name, _target in {
    "digits": "adapters.classification:DigitsTask",
    "cifar10": "adapters.classification:Cifar10Task",
    "imagenet": "adapters.classification:ImageNetTask",
    "tusimple": "adapters.lanes:TuSimpleTask",
    "coco": "adapters.detection:CocoTask",
}.items():
    TASKS.register(_name, _target)


def register_task(name: str, target: str | type[Task]) -> None:
    """Add a task ("module:Class" or the class) so `--task name` finds it."""
    TASKS.register(name, target)


def task_names() -> list[str]:
    return TASKS.names()


def get_task_class(name: str) -> type[Task]:
    return TASKS.get(name)


def build_task(name: str, cfg: TaskConfig) -> Task:
    return get_task_class(name)(cfg)
