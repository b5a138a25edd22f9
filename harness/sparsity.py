"""Sparsity plans: which tensors are pruned, by how much, and the compression rate under each counting rule.

Vocabulary (that of Gurevin et al. 2021 (SLR) and the authors' code):
* prune ratio p of a tensor = the fraction of its entries forced to zero;
* compression rate C = (#counted params) / (#non-zero counted params).

Counting rules for C:
* ``paper``: every parameter whose name lacks "bias" (conv/linear weights pruned or not, BN gamma); the rule of the
  reference code's ``test_sparsity`` and of the paper's tables (8.71x for CIFAR ResNet-18 at p=0.9).
* ``conv``: 4-D weights only (YOLO lineage, ``check_compression.py``).
* ``pruned``: only the tensors of the plan (a cross-check; inflates C).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch
import yaml
from torch import nn

from harness.errors import UserError
from harness.yamlio import load_yaml

COUNT_RULES = ("paper", "conv", "pruned")


def kept_count(numel: int, ratio: float) -> int:
    """Entries kept by a projection at prune ratio `ratio`: n - floor(n*p).

    One rule everywhere (so every method prunes the same count): n=36,864, p=0.9 keeps 3,687 and zeroes 33,177, the
    same as the reference's numpy-percentile count. The 1e-9 guards float error in n*p (e.g. 0.9*10 = 8.999…).
    """
    return numel - int(math.floor(numel * ratio + 1e-9))


def counted(name: str, tensor: torch.Tensor, rule: str, prune_set: frozenset[str] = frozenset()) -> bool:
    """Whether a named parameter enters the compression count under `rule`."""
    if rule == "paper":
        return "bias" not in name
    if rule == "conv":
        return tensor.dim() == 4
    if rule == "pruned":
        return name in prune_set
    raise UserError(f"unknown counting rule {rule!r}; choose one of: {', '.join(COUNT_RULES)}")


@dataclass
class CompressionReport:
    """Achieved compression under every rule, and per-layer sparsity of the pruned tensors."""

    rates: dict[str, float]  # rule -> C
    totals: dict[str, tuple[int, int]]  # rule -> (counted, non-zero)
    layer_sparsity: dict[str, float]  # pruned tensor name -> fraction of zeros

    @property
    def paper(self) -> float:
        return self.rates["paper"]

    @property
    def conv(self) -> float:
        return self.rates["conv"]


def measure_compression(model: nn.Module, prune_set: Iterable[str] = ()) -> CompressionReport:
    """Count zeros now in `model` (exact zeros count as pruned, as in the reference)."""
    pset = frozenset(prune_set)
    totals = {rule: [0, 0] for rule in COUNT_RULES}
    layers: dict[str, float] = {}
    for name, p in model.named_parameters():
        numel = p.numel()
        nonzero = int(torch.count_nonzero(p.detach()).item())
        for rule in COUNT_RULES:
            if counted(name, p, rule, pset):
                totals[rule][0] += numel
                totals[rule][1] += nonzero
        if name in pset:
            layers[name] = 1.0 - nonzero / numel
    rates = {rule: (t / nz if nz else math.inf) for rule, (t, nz) in totals.items() if t}
    return CompressionReport(rates=rates, totals={k: (v[0], v[1]) for k, v in totals.items()}, layer_sparsity=layers)


@dataclass
class SparsityPlan:
    """Per-tensor prune ratios, keyed by parameter name exactly as ``named_parameters()`` yields it."""

    ratios: dict[str, float]
    target_rate: float | None = None  # the rate the plan was solved for, if any
    rule: str = "paper"  # the counting rule the rate was solved under
    meta: dict = field(default_factory=dict)

    # ---- construction ------------------------------------------------------------------------------------------
    @classmethod
    def uniform(cls, model: nn.Module, names: Iterable[str], ratio: float) -> "SparsityPlan":
        names = list(names)
        _check_names(model, names)
        if not 0.0 <= ratio <= 1.0:
            raise UserError(f"prune ratio must be in [0, 1], got {ratio}")
        return cls(ratios={n: float(ratio) for n in names})

    @classmethod
    def for_rate(cls, model: nn.Module, names: Iterable[str], rate: float, rule: str = "paper") -> "SparsityPlan":
        """Solve a uniform p over `names` so that C (under `rule`) equals `rate`.

        C = N_tot / (N_tot - p * N_S)  <=>  p = (1 - 1/C) * N_tot / N_S; infeasible when p > 1, and then the error
        names the highest feasible rate.
        """
        names = list(names)
        if not names:
            raise UserError("the prune set is empty: nothing to prune")
        if not (isinstance(rate, (int, float)) and math.isfinite(rate)) or rate <= 1.0:
            raise UserError(f"compression rate must be > 1 (e.g. 8.71), got {rate}")
        params = dict(model.named_parameters())
        _check_names(model, names)
        n_tot = sum(p.numel() for n, p in params.items() if counted(n, p, rule, frozenset(names)))
        n_s = sum(params[n].numel() for n in names if counted(n, params[n], rule, frozenset(names)))
        if n_s == 0:
            raise UserError(f"none of the pruned tensors is counted under the {rule!r} rule")
        p = (1.0 - 1.0 / rate) * n_tot / n_s
        if p > 1.0:
            max_rate = n_tot / (n_tot - n_s) if n_tot > n_s else math.inf
            raise UserError(
                f"rate {rate}x is infeasible with this prune set ({len(names)} tensors, {n_s:,} of {n_tot:,} "
                f"counted parameters): the highest feasible rate is {max_rate:.4g}x (pruning them all); "
                "add tensors to the prune set or lower the rate"
            )
        return cls(ratios={n: p for n in names}, target_rate=float(rate), rule=rule)

    @classmethod
    def from_yaml(cls, path: str | Path, model: nn.Module | None = None) -> "SparsityPlan":
        """Read the reference format ``prune_ratios: {param_name: ratio}`` (a DataParallel `module.` prefix is
        stripped when the model's own names lack it)."""
        path = Path(path)
        doc = load_yaml(path, "prune config")
        if not isinstance(doc, dict) or not isinstance(doc.get("prune_ratios"), Mapping):
            raise UserError(f"prune config {path} must contain a mapping 'prune_ratios: {{param_name: ratio}}'")
        ratios = {str(k): float(v) for k, v in doc["prune_ratios"].items()}
        if model is not None:
            own = dict(model.named_parameters())
            if not any(k in own for k in ratios) and all(k.startswith("module.") for k in ratios):
                ratios = {k[len("module."):]: v for k, v in ratios.items()}
            _check_names(model, list(ratios))
        for name, r in ratios.items():
            if not 0.0 <= r <= 1.0:
                raise UserError(f"prune config {path}: ratio of {name} must be in [0, 1], got {r}")
        return cls(ratios=ratios, target_rate=doc.get("target_rate"), rule=doc.get("rule", "paper"))

    def to_yaml(self, path: str | Path) -> None:
        doc = {"prune_ratios": {k: round(v, 10) for k, v in self.ratios.items()}, "rule": self.rule}
        if self.target_rate is not None:
            doc["target_rate"] = self.target_rate
        Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))

    # ---- queries -----------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.ratios)

    def predicted_compression(self, model: nn.Module) -> dict[str, float]:
        """C under each rule if every planned tensor keeps exactly `kept_count` entries and others stay dense."""
        pset = frozenset(self.ratios)
        out: dict[str, float] = {}
        for rule in COUNT_RULES:
            total = nonzero = 0
            for name, p in model.named_parameters():
                if counted(name, p, rule, pset):
                    total += p.numel()
                    nonzero += kept_count(p.numel(), self.ratios[name]) if name in pset else p.numel()
            if total:
                out[rule] = total / nonzero if nonzero else math.inf
        return out


def _check_names(model: nn.Module, names: list[str]) -> None:
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise UserError(
            f"prune set names {len(unknown)} tensor(s) the model does not have, e.g. {', '.join(unknown[:4])}"
        )


# ---- default prune-set rules ---------------------------------------------------------------------------------------
def weights_by_pattern(model: nn.Module, pattern: str) -> list[str]:
    """Parameter names fully matching a regular expression, in model order."""
    rx = re.compile(pattern)
    return [n for n, _ in model.named_parameters() if rx.fullmatch(n)]


def conv_linear_weights(model: nn.Module, skip_first: bool = True, skip_last_linear: bool = True) -> list[str]:
    """All conv/linear weights, minus the first conv and the final classifier (default set)."""
    names: list[str] = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and getattr(mod, "weight", None) is not None:
            if mod.weight.requires_grad:
                names.append(f"{mod_name}.weight" if mod_name else "weight")
    convs = [n for n in names if dict(model.named_parameters())[n].dim() > 2]
    linears = [n for n in names if n not in convs]
    if skip_first and convs:
        names.remove(convs[0])
    if skip_last_linear and linears:
        names.remove(linears[-1])
    return names
