"""ADMM pruning (Zhang et al. 2018) with the cadence and rho of the SLR authors' code (`slr_pruning/slr/admm.py`).

    Z^{k+1} = Pi(W^{k+1} + U^k);   U^{k+1} = U^k + W^{k+1} - Z^{k+1}

applied at batch 0 of epochs 1+T, 1+2T, ... (T = `update_every`, the authors' cadence); W takes an optimizer step on every batch with the
penalty (rho/2)||W - Z + U||^2. In `reference` mode the autograd leak is emulated: the penalty gradient is scaled by
1 + (number of U updates so far), as the authors' code's graph does (its U is built from the live parameter
without `no_grad`).
"""

from __future__ import annotations

from typing import Any

import torch

from harness.methods.penalty import PenaltyMethod

MODES = ("paper", "reference")


class ADMM(PenaltyMethod):
    name = "admm"

    def __init__(self, rho: float = 0.1, update_every: int = 1, mode: str = "paper", projection: str = "topk",
                 **cadence: Any):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        super().__init__(rho=rho, update_every=update_every, dual_grad_leak=(mode == "reference"), projection=projection,
                         **cadence)
        self.mode = mode

    @classmethod
    def from_settings(cls, settings, *, epochs: int, seed: int, options: dict[str, Any]) -> "ADMM":
        return cls(rho=settings.rho, mode=settings.mode, projection=settings.projection,
                   **cls.cadence_kwargs(settings))

    def config(self) -> dict[str, Any]:
        return super().config() | {"mode": self.mode}

    def update(self, epoch: int) -> dict[str, Any]:
        w_minus_z = z_change = 0.0
        ws = [t.param.detach().float() for t in self.tensors]
        projected = self.project_all([w + t.u for w, t in zip(ws, self.tensors)])  # uses the old U
        for t, w, (z, _) in zip(self.tensors, ws, projected):
            z_old = t.z
            t.z = z
            t.u = t.u + w - t.z
            w_minus_z += float(torch.linalg.vector_norm(w - t.z).item())
            z_change += float(torch.linalg.vector_norm(t.z - z_old).item())
        if self.dual_grad_leak:
            self.leak_c += 1.0  # each U update adds dU/dW = I to the leaked graph
        return {"w_minus_z": w_minus_z, "z_change": z_change, "k": len(self.updates) + 1}
