"""Projection: exact top-|w|, deterministic ties, numpy-percentile compatibility (the authors' code)."""

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


def _tied_tensors(seed: int) -> tuple[list[torch.Tensor], list[float]]:
    """Tensors with many exact ties at the threshold (values quantised to a few levels), some of equal size so the
    batched path's 2-D top-k groups are exercised, plus the keep-all / keep-none edge cases."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(16, 8, 3, 3), (16, 8, 3, 3), (16, 8, 3, 3), (37,), (10, 10), (10, 10), (1,), (5, 7), (4096,), (0,)]
    ratios = [0.9, 0.9, 0.5, 0.3, 0.97, 0.9, 0.5, 0.0, 0.999, 0.5]
    xs = [torch.randint(-4, 5, s, generator=g).float() * 0.25 for s in shapes]
    xs[4] = torch.full((10, 10), 0.5)  # every entry tied
    xs[8] = torch.randn(4096, generator=g)  # no ties: the plain path
    return xs, ratios


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_topk_masks_equal_per_tensor_masks(seed):
    """The batched algorithm (what accelerators run) gives bit-identical masks to `topk_mask`, ties included."""
    from harness.projection import batched_topk_masks, topk_masks

    xs, ratios = _tied_tensors(seed)
    want = [topk_mask(x, r) for x, r in zip(xs, ratios)]
    for got in (batched_topk_masks(xs, ratios), topk_masks(xs, ratios),
                batched_topk_masks([x.bfloat16() for x in xs], ratios)):
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            assert g.dtype == torch.bool and torch.equal(g, w)


def test_hard_prune_many_matches_one_by_one():
    from harness.projection import project_many

    xs, ratios = _tied_tensors(5)
    for (z, m), x, r in zip(project_many(xs, ratios), xs, ratios):
        z1, m1 = project(x, r)
        assert torch.equal(m, m1) and torch.equal(z, z1)
