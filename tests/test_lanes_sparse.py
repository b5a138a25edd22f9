"""CSR inference of a pruned UFLD head gives the dense model's outputs."""

from __future__ import annotations

import pytest
import torch

from adapters.lanes.sparse_inference import CSRLinear, sparsify_linears
from adapters.lanes.ufld_model import build_ufld
from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pruned_head_as_csr_matches_dense():
    torch.manual_seed(0)
    model = build_ufld("ufld_resnet18", input_size=(64, 160)).eval()
    names = ["cls.0.weight", "cls.2.weight"]
    plan = SparsityPlan.uniform(model, names, 0.95)
    hard_prune_(dict(model.named_parameters()), plan.ratios)
    x = torch.randn(2, 3, 64, 160)
    with torch.no_grad():
        dense = model(x)
        assert sparsify_linears(model) == ["cls.0", "cls.2"]
        assert isinstance(model.cls[2], CSRLinear)
        sparse = model(x)
    assert sparse.shape == dense.shape
    assert torch.allclose(sparse, dense, atol=1e-4, rtol=1e-4)


def test_dense_linears_are_left_alone():
    model = build_ufld("ufld_resnet18", input_size=(64, 160))
    assert sparsify_linears(model) == []
