"""N:M semi-structured projection (harness/projection.py `nm:N:M`): pattern, exactness, plans, methods, counting."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from harness.errors import UserError
from harness.methods.admm import ADMM
from harness.methods.magnitude import IterativeMagnitude, OneShotMagnitude
from harness.projection import check_projection, hard_prune_, is_nm, nm_mask, nm_plan, nm_ratio, project
from harness.sparsity import measure_compression


def _brute_force_projection(x: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """argmin ||y - x||_2 over every y with at most n non-zeros per group, by enumerating each group's supports."""
    rows = x.reshape(x.shape[0], -1)
    out = torch.zeros_like(rows)
    for r in range(rows.shape[0]):
        for g in range(0, rows.shape[1], m):
            group = rows[r, g:g + m]
            best, best_err = None, float("inf")
            for support in itertools.combinations(range(m), n):  # lowest-index support first: ties resolve to it
                y = torch.zeros_like(group)
                y[list(support)] = group[list(support)]
                err = float(((y - group) ** 2).sum())
                if err < best_err - 1e-12:
                    best, best_err = y, err
            out[r, g:g + m] = best
    return out.view_as(x)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8), (1, 2)])
@pytest.mark.parametrize("shape", [(6, 8), (4, 2, 2, 2), (3, 16)])
def test_projection_is_the_exact_euclidean_projection(n, m, shape):
    if (torch.Size(shape).numel() // shape[0]) % m:
        pytest.skip("row length not a multiple of M")
    torch.manual_seed(n * 100 + m)
    x = torch.randn(shape)
    y, mask = project(x, 1 - n / m, f"nm:{n}:{m}")
    assert torch.equal(y, _brute_force_projection(x, n, m))
    assert torch.equal(mask, y != 0)
    assert is_nm(mask, n, m) and int(mask.sum()) == x.numel() * n // m


def test_ties_go_to_the_lowest_index_and_exactly_n_are_kept():
    x = torch.tensor([[1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = nm_mask(x, 2, 4)
    assert mask.tolist() == [[True, True, False, False, True, True, False, False]]  # an all-zero group keeps 2 slots
    assert torch.equal(nm_mask(x, 2, 4), mask)


def test_conv_groups_run_along_input_channels_times_kernel_flattened():
    # weight (out=1, in=2, 1, 2): flattened row = [w[0,0,0,0], w[0,0,0,1], w[0,1,0,0], w[0,1,0,1]]
    w = torch.tensor([[[[0.1, 5.0]], [[-4.0, 0.2]]]])
    mask = nm_mask(w, 2, 4)
    assert mask.reshape(-1).tolist() == [False, True, True, False]
    assert is_nm(w * mask, 2, 4) and not is_nm(w, 2, 4)


def test_hard_prune_with_nm_counts_compression_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 16))
    plan = nm_plan(model, ["0.weight", "3.weight"], "nm:2:4", rule="pruned")
    assert plan.ratios == {"0.weight": 0.5, "3.weight": 0.5}
    assert plan.target_rate == pytest.approx(2.0)
    masks = hard_prune_(dict(model.named_parameters()), plan.ratios, "nm:2:4")
    assert all(is_nm(m, 2, 4) for m in masks.values())
    report = measure_compression(model, plan.ratios)
    assert report.rates["pruned"] == pytest.approx(2.0)  # random weights have no accidental zeros
    assert report.rates["paper"] == pytest.approx(plan.predicted_compression(model)["paper"])


def test_rate_must_match_the_pattern_and_bad_shapes_or_names_are_one_line_errors():
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 3), nn.Linear(3, 2))
    with pytest.raises(UserError, match=r"omit --rate or pass --rate 2"):
        nm_plan(model, ["0.weight"], "nm:2:4", rate=4.0, rule="pruned")
    assert nm_plan(model, ["0.weight"], "nm:2:4", rate=2.0, rule="pruned").ratios == {"0.weight": 0.5}
    with pytest.raises(UserError, match=r"2\.weight of shape \(2, 3\).*not a multiple of M=4"):
        nm_plan(model, ["2.weight"], "nm:2:4")
    for bad in ("nm:4:2", "nm:2", "nm:a:b", "nm:0:4"):
        with pytest.raises(UserError, match="nm"):
            check_projection(bad)
    with pytest.raises(UserError, match="unknown projection 'top'"):
        check_projection("top")
    check_projection("nm:2:4")
    assert nm_ratio("nm:1:4") == 0.75 and nm_ratio("topk") is None
    with pytest.raises(UserError, match="implies prune ratio 0.5"):
        project(torch.randn(2, 4), 0.3, "nm:2:4")


def test_methods_use_nm_through_the_shared_entry_point():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    plan = nm_plan(model, ["0.weight", "2.weight"], "nm:2:4")
    magnitude = OneShotMagnitude(projection="nm:2:4")
    magnitude.attach(model, plan)
    assert all(is_nm(t.param, 2, 4) for t in magnitude.tensors)
    admm = ADMM(projection="nm:2:4")
    admm.attach(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), plan)
    assert all(t.z is not None and is_nm(t.z, 2, 4) for t in admm.tensors)
    iterative = IterativeMagnitude(rounds=2, epochs=2, projection="nm:2:4")
    iterative.attach(model, plan)
    with pytest.raises(UserError, match="iterative"):
        iterative.on_epoch_start(1)
