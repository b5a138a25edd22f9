"""Top-k classification accuracy (percent) over logits, an evaluator of the harness protocol (harness/evaluation.py)."""

from __future__ import annotations

from typing import Any

import torch


class TopKAccuracy:
    """Top-1 / top-5 accuracy in percent: a sample counts for top-k when its label is among the k largest logits."""

    name = "topk"
    version = "1"

    def __init__(self, ks: tuple[int, ...] = (1, 5)):
        self.ks = ks
        self.reset()

    def reset(self) -> None:
        self.correct = {k: 0 for k in self.ks}
        self.count = 0

    def process(self, batch: Any, outputs: torch.Tensor) -> None:
        targets = batch[1].to(outputs.device)
        k_max = min(max(self.ks), outputs.shape[1])
        top = outputs.topk(k_max, dim=1).indices
        hits = top.eq(targets.unsqueeze(1))
        for k in self.ks:
            self.correct[k] += int(hits[:, : min(k, k_max)].any(dim=1).sum().item())
        self.count += targets.numel()

    def partial(self) -> tuple[dict[int, int], int]:
        return dict(self.correct), self.count

    def merge(self, partials: list[tuple[dict[int, int], int]]) -> None:
        self.correct = {k: sum(p[0][k] for p in partials) for k in self.ks}
        self.count = sum(p[1] for p in partials)

    def evaluate(self) -> dict[str, float]:
        if not self.count:
            return {f"top{k}": float("nan") for k in self.ks}
        return {f"top{k}": 100.0 * self.correct[k] / self.count for k in self.ks}
