"""The one interface every pruning method implements, and the per-tensor state it keeps.

A method is a set of training hooks. Any training loop (ours in harness/training.py, Ultralytics' trainer in the
detection adapter) calls them at fixed points:

    attach(model, plan)                      once, after the dense model is loaded
    on_epoch_start(epoch)                    epoch is 1-based
    on_batch_start(epoch, batch_idx)         before the forward pass (SLR/ADMM dual and Z updates live here)
    observe_loss(loss)                       the detached task loss of the batch (kept on device; no sync)
    after_backward(grad_scale=1.0)           gradients are final and unscaled; penalty gradients are added here
    after_step()                             right after optimizer.step(); masks and per-step projections
    on_epoch_end(epoch) -> dict              bookkeeping; returns what the results record logs for this epoch

Pruning state belongs to the tensor it prunes (`PrunedTensor`, found by parameter name), as in torch.nn.utils.prune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from harness.errors import UserError
from harness.projection import project, project_many
from harness.sparsity import SparsityPlan

if TYPE_CHECKING:
    from harness.config import MethodSettings


@dataclass
class PrunedTensor:
    """A parameter in the prune set and every piece of pruning state that belongs to it."""

    name: str
    param: nn.Parameter
    ratio: float
    z: torch.Tensor | None = None  # auxiliary sparse copy (ADMM/SLR)
    u: torch.Tensor | None = None  # scaled dual U = Lambda / rho
    mask: torch.Tensor | None = None  # bool; fixed sparsity pattern (magnitude methods, retrain)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific (SLR: lam, wprev, zprev)

    def state(self) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in (("z", self.z), ("u", self.u), ("mask", self.mask)) if v is not None}
        out.update({f"extra.{k}": v for k, v in self.extra.items()})
        return out

    def load(self, state: dict[str, torch.Tensor]) -> None:
        dev = self.param.device
        self.z = state["z"].to(dev) if "z" in state else None
        self.u = state["u"].to(dev) if "u" in state else None
        self.mask = state["mask"].to(dev) if "mask" in state else None
        self.extra = {k[len("extra."):]: v.to(dev) for k, v in state.items() if k.startswith("extra.")}


def bind(model: nn.Module, plan: SparsityPlan) -> list[PrunedTensor]:
    """Find the plan's tensors in `model` by name."""
    params = dict(model.named_parameters())
    missing = [n for n in plan.ratios if n not in params]
    if missing:
        raise UserError(f"the model has no parameter(s) {', '.join(missing[:4])} named in the prune plan")
    return [PrunedTensor(name=n, param=params[n], ratio=r) for n, r in plan.ratios.items()]


class PruningMethod:
    """Base class: no-op hooks plus the shared bookkeeping (epoch-mean training loss, state save/load)."""

    name: ClassVar[str] = "base"
    # False: the method does no training of its own before the hard prune (one-shot magnitude, random); the runner
    # then gives the method-phase epochs to masked retraining so every method spends the same budget.
    trains: ClassVar[bool] = True
    Options: ClassVar[type | None] = None  # a plugin method's own settings (dataclass), from --method-opt

    def __init__(self, projection: str = "topk"):
        self.projection = projection
        self.tensors: list[PrunedTensor] = []
        self.model: nn.Module | None = None
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self.updates: list[dict[str, Any]] = []  # per dual/Z update log (SLR, ADMM)
        # Optimizer steps of this phase so far, across epochs (counted in `observe_loss`, which every driver calls
        # once per batch): during `on_batch_start` it is the global step of the batch about to run.
        self.steps_taken = 0
        self.step_budget: int | None = None  # the phase ends once steps_taken reaches it (--max-method-steps)

    @classmethod
    def from_settings(cls, settings: "MethodSettings", *, epochs: int, seed: int,
                      options: dict[str, Any]) -> "PruningMethod":
        """Build from the shared settings; methods that need more of them override this."""
        if cls.Options is None:
            if options:
                raise UserError(f"method {cls.name!r} takes no --method-opt options (got {', '.join(options)})")
            return cls(projection=settings.projection)
        from harness.options import build

        return cls(projection=settings.projection, options=build(cls.Options, options,
                                                                 f"--method-opt for {cls.name}:"))  # type: ignore[call-arg]

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def attach(self, model: nn.Module, plan: SparsityPlan) -> None:
        self.model = model
        self.tensors = bind(model, plan)
        with torch.no_grad():
            self.setup()

    def setup(self) -> None:
        """Initialise per-tensor state (called under no_grad)."""

    def config(self) -> dict[str, Any]:
        """The method's settings, for the results record."""
        return {"method": self.name, "projection": self.projection}

    # ---- hooks -------------------------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        self._loss_sum = None
        self._loss_count = 0

    def on_batch_start(self, epoch: int, batch_idx: int) -> None:
        pass

    def observe_loss(self, loss: torch.Tensor) -> None:
        self.steps_taken += 1
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_count += 1

    def budget_spent(self) -> bool:
        """True once the phase's step budget is used up: the loop stops before the next batch."""
        return self.step_budget is not None and self.steps_taken >= self.step_budget

    def after_backward(self, grad_scale: float = 1.0) -> None:
        pass

    def after_step(self) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        return {}

    def epoch_mean_loss(self) -> float:
        """Arithmetic mean of the epoch's per-batch losses (the reference's `ce`), over all ranks of a data-parallel
        run (every rank runs the same number of batches), so every rank compares the same number."""
        from harness import distributed

        if not self._loss_count or self._loss_sum is None:
            return 0.0
        total = distributed.all_sum(self._loss_sum.double().reshape(1))
        return float(total.item()) / (self._loss_count * distributed.world().size)

    # ---- pruning -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def project_tensor(self, t: PrunedTensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return project(x, t.ratio, self.projection)

    @torch.no_grad()
    def project_all(self, xs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`project_tensor` for every pruned tensor at once (xs[i] belongs to self.tensors[i]): one batched top-k."""
        return project_many(xs, [t.ratio for t in self.tensors], self.projection)

    @torch.no_grad()
    def apply_masks(self) -> None:
        for t in self.tensors:
            if t.mask is not None:
                t.param.mul_(t.mask)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for t in self.tensors:
            if t.mask is not None and t.param.grad is not None:
                t.param.grad.mul_(t.mask)

    # ---- resume ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "tensors": {t.name: t.state() for t in self.tensors},
            "updates": list(self.updates),
            "steps_taken": self.steps_taken,
            "scalars": self.scalar_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for t in self.tensors:
            t.load(state["tensors"][t.name])
        self.updates = list(state.get("updates", []))
        self.steps_taken = int(state.get("steps_taken", 0))
        self.load_scalar_state(state.get("scalars", {}))

    def scalar_state(self) -> dict[str, Any]:
        return {}

    def load_scalar_state(self, state: dict[str, Any]) -> None:
        pass


class MaskedRetrain(PruningMethod):
    """Masked retraining (the authors' `masked_retrain`): gradients masked before the step, weights re-masked after it.

    Re-masking after each step guards against momentum / Adam state / decoupled weight decay regrowing pruned
    weights; the runner also builds a fresh optimizer for this phase.
    """

    name = "retrain"

    def __init__(self, masks: dict[str, torch.Tensor]):
        super().__init__()
        self._masks = masks

    def attach(self, model: nn.Module, plan: SparsityPlan) -> None:
        super().attach(model, plan)
        for t in self.tensors:
            t.mask = self._masks[t.name].to(t.param.device)
        self.apply_masks()

    def after_backward(self, grad_scale: float = 1.0) -> None:
        self.mask_grads()

    def after_step(self) -> None:
        self.apply_masks()
