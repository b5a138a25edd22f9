"""Learning-rate schedules of one training phase (pretrain, method, masked retrain), driven by the shared loop.

Three kinds, chosen per task recipe or with `benchmark run --scheduler`:

- ``constant``: the lr never changes (what the SLR/ADMM reference code effectively does).
- ``cosine``: cosine annealing per epoch over the phase's epochs (torch's CosineAnnealingLR).
- ``cosine-iter``: UFLD's schedule (``utils/factory.py`` CosineAnnealingLR of cfzd/Ultra-Fast-Lane-Detection),
  stepped per iteration: linear warm-up over ``warmup_iters`` then cosine from lr to 0 over epochs x iterations.

Upstream calls ``scheduler.step(global_step)`` *after* ``optimizer.step()``, so step t trains with the lr computed
for step t - 1, and step 0 with the optimizer's initial (full) lr. We keep that off-by-one rather than "fixing" it:
with 100 warm-up iterations, step 1 runs at lr 0 and step 2 at lr/100, exactly as the released models were trained.
"""

from __future__ import annotations

import math

import torch

from harness.errors import UserError

SCHEDULERS = ("constant", "cosine", "cosine-iter")


class PhaseSchedule:
    """A phase's lr schedule. The loop calls `after_step` after every optimizer step, `after_epoch` after every
    epoch, and `resume_at` once when a phase restarts from a checkpoint with `epochs_done` epochs behind it."""

    kind = "constant"

    def after_step(self, epoch: int, batch_idx: int) -> None:
        """`epoch` counts from 1 within the phase; `batch_idx` from 0 within the epoch."""

    def after_epoch(self) -> None:
        pass

    def resume_at(self, epochs_done: int) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": self.kind}


class _ScaledSchedule(PhaseSchedule):
    """A schedule that sets every group's lr to its initial value times a factor."""

    def __init__(self, opt: torch.optim.Optimizer):
        self.opt = opt
        self.base_lrs = [float(g["lr"]) for g in opt.param_groups]

    def _scale(self, factor: float) -> None:
        for group, base in zip(self.opt.param_groups, self.base_lrs):
            group["lr"] = base * factor


def _cosine(done: int, total: int) -> float:
    return (1.0 + math.cos(math.pi * done / total)) / 2.0


class EpochCosine(_ScaledSchedule):
    """Cosine annealing per epoch to 0 over `epochs` (torch's CosineAnnealingLR values, in closed form).

    Closed form rather than torch's scheduler, whose recursive update applied on top of an optimizer state restored
    at resume would anneal the already-annealed lr a second time.
    """

    kind = "cosine"

    def __init__(self, opt: torch.optim.Optimizer, epochs: int):
        super().__init__(opt)
        self.epochs = epochs
        self.done = 0

    def after_epoch(self) -> None:
        self.resume_at(self.done + 1)

    def resume_at(self, epochs_done: int) -> None:
        self.done = epochs_done
        self._scale(_cosine(epochs_done, self.epochs))

    def describe(self) -> dict:
        return {"kind": self.kind, "epochs": self.epochs}


class WarmupCosinePerIteration(_ScaledSchedule):
    """UFLD's per-iteration schedule: lr(t) = lr*t/W for t < W, else lr*(1 + cos(pi*t/T))/2, set after step t."""

    kind = "cosine-iter"

    def __init__(self, opt: torch.optim.Optimizer, epochs: int, iters_per_epoch: int, warmup_iters: int):
        super().__init__(opt)
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        self.total_iters = max(1, epochs * self.iters_per_epoch)
        self.warmup_iters = max(0, int(warmup_iters))

    def factor(self, t: int) -> float:
        """Fraction of the base lr set after global step `t` (so used by step t + 1)."""
        if t < self.warmup_iters:
            return t / self.warmup_iters
        return _cosine(t, self.total_iters)

    def _set(self, t: int) -> None:
        self._scale(self.factor(t))

    def after_step(self, epoch: int, batch_idx: int) -> None:
        self._set((epoch - 1) * self.iters_per_epoch + batch_idx)

    def resume_at(self, epochs_done: int) -> None:
        # The lr the next step would have had; the restored optimizer state holds it too, this makes it independent.
        if epochs_done > 0:
            self._set(epochs_done * self.iters_per_epoch - 1)

    def describe(self) -> dict:
        return {"kind": self.kind, "warmup_iters": self.warmup_iters, "iters_per_epoch": self.iters_per_epoch,
                "total_iters": self.total_iters}


def make_schedule(opt: torch.optim.Optimizer, kind: str, epochs: int, iters_per_epoch: int = 1,
                  warmup_iters: int = 0) -> PhaseSchedule:
    """The schedule of one phase of `epochs` epochs (created before any optimizer state is loaded)."""
    if kind not in SCHEDULERS:
        raise UserError(f"unknown scheduler {kind!r}; choose one of: {', '.join(SCHEDULERS)}")
    if kind == "constant" or epochs <= 0:
        return PhaseSchedule()
    if kind == "cosine":
        return EpochCosine(opt, epochs)
    return WarmupCosinePerIteration(opt, epochs, iters_per_epoch, warmup_iters)


def iterations_per_epoch(loader, max_steps: int | None) -> int:
    """Optimizer steps one epoch over `loader` makes (capped by --max-steps)."""
    try:
        n = len(loader)
    except TypeError:  # an iterable without a length: the cap, or one step per epoch as a floor
        n = max_steps or 1
    return min(n, max_steps) if max_steps is not None else n
