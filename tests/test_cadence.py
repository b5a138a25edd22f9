"""Update cadences in iterations, step budgets, rho schedules, the eq. (10) numerators and the accuracy before the
hard prune: each checked at the step where it must happen."""

from __future__ import annotations

import math

import pytest
import torch

from harness.config import MethodSettings, RunConfig
from harness.errors import UserError
from harness.methods import ADMM, SLR
from harness.runner import run
from tests.test_methods import drive, toy

QUICK = dict(task="digits", epochs=3, retrain_epochs=0, pretrain_epochs=2, max_steps=6, costs=False,
             tensorboard=False)


def steps_of(method) -> list[tuple[int, int, int]]:
    return [(u["epoch"], u["batch"], u["step"]) for u in method.updates]


def test_default_cadence_logs_global_steps():
    model, plan = toy(1)
    admm = ADMM()
    admm.attach(model, plan)
    drive(admm, model, [1.0] * 4, steps=5)
    assert steps_of(admm) == [(2, 0, 5), (3, 0, 10), (4, 0, 15)]


def test_updates_per_epoch_are_evenly_spaced():
    model, plan = toy(2)
    slr = SLR(updates_per_epoch=2)
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.9, 0.8], steps=5)
    # n = 5 batches: batches floor(0*5/2) = 0 and floor(1*5/2) = 2, from epoch 2 on
    assert steps_of(slr) == [(2, 0, 5), (2, 2, 7), (3, 0, 10), (3, 2, 12)]


def test_update_every_steps_counts_across_epochs():
    model, plan = toy(3)
    admm = ADMM(update_every_steps=3)
    admm.attach(model, plan)
    drive(admm, model, [1.0] * 4, steps=4)  # 16 steps; the first update at step 4 (epoch 2's first)
    assert [u["step"] for u in admm.updates] == [4, 7, 10, 13]
    assert [(u["epoch"], u["batch"]) for u in admm.updates] == [(2, 0), (2, 3), (3, 2), (4, 1)]


def test_update_every_steps_equal_to_epoch_length_is_the_default_cadence():
    logs = []
    for kwargs in ({}, {"update_every_steps": 4}):
        model, plan = toy(4)
        slr = SLR(mode="reference", **kwargs)
        slr.attach(model, plan)
        drive(slr, model, [1.0, 0.9, 0.95, 0.7], steps=4)
        logs.append([(u["step"], u["s"]) for u in slr.updates])
    assert logs[0] == logs[1] and len(logs[0]) == 3


def test_cadences_are_exclusive():
    with pytest.raises(UserError, match="update-every-steps"):
        MethodSettings.from_dict({"update_every_steps": 10, "updates_per_epoch": 2})
    with pytest.raises(UserError, match="update-every-steps"):
        run(RunConfig(method="admm", rate=4.0, settings=MethodSettings(update_every=2, update_every_steps=5), **QUICK),
            log=lambda s: None)


def test_multiplicative_rho_after_each_update():
    model, plan = toy(5)
    slr = SLR(rho=0.1, rho_schedule="multiplicative", rho_factor=2.0)
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.9, 0.8], steps=3)
    assert [u["rho"] for u in slr.updates] == pytest.approx([0.1, 0.2])  # rho in force during each update
    assert slr.rho == pytest.approx(0.4)
    for t in slr.tensors:  # U = Lambda / rho with the new rho
        assert torch.allclose(t.u, t.extra["lam"] / 0.4)


def test_bragin_numerator_is_stage1_denominator():
    """bragin: eq. (10)'s numerator is ||W^k - Z^{k-1}||, the denominator eq. (5) just used."""
    model, plan = toy(6)
    slr = SLR(stage2_numerator="bragin")
    slr.attach(model, plan)
    drive(slr, model, [1.0, 0.9, 0.8], steps=3)
    for u in slr.updates:
        assert u["n1_stage2"] == pytest.approx(u["n2_stage1"], rel=1e-12)
    paper = SLR()
    model, plan = toy(6)
    paper.attach(model, plan)
    drive(paper, model, [1.0, 0.9, 0.8], steps=3)
    for u in paper.updates:  # printed eq. (10): the same numerator as eq. (5)
        assert u["n1_stage2"] == pytest.approx(u["n1_stage1"], rel=1e-12)


def test_step_budget_before_hardprune_and_steps_in_records(workdir):
    rec = run(RunConfig(method="slr", rate=4.0, max_method_steps=9, check_every=1,
                        settings=MethodSettings(updates_per_epoch=2), **QUICK), log=lambda s: None)
    assert rec["epochs"]["method"] == 2 and rec["epochs"]["method_steps"] == 9  # 6 + 3 steps, then the phase ends
    # epoch 2's second update would be at batch 3 = step 9: the budget ends the loop before it
    assert [(u["epoch"], u["batch"], u["step"]) for u in rec["updates"]] == [(2, 0, 6)]
    assert math.isfinite(rec["metrics"]["before_hardprune"])
    assert set(rec["metrics_full"]["before_hardprune"]) == set(rec["metrics_full"]["hardpruned"])


def test_early_stop_records_steps_to_threshold(workdir):
    rec = run(RunConfig(method="admm", rate=2.0, check_every=1, early_stop=0.0, **QUICK), log=lambda s: None)
    assert rec["epochs"]["to_threshold"] == 1 and rec["epochs"]["steps_to_threshold"] == 6


def test_every_knob_is_on_run_help(capsys):
    from harness.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--updates-per-epoch", "--update-every-steps", "--max-method-steps", "--rho-schedule",
                 "--rho-factor", "--stage2-numerator", "--wprev-alias", "--prev-init", "--dual-grad-leak",
                 "--cond2-f", "--norm-agg", "--guard-eps", "bragin"):
        assert flag in text, flag


def test_no_argument_run_is_the_three_seed_comparison(workdir, monkeypatch):
    from harness import cli

    seen = {}
    monkeypatch.setattr(cli, "run_cmd", lambda ns: seen.setdefault("configs", cli.run_configs(ns)) and 0)
    for argv in ([], ["run"]):
        seen.clear()
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0
        configs = seen["configs"]
        assert len(configs) == 27  # 3 methods x 3 rates x 3 seeds
        assert {c.seed for c in configs} == {0, 1, 2} and {c.method for c in configs} == {"slr", "admm", "magnitude"}
        assert {(c.epochs, c.retrain_epochs) for c in configs} == {(8, 2)}
    seen.clear()
    with pytest.raises(SystemExit):
        cli.main(["run", "--method", "slr", "--rate", "4"])  # an explicit run keeps the recipe and one seed
    assert [(c.seed, c.epochs, c.retrain_epochs) for c in seen["configs"]] == [(0, 15, 5)]


def test_export_rows_carry_accuracy_before_the_hard_prune():
    from harness.export import flat_rows, leaderboard
    from tests.records_factory import make_record

    recs = []
    for seed, before in enumerate((96.0, 98.0)):
        rec = make_record("slr", seed=seed)
        rec["metrics"]["before_hardprune"] = before
        rec["epochs"]["steps_to_threshold"] = 40 + 20 * seed
        recs.append(rec)
    (row,) = flat_rows(leaderboard(recs))
    assert row["before_hardprune"] == pytest.approx(97.0) and row["steps_to_threshold"] == pytest.approx(50.0)
    assert row["before_hardprune_ci_low"] < 97.0 < row["before_hardprune_ci_high"]
