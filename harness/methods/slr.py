"""Surrogate Lagrangian Relaxation pruning (Gurevin et al. 2021 (SLR), eqs. (2)-(11) and Algorithm 1).

Two modes share one control flow (the authors' `slr/admm.py`) and differ only in the toggles of `SLRToggles`:

* ``paper`` (default; the paper's intent): snapshots W_prev/Z_prev are clones initialised to W0/Z0, no autograd leak,
  condition (8) with f cancelling (as in the paper's equation), the paper's eq.-10 numerator
  ||W^{k-1} - Z^{k-1}||, global Frobenius norms, and a guard that skips a stepsize update with a vanishing
  denominator.
* ``reference``: the authors' code, bugs included and documented: W_prev aliases the live weights (so condition (3)
  reduces to ce < ce_prev and the stage-1 ratio is 1), W_prev/Z_prev start at zero (first Lambda = s0*W), the
  gradient leak (penalty gradient x (1 + sum s_j/rho)), condition (8) with ce vs ce_prev, numerator
  ||W^k - Z^{k-1}||, sums of per-layer norms, and skipping only exactly-zero norm sums.

f(W) in the conditions is the previous epoch's mean training loss `ce` vs the epoch before `ce_prev` (0 before two
epochs have been seen), as in the authors' code (`slr_pruning/main.py`); no extra forward pass is made. Conditions are
evaluated in fp64; the +(rho/2)||U||^2 term of the reference's Lagrangian is the same on both sides of each comparison
and is omitted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from harness.methods.penalty import PenaltyMethod

MODES = ("paper", "reference")


def alpha_k(k: int, M: float = 300.0, r: float = 0.1) -> float:
    """Stepsize decay of eq. (11): alpha_k = 1 - 1 / (M * k^(1 - k^(-r)))."""
    return 1.0 - 1.0 / (M * k ** (1.0 - k ** (-r)))


@dataclass(frozen=True)
class SLRToggles:
    wprev_alias: bool  # W_prev is a reference to the live parameter (reference aliasing bug)
    prev_init: str  # "zeros" (reference) | "initial" (W0, Z0)
    dual_grad_leak: bool  # emulate the reference autograd leak
    cond2_f: str  # "ce_vs_ce_prev" (reference) | "cancel" (paper eq. 8)
    # eq. (10)'s numerator: "paper" ||W^{k-1} - Z^{k-1}|| as printed | "bragin" ||W^k - Z^{k-1}|| (eq. (5)'s
    # denominator, so the two ratios telescope as Bragin et al.'s stepsize rule does) | "reference" the code's
    # ||W_prev - Z_prev|| after stage 1 moved the snapshots (with W_prev aliased: ||W^k - Z^{k-1}||)
    stage2_numerator: str
    norm_agg: str  # "sum" of per-layer Frobenius norms (reference) | "global" Frobenius norm
    guard_eps: float  # skip a stepsize update when n2 <= guard_eps * (n1 + 1); 0 = only exact zeros (reference)

    @classmethod
    def for_mode(cls, mode: str) -> "SLRToggles":
        if mode == "reference":
            return cls(True, "zeros", True, "ce_vs_ce_prev", "reference", "sum", 0.0)
        if mode == "paper":
            return cls(False, "initial", False, "cancel", "paper", "global", 1e-12)
        raise ValueError(f"mode must be one of {MODES}")


class SLR(PenaltyMethod):
    name = "slr"

    def __init__(
        self,
        rho: float = 0.1,
        M: float = 300.0,
        r: float = 0.1,
        s0: float = 0.01,
        update_every: int = 1,
        mode: str = "paper",
        projection: str = "topk",
        updates_per_epoch: int = 1,
        update_every_steps: int | None = None,
        rho_schedule: str = "constant",
        rho_factor: float = 1.0,
        **overrides: Any,
    ):
        toggles = SLRToggles.for_mode(mode)
        if overrides:
            toggles = SLRToggles(**(asdict(toggles) | overrides))
        super().__init__(rho=rho, update_every=update_every, dual_grad_leak=toggles.dual_grad_leak, projection=projection,
                         updates_per_epoch=updates_per_epoch, update_every_steps=update_every_steps,
                         rho_schedule=rho_schedule, rho_factor=rho_factor)
        self.mode = mode
        self.toggles = toggles
        self.M, self.r, self.s0 = float(M), float(r), float(s0)
        self.s = float(s0)
        self.k = 1
        self.ce = 0.0
        self.ce_prev = 0.0

    @classmethod
    def from_settings(cls, settings, *, epochs: int, seed: int, options: dict[str, Any]) -> "SLR":
        s = settings
        return cls(rho=s.rho, M=s.M, r=s.r, s0=s.s0, mode=s.mode, projection=s.projection,
                   **cls.cadence_kwargs(s), **s.slr_overrides())

    def config(self) -> dict[str, Any]:
        return super().config() | {"mode": self.mode, "M": self.M, "r": self.r, "s0": self.s0, **asdict(self.toggles)}

    # ---- state -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()  # Z0 = Pi(W0), U0 = 0
        for t in self.tensors:
            w = t.param.detach()
            t.extra["lam"] = torch.zeros_like(t.u)
            if self.toggles.prev_init == "zeros":
                t.extra["zprev"] = torch.zeros_like(t.u)
                wprev = torch.zeros_like(t.u)
            else:
                t.extra["zprev"] = t.z.clone()
                wprev = w.float().clone()
            self._set_wprev(t, wprev)

    def _set_wprev(self, t, value: torch.Tensor) -> None:
        t.extra["wprev"] = value

    def _snapshot_w(self, t) -> torch.Tensor:
        """W_prev <- W: a view of the live parameter (reference aliasing) or a true copy."""
        if self.toggles.wprev_alias and t.param.dtype == torch.float32:
            return t.param.detach()  # shares storage: later steps change it, exactly like the reference
        return t.param.detach().float().clone()

    def _wprev(self, t) -> torch.Tensor:
        return t.extra["wprev"]

    # ---- norms and Lagrangian terms ----------------------------------------------------------------------------
    def _norm(self, pairs) -> float:
        """Aggregate ||a - b|| over layers: sum of per-layer Frobenius norms, or one global Frobenius norm."""
        sq = [torch.sum((a.double() - b.double()) ** 2).item() for a, b in pairs]
        if self.toggles.norm_agg == "sum":
            return float(sum(math.sqrt(v) for v in sq))
        return math.sqrt(float(sum(sq)))

    def _quad(self, pairs_with_lam) -> float:
        """sum_n (rho/2)||A_n - B_n + Lambda_n/rho||^2 in fp64."""
        total = 0.0
        for a, b, lam in pairs_with_lam:
            total += torch.sum((a.double() - b.double() + lam.double() / self.rho) ** 2).item()
        return 0.5 * self.rho * total

    def _step_ratio(self, alpha: float, n1: float, n2: float) -> tuple[float, bool]:
        """New s = alpha * s * n1 / n2, skipped when a norm vanishes (the reference skips exact zeros only)."""
        if n1 == 0.0 or n2 == 0.0 or n2 <= self.toggles.guard_eps * (n1 + 1.0):
            return self.s, False
        return alpha * self.s * n1 / n2, True

    # ---- the update (the authors' control flow) --------------------------------------------------------------------
    def update(self, epoch: int) -> dict[str, Any]:
        ws = [t.param.detach().float() for t in self.tensors]
        rec: dict[str, Any] = {"k_before": self.k, "ce": self.ce, "ce_prev": self.ce_prev, "s_before": self.s}

        # stage 1: Lambda' = Lambda + s' (W^k - Z^{k-1}) if L(W^k) < L(W^{k-1})  (eqs. 3-5)
        alpha1 = alpha_k(self.k, self.M, self.r)
        n1 = self._norm((self._wprev(t), t.extra["zprev"]) for t in self.tensors)
        n2 = self._norm((w, t.extra["zprev"]) for w, t in zip(ws, self.tensors))
        lag = self.ce + self._quad((w, t.extra["zprev"], t.extra["lam"]) for w, t in zip(ws, self.tensors))
        lag_prev = self.ce_prev + self._quad((self._wprev(t), t.extra["zprev"], t.extra["lam"]) for t in self.tensors)
        sat1 = lag < lag_prev
        stage1_n1 = n1
        rec.update(alpha1=alpha1, n1_stage1=n1, n2_stage1=n2, sat1=bool(sat1), lag1=lag, lag1_prev=lag_prev)
        accepted1 = sat1 or self.k == 1
        if accepted1:
            self.k += 1
            self.s, rec["s_updated1"] = self._step_ratio(alpha1, n1, n2)
            for w, t in zip(ws, self.tensors):
                t.extra["lam"] = t.extra["lam"] + self.s * (w - t.extra["zprev"])
                self._set_wprev(t, self._snapshot_w(t))
                t.extra["zprev"] = t.z  # Z is rebound below, so this keeps Z^{k-1}
                t.u = t.extra["lam"] / self.rho
            if self.dual_grad_leak:
                self.leak_c += self.s / self.rho
        rec.update(accepted1=bool(accepted1), s_after1=self.s)

        # stage 2: Z^k = Pi(W^k + Lambda'/rho); Lambda = Lambda' + s (W^k - Z^k) if condition (8)  (eqs. 6-10)
        z_before = [t.z for t in self.tensors]  # Z^{k-1}
        for t, (z, _) in zip(self.tensors, self.project_all([w + t.u for w, t in zip(ws, self.tensors)])):
            t.z = z
        if self.toggles.stage2_numerator == "reference":
            n1 = self._norm((self._wprev(t), t.extra["zprev"]) for t in self.tensors)
        elif self.toggles.stage2_numerator == "bragin":
            n1 = self._norm(zip(ws, z_before))
        else:
            n1 = stage1_n1  # ||W^{k-1} - Z^{k-1}||, before stage 1 moved the snapshots
        n2 = self._norm((w, t.z) for w, t in zip(ws, self.tensors))
        f_new, f_old = (self.ce, self.ce_prev) if self.toggles.cond2_f == "ce_vs_ce_prev" else (0.0, 0.0)
        lag = f_new + self._quad((w, t.z, t.extra["lam"]) for w, t in zip(ws, self.tensors))
        lag_prev = f_old + self._quad((w, t.extra["zprev"], t.extra["lam"]) for w, t in zip(ws, self.tensors))
        sat2 = lag < lag_prev
        rec.update(n1_stage2=n1, n2_stage2=n2, sat2=bool(sat2), lag2=lag, lag2_prev=lag_prev)
        accepted2 = sat2 or self.k == 1
        if accepted2:
            alpha2 = alpha_k(self.k, self.M, self.r)
            self.k += 1
            self.s, rec["s_updated2"] = self._step_ratio(alpha2, n1, n2)
            for w, t in zip(ws, self.tensors):
                t.extra["lam"] = t.extra["lam"] + self.s * (w - t.z)
                self._set_wprev(t, self._snapshot_w(t))
                t.extra["zprev"] = t.z
            if self.dual_grad_leak:
                self.leak_c += self.s / self.rho
            rec["alpha2"] = alpha2
        for t in self.tensors:
            t.u = t.extra["lam"] / self.rho
        rec.update(accepted2=bool(accepted2), s=self.s, k=self.k, w_minus_z=self.residual())
        return rec

    def on_rho_change(self) -> None:
        for t in self.tensors:
            t.u = t.extra["lam"] / self.rho

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        self.ce_prev, self.ce = self.ce, self.epoch_mean_loss()
        return super().on_epoch_end(epoch) | {"s": self.s, "k": self.k, "ce": self.ce}

    # ---- resume ------------------------------------------------------------------------------------------------
    def scalar_state(self) -> dict[str, Any]:
        return super().scalar_state() | {"s": self.s, "k": self.k, "ce": self.ce, "ce_prev": self.ce_prev}

    def load_scalar_state(self, state: dict[str, Any]) -> None:
        self.s = float(state.get("s", self.s0))
        self.k = int(state.get("k", 1))
        self.ce = float(state.get("ce", 0.0))
        self.ce_prev = float(state.get("ce_prev", 0.0))
        if self.toggles.wprev_alias:
            # After a resume the alias must point at the live parameter again (it did before the save).
            for t in self.tensors:
                if self.k > 1:
                    self._set_wprev(t, self._snapshot_w(t))
        super().load_scalar_state(state)
