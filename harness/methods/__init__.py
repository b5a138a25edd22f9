"""Pruning methods behind one interface (see base.py), found by name in the `METHODS` registry.

Outside packages add methods through the `prunebench.methods` entry-point group (a `PruningMethod` subclass; its own
settings, if any, are an `Options` dataclass filled from `--method-opt key=value`).
"""

from __future__ import annotations

from typing import Any

from harness.config import MethodSettings
from harness.methods.admm import ADMM
from harness.methods.base import MaskedRetrain, PrunedTensor, PruningMethod
from harness.methods.magnitude import IterativeMagnitude, OneShotMagnitude, ProjectedMagnitude, RandomPruning
from harness.methods.slr import SLR, alpha_k
from harness.registry import Registry

METHODS: Registry[type[PruningMethod]] = Registry("method", base=PruningMethod,
                                                  entry_point_group="prunebench.methods")
for _cls in (SLR, ADMM, OneShotMagnitude, IterativeMagnitude, ProjectedMagnitude, RandomPruning):
    METHODS.register(_cls.name, _cls)


def make_method(name: str, settings: MethodSettings | None = None, epochs: int = 1, seed: int = 0,
                options: dict[str, Any] | None = None) -> PruningMethod:
    """The method `name` built from the shared settings (and a plugin method's own options)."""
    return METHODS.get(name).from_settings(settings or MethodSettings(), epochs=epochs, seed=seed,
                                           options=options or {})


__all__ = [
    "ADMM", "SLR", "METHODS", "MaskedRetrain", "MethodSettings", "PrunedTensor", "PruningMethod", "alpha_k",
    "make_method", "IterativeMagnitude", "OneShotMagnitude", "ProjectedMagnitude", "RandomPruning",
]
