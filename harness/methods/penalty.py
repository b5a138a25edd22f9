"""What ADMM and SLR share: the quadratic penalty (rho/2)||W - Z + U||^2, applied as a fused gradient add.

The penalty's gradient rho*(W - Z + U) is added to W.grad after backward with two foreach kernels instead of being
built as an autograd loss term (measured: the autograd form costs 35-45 % per step, the fused add ~0).
Z - U is cached as one target tensor per layer, refreshed only when Z or U change (once per epoch).

The authors' code's autograd leak (its Lambda/U are built from the live parameter without `no_grad`) scales that
gradient by (1 + c); with `dual_grad_leak` the leak is emulated exactly by that factor, without growing a graph.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from harness.methods.base import PruningMethod


class PenaltyMethod(PruningMethod, ABC):
    """Base of ADMM and SLR: Z/U state, the penalty gradient, the update schedule."""

    def __init__(
        self,
        rho: float = 0.1,
        update_every: int = 1,
        first_update_epoch: int = 2,
        dual_grad_leak: bool = False,
        projection: str = "topk",
        updates_per_epoch: int = 1,
        update_every_steps: int | None = None,
        rho_schedule: str = "constant",
        rho_factor: float = 1.0,
    ):
        super().__init__(projection=projection)
        if update_every_steps is not None and (update_every > 1 or updates_per_epoch > 1):
            raise ValueError("update_every_steps excludes update_every > 1 and updates_per_epoch > 1")
        self.rho = float(rho)
        self.update_every = int(update_every)
        self.first_update_epoch = int(first_update_epoch)
        self.updates_per_epoch = int(updates_per_epoch)
        self.update_every_steps = update_every_steps
        self.rho_schedule, self.rho_factor = rho_schedule, float(rho_factor)
        self.steps_per_epoch: int | None = None  # epoch 1's batch count: spaces K updates within an epoch
        self.dual_grad_leak = bool(dual_grad_leak)
        self.leak_c = 0.0  # accumulated leak: gradient factor is 1 + leak_c when dual_grad_leak
        self._targets: list[torch.Tensor] = []

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "rho": self.rho,
            "update_every": self.update_every,
            "first_update_epoch": self.first_update_epoch,
            "dual_grad_leak": self.dual_grad_leak,
        } | self._cadence_config()

    def _cadence_config(self) -> dict[str, Any]:
        """The cadence and rho schedule, only where they differ from the one-update-per-epoch, constant-rho default:
        records of runs made before these knobs existed stay comparable with new runs of the same experiment."""
        from harness.config import MethodSettings

        return {k: getattr(self, k) for k, default in MethodSettings.LATE_DEFAULTS.items() if getattr(self, k) != default}

    @staticmethod
    def cadence_kwargs(settings: Any) -> dict[str, Any]:
        """The cadence and rho-schedule settings both methods take from `MethodSettings`."""
        return {"update_every": settings.update_every, "updates_per_epoch": settings.updates_per_epoch,
                "update_every_steps": settings.update_every_steps, "rho_schedule": settings.rho_schedule,
                "rho_factor": settings.rho_factor}

    # ---- state -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Z0 = Pi(W0), U0 = 0 (both methods, as the authors' code's `admm_initialization`)."""
        ws = [t.param.detach().float() for t in self.tensors]
        for t, w, (z, _) in zip(self.tensors, ws, self.project_all(ws)):
            t.z = z
            t.u = torch.zeros_like(w)
        self.refresh_targets()

    def refresh_targets(self) -> None:
        """Cache Z - U (the point the penalty pulls W toward) in the parameter's dtype."""
        self._targets = [(t.z - t.u).to(t.param.dtype) for t in self.tensors]

    def gradient_factor(self) -> float:
        return self.rho * (1.0 + self.leak_c if self.dual_grad_leak else 1.0)

    def is_update_batch(self, epoch: int, batch_idx: int) -> bool:
        """Whether the dual/Z update runs before this batch. Nothing happens in epoch 1 (the first update needs a
        trained W^1 and, in the authors' code, epoch 1's loss); from epoch 2 on:

        * default: batch 0 of epochs 1+T, 1+2T, ... (T = update_every), as the authors' code does
          (`(epoch - 1) % T == 0`);
        * updates_per_epoch K: in those epochs, batches floor(j*n/K) for j < K (n = epoch 1's batch count);
        * update_every_steps N: global steps n, n+N, n+2N, ... counted across epochs (the first at epoch 2's first
          step, like the default; N = n reproduces it when every epoch has n batches).
        """
        if epoch < self.first_update_epoch:
            return False
        n = self.steps_per_epoch or 1
        if self.update_every_steps is not None:
            offset = self.steps_taken - n
            return offset >= 0 and offset % self.update_every_steps == 0
        if (epoch - 1) % self.update_every != 0:
            return False
        if self.updates_per_epoch == 1:
            return batch_idx == 0
        return batch_idx in {j * n // self.updates_per_epoch for j in range(self.updates_per_epoch)}

    # ---- hooks -------------------------------------------------------------------------------------------------
    def on_batch_start(self, epoch: int, batch_idx: int) -> None:
        if self.steps_per_epoch is None and epoch >= 2 and batch_idx == 0:
            self.steps_per_epoch = self.steps_taken  # epoch 1 ran every step so far
        if self.is_update_batch(epoch, batch_idx):
            with torch.no_grad():
                record = self.update(epoch)
            record.update(epoch=epoch, batch=batch_idx, step=self.steps_taken, leak_c=self.leak_c, rho=self.rho)
            if self.rho_schedule == "multiplicative":
                self.rho *= self.rho_factor
                self.on_rho_change()
            record = self.sync_ranks(record)
            self.refresh_targets()
            self.updates.append(record)

    def sync_ranks(self, record: dict[str, Any]) -> dict[str, Any]:
        """Under data-parallel training: rank 0's Z, U and method tensors, scalars (s, k, leak, rho) and update log
        on every rank. Every rank computed them from the same weights, so this only makes identity a guarantee
        rather than a property of deterministic kernels (top-k ties, reduction order)."""
        from harness import distributed

        if not distributed.world().active:
            return record
        storage = {t.param.untyped_storage().data_ptr() for t in self.tensors}
        # State that aliases a live parameter (SLR reference mode's W_prev) is the parameter: DDP keeps it in sync.
        distributed.broadcast_([v for t in self.tensors for v in t.state().values()
                                if v.untyped_storage().data_ptr() not in storage])
        scalars, record = distributed.broadcast_object((self.scalar_state(), record))
        self.load_scalar_state(scalars)
        return record

    def on_rho_change(self) -> None:
        """After rho moved: ADMM keeps its scaled dual U; SLR recomputes U = Lambda / rho."""

    @abstractmethod
    def update(self, epoch: int) -> dict[str, Any]:
        """The method's dual / Z update (under no_grad); returns the record logged for it."""

    @torch.no_grad()
    def after_backward(self, grad_scale: float = 1.0) -> None:
        """W.grad += grad_scale * rho * (1 + c) * (W - (Z - U)), fused over all pruned tensors."""
        params = [t.param for t in self.tensors]
        diffs = torch._foreach_sub([p.detach() for p in params], self._targets)
        factor = grad_scale * self.gradient_factor()
        grads = []
        for p, d in zip(params, diffs):
            if p.grad is None:  # a pruned tensor unused by this batch's graph still feels the penalty
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        torch._foreach_add_(grads, diffs, alpha=factor)

    # ---- logging -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def penalty_value(self) -> float:
        """sum_n (rho/2)||W_n - Z_n + U_n||^2 in fp64 (unscaled by the leak factor)."""
        total = 0.0
        for t, target in zip(self.tensors, self._targets):
            total += float(torch.sum((t.param.detach().double() - target.double()) ** 2).item())
        return 0.5 * self.rho * total

    @torch.no_grad()
    def residual(self) -> float:
        """sum_n ||W_n - Z_n||_F: how far W is from its sparse copy."""
        return float(sum(torch.linalg.vector_norm((t.param.detach().float() - t.z).double()).item() for t in self.tensors))

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        return {"penalty": self.penalty_value(), "w_minus_z": self.residual(), "leak_c": self.leak_c, "rho": self.rho}

    def scalar_state(self) -> dict[str, Any]:
        return {"leak_c": self.leak_c, "rho": self.rho, "steps_per_epoch": self.steps_per_epoch}

    def load_scalar_state(self, state: dict[str, Any]) -> None:
        self.leak_c = float(state.get("leak_c", 0.0))
        self.rho = float(state.get("rho", self.rho))
        self.steps_per_epoch = state.get("steps_per_epoch", self.steps_per_epoch)
        self.refresh_targets()
