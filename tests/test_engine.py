"""Phases and epoch hooks on a toy model, each in milliseconds (no data, no task): the runner's per-epoch work."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from harness.config import RunConfig
from harness.hooks import Checkpoint, CurveLog, EpochLog, HardPruneCheck, PhaseTimer, RetrainEval
from harness.methods.base import PruningMethod
from harness.phases import EpochHook, EpochStats, PhaseContext, PhaseSpec, run_phase
from harness.record import RunRecord
from harness.sparsity import SparsityPlan


class FakeDriver:
    """Calls on_epoch_end once per epoch with made-up stats, as a real driver would after training."""

    def __init__(self) -> None:
        self.epochs_run: list[int] = []

    def fit(self, model: nn.Module, spec: PhaseSpec, on_epoch_end: Any) -> dict[str, Any]:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(spec.start_epoch, spec.epochs + 1):
            self.epochs_run.append(epoch)
            stats = EpochStats(epoch=epoch, train_loss=1.0 / epoch, steps=3, seconds=0.01, lr=0.1,
                               method_log={"penalty": 0.5})
            if on_epoch_end(stats, model, opt):
                break
        return {"schedule": {"kind": "fake"}}


def make_ctx(epochs: int = 4, name: str = "method", start: int = 1, metric_by_epoch=None) -> PhaseContext:
    model = nn.Linear(8, 4)
    with torch.no_grad():
        model.weight.copy_(torch.arange(32, dtype=torch.float32).view(4, 8))
    record = RunRecord(run_id="toy", task="toy", model="toy", method="slr", config={}, provenance={})
    calls: list[str] = []

    def evaluate(m: nn.Module, desc: str) -> dict[str, float]:
        calls.append(desc)
        nonzero = float((m.weight != 0).sum())
        return {"acc": nonzero, "n_evals": float(len(calls))}

    saved: list[dict[str, Any]] = []
    ctx = PhaseContext(model=model, spec=PhaseSpec(name=name, epochs=epochs, hooks=PruningMethod(),
                                                   optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                                                   start_epoch=start),
                       record=record, evaluate=evaluate, primary=lambda m: m["acc"], log=calls.append,
                       save_checkpoint=saved.append)
    ctx.scratch["calls"], ctx.scratch["saved"] = calls, saved
    return ctx


def test_run_phase_order_and_stop():
    order: list[str] = []

    class Probe(EpochHook):
        def __init__(self, tag: str, stop_at: int | None = None):
            self.tag, self.stop_at = tag, stop_at

        def before_phase(self, ctx):
            order.append(f"{self.tag}:before")

        def after_epoch(self, ctx, stats, view, optimizer):
            order.append(f"{self.tag}:{stats.epoch}")
            if stats.epoch == self.stop_at:
                ctx.stop = True

        def after_phase(self, ctx):
            order.append(f"{self.tag}:after")

    ctx, driver = make_ctx(epochs=5), FakeDriver()
    facts = run_phase(driver, ctx, [Probe("a", stop_at=2), Probe("b")])
    assert driver.epochs_run == [1, 2] and facts == {"schedule": {"kind": "fake"}}
    assert order == ["a:before", "b:before", "a:1", "b:1", "a:2", "b:2", "a:after", "b:after"]


def test_finished_phase_runs_no_epoch():
    ctx, driver = make_ctx(epochs=3, start=4), FakeDriver()
    assert run_phase(driver, ctx, [CurveLog("train")]) == {} and driver.epochs_run == []
    assert ctx.record.epochs == {"method": 0}


def test_curve_log_points_and_epoch_count():
    ctx = make_ctx(epochs=2)
    run_phase(FakeDriver(), ctx, [CurveLog("train")])
    assert [(p["phase"], p["epoch"], p["penalty"]) for p in ctx.record.curves["train"]] == [("method", 1, 0.5),
                                                                                            ("method", 2, 0.5)]
    assert ctx.record.epochs["method"] == 2


def test_retrain_curve_keeps_the_method_updates():
    ctx = make_ctx(epochs=1)
    ctx.spec.hooks.updates.append({"epoch": 1, "s": 0.01})
    run_phase(FakeDriver(), ctx, [CurveLog("train")])
    retrain = make_ctx(epochs=1, name="retrain")
    retrain.record = ctx.record  # one record across the phases, as in a run
    run_phase(FakeDriver(), retrain, [CurveLog("retrain")])
    assert retrain.record.updates == [{"epoch": 1, "s": 0.01}]


def test_hard_prune_check_cadence_uses_a_pruned_copy():
    ctx = make_ctx(epochs=5)
    plan = SparsityPlan(ratios={"weight": 0.75})
    run_phase(FakeDriver(), ctx, [HardPruneCheck(plan, "topk", check_every=2, early_stop=None,
                                                 higher_is_better=True)])
    checks = ctx.record.curves["hardprune_checks"]
    assert [c["epoch"] for c in checks] == [2, 4, 5]  # every 2 and always the last epoch
    assert all(c["metric"] == 8.0 for c in checks)  # 32 weights, 75 % pruned in the copy
    assert int((ctx.model.weight != 0).sum()) == 31  # the live model is untouched (one weight is 0 already)


def test_early_stop_records_threshold_epoch():
    ctx, driver = make_ctx(epochs=6), FakeDriver()
    plan = SparsityPlan(ratios={"weight": 0.5})
    run_phase(driver, ctx, [HardPruneCheck(plan, "topk", check_every=3, early_stop=16.0, higher_is_better=True)])
    assert driver.epochs_run == [1, 2, 3] and ctx.record.epochs["to_threshold"] == 3


def test_retrain_eval_fills_the_curve_point():
    ctx = make_ctx(epochs=2, name="retrain")
    run_phase(FakeDriver(), ctx, [CurveLog("retrain"), RetrainEval()])
    assert [p["metric"] for p in ctx.record.curves["retrain"]] == [31.0, 31.0]
    assert ctx.record.curves["retrain"][1]["n_evals"] == 2.0


def test_checkpoint_every_n_at_the_end_and_on_stop():
    ctx = make_ctx(epochs=5)
    run_phase(FakeDriver(), ctx, [CurveLog("train"), Checkpoint(every=2)])
    assert [s["epoch"] for s in ctx.scratch["saved"]] == [2, 4, 5]
    last = ctx.scratch["saved"][-1]
    assert last["phase"] == "method" and set(last) >= {"model", "hooks", "optimizer", "record"}
    assert len(last["record"]["curves"]["train"]) == 5  # the record as of that epoch

    ctx = make_ctx(epochs=5)
    plan = SparsityPlan(ratios={"weight": 0.5})
    run_phase(FakeDriver(), ctx, [HardPruneCheck(plan, "topk", 1, 0.0, True), Checkpoint(every=0)])
    assert [s["epoch"] for s in ctx.scratch["saved"]] == [5]  # an early stop ends the phase for a resume too


def test_phase_timer_accumulates_across_resumes():
    ctx = make_ctx(epochs=2)
    ctx.record.timing["method_seconds"] = 100.0  # restored from a checkpoint
    run_phase(FakeDriver(), ctx, [PhaseTimer()])
    assert 100.0 < ctx.record.timing["method_seconds"] < 101.0


def test_epoch_log_one_line_per_epoch_with_the_check():
    ctx = make_ctx(epochs=2)
    plan = SparsityPlan(ratios={"weight": 0.5})
    run_phase(FakeDriver(), ctx, [HardPruneCheck(plan, "topk", 2, None, True), EpochLog("acc")])
    lines = [c for c in ctx.scratch["calls"] if "epoch" in c and "check" not in c]
    assert lines == ["method epoch 1/2: loss 1.0000 (0.0 s)", "method epoch 2/2: loss 0.5000, hard-pruned acc "
                     "16.00 (0.0 s)"]


def test_record_validates_against_the_schema(tmp_path):
    rec = RunRecord.start(RunConfig(method="slr", rate=4.0), tmp_path, {"git": {}, "packages": {}, "python": "3",
                          "host": "h", "device": {}, "seed": 0, "started": "now"})
    rec.write(tmp_path / "record.json")
    rec.curves = {"train": "not a list"}  # type: ignore[assignment]
    with pytest.raises(ValueError, match="violates the schema"):
        rec.write(tmp_path / "record.json")


def test_completed_record_is_never_downgraded(tmp_path):
    from harness.errors import UserError

    prov = {"git": {}, "packages": {}, "python": "3", "host": "h", "device": {}, "seed": 0, "started": "now"}
    rec = RunRecord.start(RunConfig(method="slr", rate=4.0), tmp_path, prov)
    rec.status = "completed"
    rec.write(tmp_path / "record.json")
    rec.status = "interrupted"
    with pytest.raises(UserError, match="already holds a completed record"):
        rec.write(tmp_path / "record.json")
