"""MACs (dense / effective), latency measurement and the 2:4 path's CPU answer (harness/costs.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.costs import batched, count_macs, measure_latency, model_costs, semi_structured_latency
from harness.projection import hard_prune_, nm_plan
from harness.sparse_inference import semi_structured_linears, semi_structured_support

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    # conv: 8 out x 8 x 8 positions x (3 in x 3 x 3) = 13,824 MACs; linear: 512 x 10 = 5,120 MACs (per image)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10)).eval()


def test_known_answer_macs_dense_and_effective():
    model = _tiny()
    x = torch.randn(1, 3, 8, 8)
    macs = count_macs(model, x)
    assert macs.dense_macs == 13_824 + 5_120 and macs.effective_macs == pytest.approx(18_944)
    assert macs.layers == {"0": {"macs": 13_824, "density": 1.0}, "3": {"macs": 5_120, "density": 1.0}}
    with torch.no_grad():
        model[3].weight[:, : 512 * 3 // 4] = 0.0  # 75 % of the linear weight
        model[0].weight[:4] = 0.0  # half of the conv weight
    macs = count_macs(model, torch.randn(2, 3, 8, 8))  # batch 2: twice the MACs
    assert macs.dense_macs == 2 * 18_944
    assert macs.effective_macs == pytest.approx(2 * (13_824 * 0.5 + 5_120 * 0.25))
    assert macs.input_shape == [2, 3, 8, 8] and macs.effective_gmacs == pytest.approx(macs.effective_macs / 1e9)


def test_latency_is_a_median_with_its_settings_and_restores_threads():
    model = _tiny()
    before = torch.get_num_threads()
    lat = measure_latency(model, torch.randn(1, 3, 8, 8), batch=4, repeats=5, warmup=2, threads=1)
    assert lat.ms > 0 and lat.batch == 4 and lat.ms_per_image == pytest.approx(lat.ms / 4)
    assert (lat.threads, lat.device, lat.repeats, lat.warmup, lat.runtime) == (1, "cpu", 5, 2, "torch")
    assert torch.get_num_threads() == before
    assert batched(torch.randn(3, 2), 5).shape == (5, 2)
    with pytest.raises(ValueError):
        measure_latency(model, torch.randn(1, 3, 8, 8), repeats=0)


def test_model_costs_time_the_csr_copy_only_when_a_linear_is_sparse():
    model = _tiny()
    x = torch.randn(1, 3, 8, 8)
    dense = model_costs(model, x, eval_batch=3, repeats=3, warmup=1, threads=1)
    assert set(dense.latency_ms) == {"b1", "b3"} and "no Linear layer sparse enough" in dense.notes[0]
    with torch.no_grad():
        hard_prune_(dict(model.named_parameters()), {"3.weight": 0.9})
    pruned = model_costs(model, x, eval_batch=3, repeats=3, warmup=1, threads=1)
    assert set(pruned.latency_ms) == {"b1", "b3", "csr_b1", "csr_b3"}
    assert pruned.effective_gmacs < pruned.dense_gmacs == dense.dense_gmacs
    record = pruned.to_record()
    assert record["threads"] == 1 and record["device"] == "cpu" and record["ms_per_image"] > 0
    assert isinstance(model[3], nn.Linear)  # the CSR copy left the model alone


def test_semi_structured_path_says_why_not_on_cpu():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    plan = nm_plan(model, ["0.weight", "2.weight"], "nm:2:4")
    hard_prune_(dict(model.named_parameters()), plan.ratios, "nm:2:4")
    reason = semi_structured_support(torch.device("cpu"))
    assert reason is not None and reason.startswith("not supported here: ")
    result = semi_structured_linears(model)
    assert not result.supported and result.reason == reason and result.converted == []
    assert isinstance(model[0], nn.Linear) and model[0].weight.layout == torch.strided
    timed = semi_structured_latency(model, torch.randn(1, 64))
    assert timed == {"supported": False, "reason": reason}


def test_record_columns_read_size_and_costs_and_tolerate_old_records():
    from harness.costs import COLUMNS, record_columns

    record = {"size": {"bytes": 2_500_000}, "costs": {"effective_gmacs": 0.25, "ms_per_image": 3.5}}
    assert record_columns(record) == {"MB": 2.5, "GMACs (eff.)": 0.25, "ms/img": 3.5}
    assert record_columns({}) == {"MB": None, "GMACs (eff.)": None, "ms/img": None}
    assert list(COLUMNS) == ["MB", "GMACs (eff.)", "ms/img"]


def test_model_costs_note_why_2_4_was_not_timed_on_this_device():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    plan = nm_plan(model, ["0.weight", "2.weight"], "nm:2:4")
    hard_prune_(dict(model.named_parameters()), plan.ratios, "nm:2:4")
    costs = model_costs(model, torch.randn(1, 64), eval_batch=2, repeats=2, warmup=0, csr=False)
    assert [n for n in costs.notes if n.startswith("2:4 semi-structured: not supported here: ")]
    assert costs.effective_gmacs == pytest.approx(costs.dense_gmacs / 2)
