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
    ):
        super().__init__(projection=projection)
        self.rho = float(rho)
        self.update_every = int(update_every)
        self.first_update_epoch = int(first_update_epoch)
        self.dual_grad_leak = bool(dual_grad_leak)
        self.leak_c = 0.0  # accumulated leak: gradient factor is 1 + leak_c when dual_grad_leak
        self._targets: list[torch.Tensor] = []

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "rho": self.rho,
            "update_every": self.update_every,
            "first_update_epoch": self.first_update_epoch,
            "dual_grad_leak": self.dual_grad_leak,
        }

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
        """Batch 0 of epochs 1+T, 1+2T, ... (T = update_every), as the authors' code does
        (`(epoch - 1) % T == 0` from epoch 2 on)."""
        return (
            batch_idx == 0
            and epoch >= self.first_update_epoch
            and (epoch - 1) % self.update_every == 0
        )

    # ---- hooks -------------------------------------------------------------------------------------------------
    def on_batch_start(self, epoch: int, batch_idx: int) -> None:
        if self.is_update_batch(epoch, batch_idx):
            with torch.no_grad():
                record = self.update(epoch)
            self.refresh_targets()
            record.update(epoch=epoch, leak_c=self.leak_c)
            self.updates.append(record)

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
        return {"penalty": self.penalty_value(), "w_minus_z": self.residual(), "leak_c": self.leak_c}

    def scalar_state(self) -> dict[str, Any]:
        return {"leak_c": self.leak_c}

    def load_scalar_state(self, state: dict[str, Any]) -> None:
        self.leak_c = float(state.get("leak_c", 0.0))
        self.refresh_targets()
