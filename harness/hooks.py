"""The per-epoch work of a run as small hooks (harness/phases.py `EpochHook`), each testable on a toy model.

    PhaseTimer      wall time of the phase, accumulated across resumes
    CurveLog        one point per epoch in the record's curves (loss, lr, the method's log), the dual-update log
    HardPruneCheck  evaluate a hard-pruned deep copy every `check_every` epochs and at the end; early stop
    StepBudget      end the phase once the method's step budget (--max-method-steps) is spent
    RetrainEval     evaluate after every retrain epoch
    EpochLog        one log line per epoch (readable in nohup/SLURM logs, where progress bars are off)
    Checkpoint      the resume checkpoint every `every` epochs, at a phase's end and on early stop

A phase's hook list is built by the runner (`Run.hooks_for`); order matters only in that checks run before the log
line that reports them and the checkpoint comes last, so it holds everything the epoch recorded.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from harness.phases import EpochHook, EpochStats, PhaseContext
from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan


def hard_pruned_copy(model: nn.Module, plan: SparsityPlan, projection: str) -> nn.Module:
    """A deep copy with every planned tensor projected (the live model is untouched)."""
    clone = copy.deepcopy(model)
    hard_prune_(dict(clone.named_parameters()), plan.ratios, projection)
    return clone


class PhaseTimer(EpochHook):
    """`record.timing[<phase>_seconds]`: this phase's wall time, including the time before a resume."""

    def before_phase(self, ctx: PhaseContext) -> None:
        self.key = f"{ctx.spec.name}_seconds"
        self.base = float(ctx.record.timing.get(self.key, 0.0))
        self.t0 = time.perf_counter()

    def _update(self, ctx: PhaseContext) -> None:
        ctx.record.timing[self.key] = self.base + time.perf_counter() - self.t0

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        self._update(ctx)

    def after_phase(self, ctx: PhaseContext) -> None:
        self._update(ctx)


class CurveLog(EpochHook):
    """Appends the epoch to `record.curves[curve]` and counts it in `record.epochs[phase]`."""

    def __init__(self, curve: str):
        self.curve = curve

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        point = {"epoch": stats.epoch, "loss": stats.train_loss, "seconds": stats.seconds, "lr": stats.lr,
                 **stats.method_log}
        if self.curve == "train":
            point = {"phase": ctx.spec.name, **point}
        ctx.record.curves[self.curve].append(point)
        ctx.record.epochs[ctx.spec.name] = stats.epoch
        ctx.record.epochs[f"{ctx.spec.name}_steps"] = ctx.spec.hooks.steps_taken
        if ctx.spec.name == "method":  # the method's dual/Z updates (retraining has none: keep them)
            ctx.record.updates = list(getattr(ctx.spec.hooks, "updates", ctx.record.updates))

    def after_phase(self, ctx: PhaseContext) -> None:
        ctx.record.epochs.setdefault(ctx.spec.name, 0)


class HardPruneCheck(EpochHook):
    """Paper Figs. 1-2: the metric of a hard-pruned copy during the method phase; optional early stop."""

    def __init__(self, plan: SparsityPlan, projection: str, check_every: int, early_stop: float | None,
                 higher_is_better: bool):
        self.plan, self.projection = plan, projection
        self.check_every, self.early_stop, self.higher = check_every, early_stop, higher_is_better

    def due(self, epoch: int, last: int) -> bool:
        return (self.check_every > 0 and epoch % self.check_every == 0) or epoch == last

    def reached(self, value: float) -> bool:
        assert self.early_stop is not None
        return value >= self.early_stop if self.higher else value <= self.early_stop

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        if not self.due(stats.epoch, ctx.spec.epochs):
            return
        metrics = ctx.evaluate(hard_pruned_copy(view, self.plan, self.projection), f"hard-prune check {stats.epoch}")
        value = ctx.primary(metrics)
        ctx.record.curves["hardprune_checks"].append({"epoch": stats.epoch, "metric": value, **metrics})
        ctx.scratch["check"] = value
        if self.early_stop is not None and self.reached(value):
            ctx.record.epochs.setdefault("to_threshold", stats.epoch)
            ctx.record.epochs.setdefault("steps_to_threshold", ctx.spec.hooks.steps_taken)
            ctx.stop = True
            ctx.log(f"early stop: the hard-pruned metric reached {self.early_stop:g} at epoch {stats.epoch}")


class StepBudget(EpochHook):
    """Ends the phase after the epoch in which the method spent its step budget (the loop already stopped its
    batches), so no empty epoch follows; notes when --epochs ran out first."""

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        if ctx.spec.hooks.budget_spent():
            ctx.stop = True

    def after_phase(self, ctx: PhaseContext) -> None:
        budget = ctx.spec.hooks.step_budget
        if budget is not None and not ctx.spec.hooks.budget_spent():
            ctx.log(f"note: the {ctx.spec.name} phase ended after {ctx.spec.hooks.steps_taken} of its {budget} "
                    "steps: raise --epochs to spend the whole --max-method-steps budget")


class RetrainEval(EpochHook):
    """Evaluates the retrained model after every epoch (metric and all metrics on the curve point)."""

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        metrics = ctx.evaluate(view, f"retrain eval {stats.epoch}")
        ctx.record.curves["retrain"][-1].update(metric=ctx.primary(metrics), **metrics)
        ctx.scratch["check"] = ctx.primary(metrics)


class EpochLog(EpochHook):
    """`method epoch 3/15: loss 0.1234, hard-pruned top1 95.33 (2.1 s)`: one line per epoch in every phase."""

    LABELS = {"method": "hard-pruned", "retrain": "retrained", "pretrain": ""}

    def __init__(self, metric: str):
        self.metric = metric

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        line = f"{ctx.spec.name} epoch {stats.epoch}/{ctx.spec.epochs}: loss {stats.train_loss:.4f}"
        value = ctx.scratch.pop("check", None)
        if value is not None:
            line += f", {self.LABELS.get(ctx.spec.name, '')} {self.metric} {value:.2f}".replace("  ", " ")
        ctx.log(f"{line} ({stats.seconds:.1f} s)")


class Checkpoint(EpochHook):
    """Writes the resume checkpoint (tensors and plain data only: it is read back with weights_only=True)."""

    def __init__(self, every: int):
        self.every = every

    def due(self, epoch: int, last: int) -> bool:
        return self.every > 0 and (epoch % self.every == 0 or epoch >= last)

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module,
                    optimizer: torch.optim.Optimizer) -> None:
        if not (ctx.stop or self.due(stats.epoch, ctx.spec.epochs)):
            return
        ctx.save_checkpoint({
            "phase": ctx.spec.name,
            "epoch": ctx.spec.epochs if ctx.stop else stats.epoch,  # an early stop ends the phase on resume too
            "model": ctx.model.state_dict(),
            "hooks": ctx.spec.hooks.state_dict(),
            "optimizer": optimizer.state_dict(),
            "record": ctx.record.to_dict(),
        })
