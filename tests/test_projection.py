"""Projection: exact top-|w|, deterministic ties, numpy-percentile compatibility (spec §3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.projection import hard_prune_, percentile_threshold, project, topk_mask, topk_threshold


@pytest.mark.parametrize("n,p", [(1000, 0.9), (37, 0.5), (36_864, 0.9), (5, 0.0), (5, 1.0), (4096, 0.333)])
def test_topk_keeps_exactly_the_largest(n, p):
    torch.manual_seed(n)
    x = torch.randn(n)
    mask = topk_mask(x, p)
    keep = n - int(np.floor(n * p + 1e-9))
    assert int(mask.sum()) == keep
    if 0 < keep < n:
        assert x[mask].abs().min() >= x[~mask].abs().max()


def test_ties_broken_by_lowest_index():
    x = torch.tensor([1.0, -2.0, 2.0, 2.0, 0.5, -2.0])
    mask = topk_mask(x, 0.5)  # keep 3 of the four |2| entries: indices 1, 2, 3
    assert mask.tolist() == [False, True, True, True, False, False]
    assert torch.equal(topk_mask(x, 0.5), mask)


def test_large_keep_uses_smallest_side_same_answer():
    torch.manual_seed(0)
    x = torch.randn(10_001)
    for p in (0.01, 0.2, 0.49, 0.51, 0.99):
        mask = topk_mask(x, p)
        order = torch.argsort(x.abs(), descending=True, stable=True)
        ref = torch.zeros_like(mask)
        ref[order[: mask.sum()]] = True
        assert torch.equal(mask, ref)


def test_percentile_compat_counts():
    torch.manual_seed(1)
    x = torch.randn(36_864)
    projected, mask = project(x, 0.9, "percentile")
    assert int((projected == 0).sum()) == 33_177
    assert int(mask.sum()) == 3_687
    tau = percentile_threshold(x, 0.9)
    assert tau == pytest.approx(float(np.percentile(x.abs().numpy(), 90.0)))


def test_hard_prune_in_place_preserves_shape_and_values():
    w = torch.nn.Parameter(torch.randn(8, 4, 3, 3))
    before = w.detach().clone()
    masks = hard_prune_({"w": w}, {"w": 0.75})
    assert w.shape == before.shape
    kept = masks["w"]
    assert torch.equal(w.detach()[kept], before[kept])
    assert torch.all(w.detach()[~kept] == 0)
    assert int(kept.sum()) == 288 - 216


@pytest.mark.parametrize("keep", [1, 7, 500, 999, 1000])
def test_device_threshold_matches_sorting(keep):
    """The accelerator path (torch.topk) finds the same keep-th largest value as a full sort."""
    torch.manual_seed(keep)
    mag = torch.randn(1000).abs()
    assert topk_threshold(mag, keep) == torch.sort(mag, descending=True).values[keep - 1]
