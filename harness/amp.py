"""One optimizer step under mixed precision, with the pruning hooks at the right points.

fp16 needs a GradScaler: the loss is scaled before backward so small gradients survive fp16, and the gradients are
unscaled before the method's `after_backward` so the penalty gradient rho*(W - Z + U) is added to true gradients
(grad_scale=1). A step whose gradients overflowed is skipped by the scaler (and the scale lowered); `after_step` runs
either way, so masks stay exact. bf16 and fp32 need no scaler (it is created disabled and passes through).
"""

from __future__ import annotations

import torch

from harness.methods.base import PruningMethod


class AmpStepper:
    """backward -> unscale -> after_backward -> (scaled) optimizer step -> after_step, for one training phase."""

    def __init__(self, device: torch.device, amp: str | None):
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, hooks: PruningMethod) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # .grad now holds true gradients: the penalty is added unscaled
        hooks.after_backward()
        self.scaler.step(optimizer)  # skipped when a gradient is inf/NaN
        self.scaler.update()
        hooks.after_step()
