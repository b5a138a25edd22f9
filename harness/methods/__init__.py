"""Pruning methods behind one interface (see base.py), and the factory the CLI and configs use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.methods.admm import ADMM
from harness.methods.base import MaskedRetrain, PrunedTensor, PruningMethod
from harness.methods.magnitude import IterativeMagnitude, OneShotMagnitude, ProjectedMagnitude, RandomPruning
from harness.methods.slr import SLR, alpha_k

METHODS: dict[str, type[PruningMethod]] = {
    cls.name: cls for cls in (SLR, ADMM, OneShotMagnitude, IterativeMagnitude, ProjectedMagnitude, RandomPruning)
}


@dataclass
class MethodSettings:
    """Hyper-parameters of every method (defaults: the paper's, slr_admm_spec.md §9.1)."""

    rho: float = 0.1
    M: float = 300.0
    r: float = 0.1
    s0: float = 0.01
    mode: str = "paper"  # paper | reference (SLR and ADMM)
    update_every: int = 1  # SLR/ADMM dual update period in epochs (ADMM's T_admm)
    projection: str = "topk"  # topk | percentile
    rounds: int = 4  # iterative magnitude
    seed: int = 0  # random pruning
    slr_overrides: dict[str, Any] = field(default_factory=dict)  # individual SLR toggles (ablations)


def make_method(name: str, settings: MethodSettings | None = None, epochs: int = 1) -> PruningMethod:
    s = settings or MethodSettings()
    if s.mode not in ("paper", "reference"):
        raise UserError(f"unknown mode {s.mode!r}; choose paper or reference")
    if name == "slr":
        return SLR(rho=s.rho, M=s.M, r=s.r, s0=s.s0, update_every=s.update_every, mode=s.mode,
                   projection=s.projection, **s.slr_overrides)
    if name == "admm":
        return ADMM(rho=s.rho, update_every=s.update_every, mode=s.mode, projection=s.projection)
    if name == "magnitude":
        return OneShotMagnitude(projection=s.projection)
    if name == "iterative":
        return IterativeMagnitude(rounds=s.rounds, epochs=epochs, projection=s.projection)
    if name == "projected":
        return ProjectedMagnitude(projection=s.projection)
    if name == "random":
        return RandomPruning(seed=s.seed, projection=s.projection)
    raise UserError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")


__all__ = [
    "ADMM", "SLR", "METHODS", "MaskedRetrain", "MethodSettings", "PrunedTensor", "PruningMethod", "alpha_k",
    "make_method", "IterativeMagnitude", "OneShotMagnitude", "ProjectedMagnitude", "RandomPruning",
]
