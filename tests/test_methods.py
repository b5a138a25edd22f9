"""SLR / ADMM update rules, reference-mode facts (the authors' code's behaviour) and paper-mode behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.methods import ADMM, SLR, alpha_k
from harness.projection import topk_mask
from harness.sparsity import SparsityPlan


def test_alpha_values():
    assert alpha_k(1) == pytest.approx(0.996667, abs=1e-6)
    assert alpha_k(10) == pytest.approx(0.997924, abs=1e-6)
    assert alpha_k(100) == pytest.approx(0.999391, abs=1e-6)


def toy(seed: int = 0) -> tuple[nn.Module, SparsityPlan]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    plan = SparsityPlan.uniform(model, ["0.weight", "2.weight"], 0.75)
    return model, plan


def drive(method, model, epoch_losses, steps=3, seed=0):
    """Run the hook sequence for len(epoch_losses) epochs; each epoch's observed losses average to the given value.

    W moves between hook calls by random in-place perturbations (standing in for optimizer steps).
    Returns the W snapshot taken right before each dual update (start of epochs 2..E).
    """
    gen = torch.Generator().manual_seed(seed)
    snapshots = []
    for epoch, loss in enumerate(epoch_losses, start=1):
        method.on_epoch_start(epoch)
        for b in range(steps):
            if b == 0 and epoch >= 2:
                snapshots.append({t.name: t.param.detach().clone() for t in method.tensors})
            method.on_batch_start(epoch, b)
            method.observe_loss(torch.tensor(loss))
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
            method.after_step()
        method.on_epoch_end(epoch)
    return snapshots


def test_reference_first_update_lambda_is_s0_w_and_z_support():
    model, plan = toy()
    slr = SLR(mode="reference")
    slr.attach(model, plan)
    snaps = drive(slr, model, [1.0, 0.9])
    first = slr.updates[0]
    assert first["accepted1"] and first["s_after1"] == pytest.approx(0.01)  # n1 = 0: s stays s0
    # The lambda after stage 1 is s0 * W; stage 2 adds s*(W - Z) only if cond2 held (ce_prev = 0: it cannot)
    assert not first["sat2"]
    for t in slr.tensors:
        w = snaps[0][t.name]
        assert torch.allclose(t.extra["lam"], 0.01 * w, atol=1e-7)
        # Z = Pi(W + U) = Pi(1.1 W): the support of Pi(W)
        assert torch.equal(t.z != 0, topk_mask(w, t.ratio))


def test_reference_cond1_is_ce_comparison_and_stage1_ratio_is_one():
    model, plan = toy(1)
    slr = SLR(mode="reference")
    slr.attach(model, plan)
    losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.6, 0.65]
    drive(slr, model, losses)
    assert len(slr.updates) == len(losses) - 1
    for rec in slr.updates[1:]:
        assert rec["sat1"] == (rec["ce"] < rec["ce_prev"])
        assert rec["n1_stage1"] == pytest.approx(rec["n2_stage1"], rel=1e-12)  # aliasing: ratio exactly 1
        if rec["accepted1"]:
            assert rec["s_after1"] == pytest.approx(rec["alpha1"] * rec["s_before"], rel=1e-12)
    assert any(r["sat1"] for r in slr.updates[1:]) and not all(r["sat1"] for r in slr.updates[1:])


def penalty_grad(method) -> dict[str, torch.Tensor]:
    for t in method.tensors:
        t.param.grad = torch.zeros_like(t.param)
    method.after_backward()
    return {t.name: t.param.grad.clone() for t in method.tensors}


def test_reference_gradient_leak_factor():
    model, plan = toy(2)
    slr = SLR(mode="reference")
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.8, 0.7, 0.75])
    s_sum = 0.0
    for rec in slr.updates:
        if rec["accepted1"]:
            s_sum += rec["s_after1"]
        if rec["accepted2"]:
            s_sum += rec["s"]
    factor = 1.0 + s_sum / slr.rho
    assert slr.leak_c == pytest.approx(s_sum / slr.rho, rel=1e-12)
    assert factor > 1.1
    grads = penalty_grad(slr)
    for t in slr.tensors:
        expected = factor * slr.rho * (t.param.detach() - t.z + t.u)
        assert torch.allclose(grads[t.name], expected, atol=1e-6)


def test_reference_admm_factor_is_one_plus_updates():
    model, plan = toy(3)
    admm = ADMM(mode="reference")
    admm.attach(model, plan)
    drive(admm, model, [1.0, 0.9, 0.8, 0.7])  # updates at epochs 2, 3, 4
    assert len(admm.updates) == 3
    grads = penalty_grad(admm)
    for t in admm.tensors:
        assert torch.allclose(grads[t.name], 4.0 * admm.rho * (t.param.detach() - t.z + t.u), atol=1e-6)


def test_admm_update_rule():
    model, plan = toy(4)
    admm = ADMM()
    admm.attach(model, plan)
    drive(admm, model, [1.0])
    u_old = {t.name: t.u.clone() for t in admm.tensors}
    w = {t.name: t.param.detach().clone() for t in admm.tensors}
    admm.on_epoch_start(2)
    admm.on_batch_start(2, 0)
    for t in admm.tensors:
        z = w[t.name] + u_old[t.name]
        z = z * topk_mask(z, t.ratio)
        assert torch.allclose(t.z, z)
        assert torch.allclose(t.u, u_old[t.name] + w[t.name] - z)


def test_paper_mode_has_no_leak_and_clones_snapshots():
    model, plan = toy(5)
    slr = SLR(mode="paper")
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.8, 0.7])
    assert slr.leak_c == 0.0
    grads = penalty_grad(slr)
    for t in slr.tensors:
        assert torch.allclose(grads[t.name], slr.rho * (t.param.detach() - t.z + t.u), atol=1e-6)
        before = t.extra["wprev"].clone()
        with torch.no_grad():
            t.param.add_(1.0)
        assert torch.equal(t.extra["wprev"], before)  # a true snapshot, not an alias


def test_paper_first_update_uses_w0_z0():
    model, plan = toy(6)
    slr = SLR(mode="paper")
    slr.attach(model, plan)
    z0 = {t.name: t.z.clone() for t in slr.tensors}
    snaps = drive(slr, model, [1.0, 0.9])
    rec = slr.updates[0]
    assert rec["n1_stage1"] > 0  # ||W0 - Z0|| (the reference has 0 here)
    s1 = rec["s_after1"]
    for t in slr.tensors:
        lam1 = s1 * (snaps[0][t.name] - z0[t.name])
        if rec["accepted2"]:
            lam1 = lam1 + rec["s"] * (snaps[0][t.name] - t.z)
        assert torch.allclose(t.extra["lam"], lam1, atol=1e-6)


def test_no_update_in_first_epoch_and_period():
    model, plan = toy(7)
    admm = ADMM(update_every=2)
    admm.attach(model, plan)
    drive(admm, model, [1.0] * 6)
    assert [u["epoch"] for u in admm.updates] == [3, 5]  # the authors' cadence: epochs 1+T, 1+2T


def test_state_round_trip():
    model, plan = toy(8)
    slr = SLR(mode="reference")
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.8, 0.9])
    state = slr.state_dict()
    other = SLR(mode="reference")
    other.attach(model, plan)
    other.load_state_dict(state)
    assert (other.s, other.k, other.ce, other.ce_prev, other.leak_c) == (slr.s, slr.k, slr.ce, slr.ce_prev, slr.leak_c)
    for a, b in zip(slr.tensors, other.tensors):
        assert torch.equal(a.z, b.z) and torch.equal(a.u, b.u)
