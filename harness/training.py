"""The shared training loop: one epoch of a task's loss with a pruning method's hooks.

Hook order per batch (harness/methods/base.py): on_batch_start -> forward/loss -> observe_loss -> backward ->
after_backward -> optimizer.step -> after_step. The loop syncs with the device only every `sync_every` steps (to
check the loss is finite and to update the progress bar), so GPU steps are not serialised by .item() calls.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

import torch
from torch import nn

from harness import distributed
from harness.amp import AmpStepper
from harness.config import OPTIMIZERS
from harness.errors import TrainingDiverged, UserError
from harness.methods.base import PruningMethod
from harness.phases import EpochEnd, EpochStats, PhaseSpec
from harness.progress import progress
from harness.schedules import PhaseSchedule, iterations_per_epoch, make_schedule

if TYPE_CHECKING:
    from harness.tasks import LoopTask

__all__ = ["EpochStats", "LoopDriver", "make_optimizer", "train_epoch", "epoch_seed", "seed_everything"]


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    raise UserError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def autocast_context(device: torch.device, dtype: str | None):
    """bf16/fp16 autocast on request; the pruning state (Z, U, duals, norms) stays fp32/fp64 regardless."""
    if not dtype:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn,
    optimizer: torch.optim.Optimizer,
    method: PruningMethod | None,
    epoch: int,
    device: torch.device,
    amp: str | None = None,
    desc: str = "train",
    sync_every: int = 20,
    max_steps: int | None = None,
    schedule: PhaseSchedule | None = None,
    stepper: AmpStepper | None = None,
) -> EpochStats:
    """Train one epoch with the method's hooks (on_epoch_start ... on_epoch_end).

    `loss_fn(model, batch)` returns the batch-mean task loss (the task moves the batch to the device).
    """
    model.train()
    hooks = method or PruningMethod()
    hooks.on_epoch_start(epoch)
    stepper = stepper or AmpStepper(device, amp)
    running = torch.zeros((), device=device)
    steps = 0
    start = time.perf_counter()
    bar = progress(loader, desc=f"{desc} {epoch}", leave=False)
    for batch_idx, batch in enumerate(bar):
        if (max_steps is not None and batch_idx >= max_steps) or hooks.budget_spent():
            break
        hooks.on_batch_start(epoch, batch_idx)
        with autocast_context(device, amp):
            loss = loss_fn(model, batch)
        hooks.observe_loss(loss)
        running += loss.detach().float()
        steps += 1
        stepper.step(loss, optimizer, hooks)
        if schedule is not None:  # per-iteration schedules (UFLD's) set the next step's lr here
            schedule.after_step(epoch, batch_idx)
        if steps % sync_every == 0:
            _check_finite(running, epoch, steps)
            bar.set_postfix(loss=f"{running.item() / steps:.4f}")
    if steps == 0:
        raise UserError("the training loader yielded no batches: is the dataset empty or the batch size too large?")
    total = _check_finite(running, epoch, steps)
    return EpochStats(
        epoch=epoch,
        train_loss=total / (steps * distributed.world().size),  # every rank runs the same number of steps
        steps=steps,
        seconds=time.perf_counter() - start,
        lr=float(optimizer.param_groups[0]["lr"]),
        method_log=hooks.on_epoch_end(epoch),
    )


def _check_finite(running: torch.Tensor, epoch: int, step: int) -> float:
    """The loss sum over all ranks so far; a NaN/inf on any rank stops every rank at this same step."""
    value = float(distributed.all_sum(running).item())
    if not math.isfinite(value):
        raise TrainingDiverged(f"training loss became {value} in epoch {epoch} (by step {step})", epoch, step)
    return value


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    """A seed for one epoch of one phase: every epoch shuffles and augments differently, and a resumed run draws
    exactly what the uninterrupted run drew (nothing depends on how many epochs this process has run)."""
    digest = hashlib.sha256(f"{seed}:{phase}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LoopDriver:
    """Our training loop as a `TrainDriver` (harness/phases.py): builds the phase's optimizer, lr schedule and
    (fp16) gradient scaler, then runs `train_epoch` over a freshly seeded loader each epoch.

    Under several processes (harness/distributed.py) the model trains wrapped in DDP, each epoch's loader is this
    rank's DistributedSampler shard, and BN buffers are synchronised before the epoch's hooks evaluate or save."""

    def __init__(self, task: "LoopTask"):
        self.task = task

    def epoch_loader(self, seed: int, epoch: int):
        """The epoch's loader: shuffled from the shared `seed`, augmented from this rank's own seed."""
        return distributed.shard_train_loader(self.task.train_loader(distributed.rank_seed(seed)), seed, epoch)

    def fit(self, model: nn.Module, spec: PhaseSpec, on_epoch_end: EpochEnd) -> dict[str, Any]:
        device = self.task.cfg.device
        net = distributed.wrap(model, device)  # after the method bound `model`'s parameters by name
        opt = make_optimizer(model, spec.optimizer, spec.lr, spec.momentum, spec.weight_decay)
        first = self.epoch_loader(epoch_seed(spec.seed, spec.name, spec.start_epoch), spec.start_epoch)
        # The schedule captures the initial lr before a resumed optimizer state overwrites the current one.
        sched = make_schedule(opt, spec.scheduler, spec.epochs, iterations_per_epoch(first, spec.max_steps),
                              spec.warmup_iters)
        if spec.optimizer_state is not None:
            opt.load_state_dict(spec.optimizer_state)
        if spec.start_epoch > 1:
            sched.resume_at(spec.start_epoch - 1)
        stepper = AmpStepper(device, spec.amp)  # fp16: one gradient scaler for the whole phase
        for epoch in range(spec.start_epoch, spec.epochs + 1):
            seed = epoch_seed(spec.seed, spec.name, epoch)
            seed_everything(distributed.rank_seed(seed))  # dropout and augmentation drawing from global generators
            loader = first if epoch == spec.start_epoch else self.epoch_loader(seed, epoch)
            stats = train_epoch(net, loader, self.task.loss, opt, spec.hooks, epoch, device, spec.amp,
                                desc=spec.name, max_steps=spec.max_steps, schedule=sched, stepper=stepper)
            sched.after_epoch()
            distributed.sync_buffers(model)
            if on_epoch_end(stats, model, opt):
                break
        return {"schedule": sched.describe()}


def as_float_dict(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
