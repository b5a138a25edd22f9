"""A run is a sequence of training phases (dense pretraining, method, masked retrain), each driven the same way:

    run_phase(driver, model, spec, hooks, ctx)

* `PhaseSpec` says what to train: which per-step hooks (the pruning method, or masked retraining), how many epochs
  from which epoch, and the optimisation settings.
* A `TrainDriver` trains: our loop (harness/training.py `LoopDriver`) or Ultralytics' trainer
  (adapters/detection/trainer.py `UltralyticsDriver`). After every epoch it calls `on_epoch_end(stats, view, opt)`,
  where `view` is the module to evaluate (detection: the EMA) and `opt` the optimizer whose state a checkpoint keeps.
* `EpochHook`s do the per-epoch bookkeeping (curves, hard-prune checks and early stop, retrain evaluation,
  checkpoints, logging, timing): small objects with `before_phase` / `after_epoch` / `after_phase`, in the spirit of
  detectron2's engine/hooks.py. They share one `PhaseContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import nn

from harness.methods.base import PruningMethod

@dataclass
class EpochStats:
    """What a driver reports after one epoch."""

    epoch: int
    train_loss: float
    steps: int
    seconds: float
    lr: float
    method_log: dict[str, Any]


EpochEnd = Callable[[EpochStats, nn.Module, torch.optim.Optimizer], bool]


@dataclass
class PhaseSpec:
    """One phase of training: `epochs` epochs (1-based), starting at `start_epoch` (> 1 when resuming)."""

    name: str  # "pretrain" | "method" | "retrain"
    epochs: int
    hooks: PruningMethod  # per-step hooks: the method, MaskedRetrain, or a no-op PruningMethod for pretraining
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    scheduler: str = "constant"
    warmup_iters: int = 0
    amp: str | None = None
    max_steps: int | None = None
    seed: int = 0  # the run seed; drivers derive per-epoch data seeds from it
    start_epoch: int = 1
    optimizer_state: dict[str, Any] | None = None  # restored on resume (our loop and Ultralytics' alike)


class TrainDriver(Protocol):
    """Trains `model` in place for one phase, calling `on_epoch_end` after each epoch (True: stop the phase)."""

    def fit(self, model: nn.Module, spec: PhaseSpec, on_epoch_end: EpochEnd) -> dict[str, Any]:
        """Returns facts for the record (e.g. the schedule it ran)."""
        ...


@dataclass
class PhaseContext:
    """What hooks share within a run: the live model, the phase, the record and the run's services."""

    model: nn.Module
    spec: PhaseSpec
    record: Any  # harness.record.RunRecord
    evaluate: Callable[[nn.Module, str], dict[str, float]]
    primary: Callable[[dict[str, float]], float]
    log: Callable[[str], None]
    save_checkpoint: Callable[[dict[str, Any]], None]
    stop: bool = False  # set by a hook to end the phase after this epoch
    scratch: dict[str, Any] = field(default_factory=dict)


class EpochHook:
    """Per-epoch work around a phase; every method is optional. `after_epoch` runs in list order."""

    def before_phase(self, ctx: PhaseContext) -> None:
        pass

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module,
                    optimizer: torch.optim.Optimizer) -> None:
        pass

    def after_phase(self, ctx: PhaseContext) -> None:
        pass


def run_phase(driver: TrainDriver, ctx: PhaseContext, hooks: list[EpochHook]) -> dict[str, Any]:
    """Train one phase with `driver`, running `hooks` around it; returns the driver's facts."""
    for h in hooks:
        h.before_phase(ctx)
    if ctx.spec.start_epoch > ctx.spec.epochs:
        facts: dict[str, Any] = {}
    else:
        def on_epoch_end(stats: EpochStats, view: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
            for h in hooks:
                h.after_epoch(ctx, stats, view, optimizer)
            return ctx.stop

        facts = driver.fit(ctx.model, ctx.spec, on_epoch_end) or {}
    for h in hooks:
        h.after_phase(ctx)
    return facts
