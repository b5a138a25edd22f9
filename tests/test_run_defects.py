"""Defects the runner redesign fixed, each pinned by a test that failed before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adapters.classification import DigitsTask
from harness.amp import AmpStepper
from harness.config import MethodSettings, RunConfig
from harness.methods import make_method
from harness.methods.admm import ADMM
from harness.methods.base import PruningMethod
from harness.runner import resolve, run, validate
from harness.tasks import TaskConfig, register_task
from harness.training import epoch_seed, train_epoch
from tests.test_runner import InterruptedDigitsTask, save_digits

SMALL = dict(task="digits", rate=4.0, epochs=4, retrain_epochs=1, check_every=2, max_steps=6)


def batch_order(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y[:4]]


def test_each_epoch_sees_a_different_order_and_a_seed_repeats_it():
    task = DigitsTask(TaskConfig(model="cnn", seed=0))
    e1, e2 = (batch_order(task.train_loader(epoch_seed(0, "method", e))) for e in (1, 2))
    assert e1 != e2
    assert batch_order(task.train_loader(epoch_seed(0, "method", 1))) == e1
    assert epoch_seed(0, "method", 1) != epoch_seed(1, "method", 1) != epoch_seed(0, "retrain", 1)


def test_seed_reaches_random_pruning(workdir):
    assert make_method("random", MethodSettings(), seed=7).seed == 7  # type: ignore[attr-defined]
    rec = run(RunConfig(task="digits", method="random", rate=4.0, epochs=1, retrain_epochs=0, max_steps=2, seed=3),
              log=lambda s: None)
    assert rec["config"]["method_config"]["seed"] == 3


def test_run_id_hashes_the_resolved_config():
    implicit = RunConfig(method="slr")
    explicit = RunConfig(method="slr", rate=4.0, epochs=15, retrain_epochs=5, lr=2e-3, batch_size=64)
    for cfg in (implicit, explicit):
        resolve(cfg, validate(cfg))
    assert implicit.run_id() == explicit.run_id() and "-4x-" in implicit.run_id()


def test_update_cadence_follows_the_authors_code():
    """update_every=T: updates at batch 0 of epochs 1+T, 1+2T, ... (T=2: 3, 5; not 2, 4)."""
    admm = ADMM(update_every=2)
    assert [e for e in range(1, 8) if admm.is_update_batch(e, 0)] == [3, 5, 7]
    assert [e for e in range(1, 5) if ADMM(update_every=1).is_update_batch(e, 0)] == [2, 3, 4]


class GradProbe(PruningMethod):
    def __init__(self) -> None:
        super().__init__()
        self.grads: list[torch.Tensor] = []

    def after_backward(self, grad_scale: float = 1.0) -> None:
        self.grads.append(self.model_param.grad.detach().clone())


def test_fp16_scaler_unscales_before_the_method_sees_gradients():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(2)]

    def loss_fn(m, b):
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    grads = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=1024.0)):
        stepper = AmpStepper(torch.device("cpu"), "fp16")
        stepper.scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
        m = torch.nn.Linear(4, 2)
        m.load_state_dict(model.state_dict())
        probe = GradProbe()
        probe.model_param = m.weight  # type: ignore[attr-defined]
        train_epoch(m, batches, loss_fn, torch.optim.SGD(m.parameters(), lr=0.0), probe, 1, torch.device("cpu"),
                    stepper=stepper)
        grads.append(probe.grads[0])
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)  # 1024x without unscale_


def test_fp16_run_keeps_masks_exact(workdir):
    rec = run(RunConfig(task="digits", method="slr", rate=4.0, epochs=1, retrain_epochs=1, max_steps=3,
                        amp="fp16", weights=str(save_digits(workdir))), log=lambda s: None)
    assert rec["status"] == "completed"
    assert rec["compression"]["achieved"]["paper"] == pytest.approx(4.0, rel=2e-3)


class KilledInEpoch3(InterruptedDigitsTask):
    name = "killed3_digits"
    interrupt_epoch = 3
    calls = 0
    armed = True


def comparable(rec: dict) -> dict:
    """What must not depend on a kill: metrics, curves and updates (timings aside)."""
    def strip(p: dict) -> dict:
        return {k: v for k, v in p.items() if k != "seconds"}

    return {"metrics": rec["metrics"], "updates": rec["updates"], "epochs": rec["epochs"],
            "curves": {k: [strip(p) for p in v] for k, v in rec["curves"].items()}}


def test_killed_and_resumed_run_gives_the_same_record(workdir):
    register_task("killed3_digits", "tests.test_run_defects:KilledInEpoch3")
    weights = str(save_digits(workdir))
    cfg = dict(SMALL, method="slr", weights=weights, max_steps=None)
    straight = run(RunConfig(**{**cfg, "task": "digits"}), log=lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(**{**cfg, "task": "killed3_digits"}), log=lambda s: None)
    interrupted = json.loads(next(Path("prunebench_runs").glob("killed3_digits-*/record.json")).read_text())
    assert interrupted["status"] == "interrupted"
    resumed = run(RunConfig(**{**cfg, "task": "killed3_digits"}), resume=True, log=lambda s: None)
    assert resumed["status"] == "completed"
    assert comparable(resumed) == comparable(straight)
    # the method phase's time counts the epochs before the kill too
    assert resumed["timing"]["method_seconds"] > interrupted["timing"]["method_seconds"] > 0
