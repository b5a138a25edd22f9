"""Compression counting and rate -> ratio solving (the authors' `test_sparsity` rule)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from adapters.cifar_models import CifarResNetA, cifar_resnet
from adapters.classification import block_convs
from harness.errors import UserError
from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan, kept_count, measure_compression


def test_cifar_resnet18_at_0p9_gives_8p71():
    model = cifar_resnet(18)
    names = block_convs(model)
    assert len(names) == 16
    plan = SparsityPlan.uniform(model, names, 0.9)
    pred = plan.predicted_compression(model)
    assert pred["paper"] == pytest.approx(8.7107, abs=1e-4)
    hard_prune_(dict(model.named_parameters()), plan.ratios)
    report = measure_compression(model, names)
    assert report.totals["paper"][0] == 11_169_152
    assert report.paper == pytest.approx(8.7107, abs=1e-4)
    assert report.paper == pytest.approx(pred["paper"], rel=1e-12)


def test_imagenet_resnet18_at_0p9_gives_6p50():
    model = torchvision.models.resnet18()
    plan = SparsityPlan.uniform(model, block_convs(model), 0.9)
    assert plan.predicted_compression(model)["paper"] == pytest.approx(6.5025, abs=1e-4)


@pytest.mark.parametrize("depth,ratio,expected,total", [(56, 0.85, 6.53, 850_976), (110, 0.9, 9.74, 1_723_904)])
def test_cifar_option_a_resnets(depth, ratio, expected, total):
    model = CifarResNetA(depth)
    names = block_convs(model)
    assert len(names) == 2 * 3 * (depth - 2) // 6
    plan = SparsityPlan.uniform(model, names, ratio)
    assert sum(p.numel() for n, p in model.named_parameters() if "bias" not in n) == total
    assert plan.predicted_compression(model)["paper"] == pytest.approx(expected, abs=0.005)


def test_for_rate_solves_and_reports_achieved():
    model = cifar_resnet(18)
    plan = SparsityPlan.for_rate(model, block_convs(model), 8.71)
    (p,) = set(plan.ratios.values())
    assert p == pytest.approx(0.9, abs=1e-4)
    assert plan.predicted_compression(model)["paper"] == pytest.approx(8.71, rel=1e-4)


def test_infeasible_rate_names_highest_feasible():
    model = cifar_resnet(18)
    with pytest.raises(UserError, match=r"highest feasible rate is 60\.\d+x"):
        SparsityPlan.for_rate(model, block_convs(model), 100.0)


@pytest.mark.parametrize("rate", [1.0, 0.5, -3.0, float("nan")])
def test_rate_must_exceed_one(rate):
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(UserError, match="must be > 1"):
        SparsityPlan.for_rate(model, ["0.weight"], rate)


def test_yaml_round_trip_and_module_prefix(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prune_ratios:\n  module.0.weight: 0.5\n  module.1.weight: 0.9\n")
    plan = SparsityPlan.from_yaml(cfg, model)
    assert plan.ratios == {"0.weight": 0.5, "1.weight": 0.9}
    plan.to_yaml(tmp_path / "o.yaml")
    assert SparsityPlan.from_yaml(tmp_path / "o.yaml", model).ratios == plan.ratios


def test_yaml_errors(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    bad = tmp_path / "bad.yaml"
    bad.write_text("prune_ratios:\n  nope.weight: 0.5\n")
    with pytest.raises(UserError, match="nope.weight"):
        SparsityPlan.from_yaml(bad, model)
    bad.write_text("prune_ratios: [1, 2]\n")
    with pytest.raises(UserError, match="prune_ratios"):
        SparsityPlan.from_yaml(bad, model)
    with pytest.raises(UserError, match="does not exist"):
        SparsityPlan.from_yaml(tmp_path / "missing.yaml", model)


def test_kept_count_rule():
    assert kept_count(36_864, 0.9) == 3_687
    assert kept_count(10, 0.9) == 1
    assert kept_count(10, 0.0) == 10
    assert kept_count(10, 1.0) == 0


def test_conv_rule_counts_only_4d():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
    report = measure_compression(model, ["0.weight"])
    assert report.totals["conv"] == (108, 0)
    assert report.totals["paper"] == (116, 8)
