"""Magnitude-pruning baselines on the same prune set, ratios and epoch budget as SLR/ADMM.

* ``magnitude`` — one-shot (Liu et al. 2019): prune the dense model once by |W|; the runner evaluates it right away
  (comparable to "hard-pruning accuracy") and spends the whole budget on masked retraining.
* ``iterative`` — Han et al. 2015: T rounds; at round t the per-layer sparsity is p_t = 1 - (1 - p)^(t/T) (geometric
  in the keep ratio), chosen among the survivors (monotone masks), with masked training between rounds.
* ``projected`` — "Base" of Tran, ADMM pruning (Table 1): plain loss, W <- Pi(W) after every optimizer step
  (iterative hard thresholding).
* ``random`` — a random mask at the same per-layer ratios: the floor every method must beat.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from harness.methods.base import PruningMethod
from harness.projection import project


class OneShotMagnitude(PruningMethod):
    name = "magnitude"
    trains = False

    def setup(self) -> None:
        for t in self.tensors:
            _, t.mask = self.project_tensor(t, t.param.detach())
        self.apply_masks()


class RandomPruning(PruningMethod):
    name = "random"
    trains = False

    def __init__(self, seed: int = 0, projection: str = "topk"):
        super().__init__(projection=projection)
        self.seed = seed

    @classmethod
    def from_settings(cls, settings, *, epochs: int, seed: int, options: dict[str, Any]) -> "RandomPruning":
        return cls(seed=seed, projection=settings.projection)  # the run's --seed draws the mask

    def config(self) -> dict[str, Any]:
        return super().config() | {"seed": self.seed}

    def setup(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        for t in self.tensors:
            scores = torch.rand(t.param.shape, generator=gen).to(t.param.device)
            # Project random scores: exactly the same kept count per layer as the magnitude projection.
            _, t.mask = self.project_tensor(t, scores)
        self.apply_masks()


class IterativeMagnitude(PruningMethod):
    name = "iterative"

    def __init__(self, rounds: int = 4, epochs: int = 10, projection: str = "topk"):
        super().__init__(projection=projection)
        self.rounds = max(1, int(rounds))
        self.epochs = max(1, int(epochs))
        self.round = 0

    @classmethod
    def from_settings(cls, settings, *, epochs: int, seed: int, options: dict[str, Any]) -> "IterativeMagnitude":
        return cls(rounds=settings.rounds, epochs=epochs, projection=settings.projection)

    def config(self) -> dict[str, Any]:
        return super().config() | {"rounds": self.rounds, "schedule": "geometric"}

    def round_starts(self) -> list[int]:
        """Epochs (1-based) at whose start a pruning round happens, spread evenly over the budget."""
        rounds = min(self.rounds, self.epochs)
        return [1 + math.floor(i * self.epochs / rounds) for i in range(rounds)]

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        starts = self.round_starts()
        if epoch in starts:
            self.round = starts.index(epoch) + 1
            self._prune_round(self.round / len(starts))

    @torch.no_grad()
    def _prune_round(self, fraction: float) -> None:
        for t in self.tensors:
            ratio = 1.0 - (1.0 - t.ratio) ** fraction
            w = t.param.detach() if t.mask is None else t.param.detach() * t.mask
            _, mask = project(w, ratio, self.projection)
            t.mask = mask if t.mask is None else (mask & t.mask)
        self.apply_masks()
        self.updates.append({"round": self.round, "fraction": fraction})

    def after_backward(self, grad_scale: float = 1.0) -> None:
        self.mask_grads()

    def after_step(self) -> None:
        self.apply_masks()

    def scalar_state(self) -> dict[str, Any]:
        return {"round": self.round}

    def load_scalar_state(self, state: dict[str, Any]) -> None:
        self.round = int(state.get("round", 0))


class ProjectedMagnitude(PruningMethod):
    name = "projected"

    @torch.no_grad()
    def after_step(self) -> None:
        for t in self.tensors:
            projected, _ = self.project_tensor(t, t.param.detach())
            t.param.copy_(projected)
