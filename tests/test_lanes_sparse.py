"""CSR inference of a pruned UFLD head (adapters/lanes/sparse_inference.py) gives the dense model's outputs.

No spconv test: spconv is deliberately not used by the package (see the module docstring and
benchmarks/results/lane_sparse_inference_cpu.md), so the core suite has nothing of it to check.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adapters.lanes.sparse_inference import CSRLinear, sparsify_linears
from adapters.lanes.ufld_model import build_ufld
from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = (64, 160)  # a multiple of 32 keeps the real layer layout; the head is then Linear(80, 2048) -> 22624


def _pruned_ufld(ratio: float) -> nn.Module:
    torch.manual_seed(0)
    model = build_ufld("ufld_resnet18", input_size=SMALL).eval()
    plan = SparsityPlan.uniform(model, ["cls.0.weight", "cls.2.weight"], ratio)
    with torch.no_grad():
        hard_prune_(dict(model.named_parameters()), plan.ratios)
    return model


@pytest.mark.parametrize("batch", [1, 3])
def test_pruned_head_as_csr_matches_dense(batch: int):
    model = _pruned_ufld(0.95)
    x = torch.randn(batch, 3, *SMALL)
    with torch.no_grad():
        dense = model(x)
        assert sparsify_linears(model) == ["cls.0", "cls.2"]
        sparse = model(x)
    assert isinstance(model.cls[2], CSRLinear)
    assert sparse.shape == dense.shape
    # Only the summation order differs (the kernel adds the kept products only).
    assert torch.allclose(sparse, dense, atol=1e-6, rtol=1e-5), float((sparse - dense).abs().max())


def test_csr_linear_keeps_exactly_the_nonzeros_with_int32_indices():
    torch.manual_seed(0)
    lin = nn.Linear(40, 30)
    with torch.no_grad():
        lin.weight[torch.rand_like(lin.weight) < 0.9] = 0.0
    csr = CSRLinear(lin)
    w = csr.weight_csr
    assert w.crow_indices().dtype == torch.int32 and w.col_indices().dtype == torch.int32  # MKL's fast path
    assert csr.nnz == int((lin.weight != 0).sum())
    assert torch.equal(w.to_dense(), lin.weight.detach())
    assert csr.nbytes() == csr.nnz * (4 + 4) + (30 + 1) * 4  # fp32 values, int32 columns, int32 row pointers
    x = torch.randn(2, 5, 40)  # leading dims are kept, as nn.Linear does
    with torch.no_grad():
        assert torch.allclose(csr(x), lin(x), atol=1e-6)
    assert list(csr.parameters()) == []  # inference only: nothing for an optimizer to update


def test_threshold_leaves_dense_linears_alone():
    model = build_ufld("ufld_resnet18", input_size=SMALL)
    assert sparsify_linears(model) == []
    pruned = _pruned_ufld(0.5)  # below the default 75 % zeros
    assert sparsify_linears(pruned) == []
    assert sparsify_linears(pruned, min_sparsity=0.0) == ["cls.0", "cls.2"]
    with pytest.raises(ValueError):
        sparsify_linears(pruned, min_sparsity=1.5)
