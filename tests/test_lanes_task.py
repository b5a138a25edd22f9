"""TuSimpleTask end to end on a tiny synthetic set (small input, CPU): training lowers the loss, decoding reproduces
the GT from perfect logits, the evaluator and the prediction file work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters.lanes import TuSimpleTask
from adapters.lanes.constants import H_SAMPLES
from adapters.lanes.convert import rasterise
from adapters.lanes.decode import decode_batch, decode_lanes
from adapters.lanes.loss import shape_loss, similarity_loss, softmax_focal_loss, ufld_loss
from adapters.lanes.targets import classification_target
from harness.errors import UserError
from harness.tasks import TaskConfig, build_task


pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"input_size": [64, 160], "griding": 100}


@pytest.fixture(scope="module")
def root(tusimple_root) -> Path:
    return tusimple_root


def make_task(root: Path, **options) -> TuSimpleTask:
    return build_task("tusimple", TaskConfig(model="ufld_resnet18", data=root, batch_size=3, seed=0,
                                             options={**SMALL, **options}))


def test_task_contract(root):
    task = make_task(root)
    assert task.primary_metric == "Accuracy" and task.higher_is_better
    r = task.recipe(task.cfg.model)
    assert (r.optimizer, r.lr, r.weight_decay, r.epochs, r.retrain_epochs) == ("adam", 4e-4, 1e-4, 40, 5)
    assert (r.scheduler, r.warmup_iters) == ("cosine-iter", 100)  # UFLD's per-iteration warm-up + cosine (UFLD config)
    model = task.build_model()
    names = task.default_prune_set(model)
    assert len(names) == 23 and names[0] == "model.conv1.weight" and names[-1] == "pool.weight"
    assert "cls.2.weight" in names and not any("bn" in n or "bias" in n for n in names)
    aux_model = make_task(root, aux=True).build_model()
    assert task.default_prune_set(aux_model) == names  # the aux head is never in the default set
    with pytest.raises(UserError, match="unknown key 'imgsz'"):
        make_task(root, imgsz=320)
    with pytest.raises(UserError, match="multiples of 32"):
        make_task(root, input_size="100x160").build_model()


def test_training_steps_lower_the_loss(root):
    torch.manual_seed(0)
    # griding 10 keeps the head (and Adam's state) small on CPU; the loss code is the same for any griding
    task = make_task(root, aux=True, augment=False, griding=10)
    model = task.build_model()
    batch = next(iter(task.train_loader(0)))
    assert len(batch) == 3  # image, row-anchor target, aux segmentation target
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


def test_loss_terms():
    logits = torch.randn(2, 11, 56, 4)
    target = torch.randint(0, 11, (2, 56, 4))
    # focal with gamma 0 is plain cross-entropy; gamma 2 down-weights it
    assert torch.allclose(softmax_focal_loss(logits, target, gamma=0.0),
                          torch.nn.functional.cross_entropy(logits, target))
    assert softmax_focal_loss(logits, target) < softmax_focal_loss(logits, target, gamma=0.0)
    const_rows = logits[:, :, :1].expand(-1, -1, 56, -1)
    assert float(similarity_loss(const_rows)) == 0.0 and float(shape_loss(const_rows)) == 0.0
    total, terms = ufld_loss(logits, target)
    assert set(terms) == {"cls", "sim"}  # shape weight is 0 for TuSimple
    assert torch.allclose(total, terms["cls"] + terms["sim"])


def _reference_decode(logits: np.ndarray) -> list[list[int]]:
    """UFLD's `eval_wrapper.py` decoding restated with loops, to check the vectorised decoder."""
    c, rows, lanes = logits.shape
    out = []
    for i in range(lanes):
        lane = []
        for j in range(rows):
            col = logits[:, j, i].astype(np.float64)
            if int(np.argmax(col)) == c - 1:
                lane.append(-2)
                continue
            e = np.exp(col[:-1] - col[:-1].max())
            loc = float(np.sum(e / e.sum() * np.arange(c - 1)))
            lane.append(int(round((loc + 0.5) * 1280 / (c - 2))))
        out.append(lane)
    return out


def test_decode_matches_reference_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (101, 56, 4)).astype(np.float32)
    logits[100, :10, 1] = 50  # some absent rows
    got = decode_lanes(logits)
    assert len(got) == 4 and all(len(lane) == 56 for lane in got)
    assert got == _reference_decode(logits)
    assert got[1][:10] == [-2] * 10


def _one_hot(target: torch.Tensor, griding: int = 100) -> torch.Tensor:
    return torch.nn.functional.one_hot(target, griding + 1).permute(2, 0, 1).float() * 30.0


def test_perfect_logits_reproduce_the_gt_lanes():
    from harness.evaluators.tusimple import evaluate_predictions

    def lane(x0, x1):  # straight lane from (x0, 300) to (x1, 710)
        return [int(round(x0 + (x1 - x0) * (y - 300) / 410)) if y >= 300 else -2 for y in H_SAMPLES]

    gt = {"lanes": [lane(560, 20), lane(600, 300), lane(660, 900), lane(700, 1250)],
          "h_samples": list(H_SAMPLES), "raw_file": "clips/0530/1/20.jpg"}
    target = classification_target(rasterise(gt).label)
    decoded = decode_lanes(_one_hot(target))
    # a one-hot at cell k decodes to (k + 0.5) * 1280/99: within one grid cell (+ the 1-px scale mismatch) of GT
    for slot, gt_lane in zip((0, 1, 2, 3), gt["lanes"]):
        pred = np.asarray(decoded[slot])
        ref = np.asarray(gt_lane)
        both = (pred >= 0) & (ref >= 0)
        assert both.sum() >= 40 and np.all(np.abs(pred[both] - ref[both]) <= 1280 / 99 + 1)
        assert np.all(pred[ref < 0] == -2)
    scores = evaluate_predictions(decode_batch(_one_hot(target)[None], [gt["raw_file"]]), [gt])
    assert scores["Accuracy"] == 1.0 and scores["FN"] == 0.0 and scores["FP"] == 0.0


def test_evaluator_and_prediction_file(root, tmp_path):
    from harness.evaluators.tusimple import eval_files

    task = make_task(root)
    model = task.build_model()
    metrics = task.evaluate(model)
    assert set(metrics) == {"Accuracy", "FP", "FN"} and 0.0 <= metrics["Accuracy"] <= 100.0
    path, again = task.write_predictions(model, tmp_path / "pred.json")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["raw_file"] for r in lines] == (root / "test.txt").read_text().split()
    for rec in lines:
        assert list(rec) == ["lanes", "h_samples", "raw_file", "run_time"] and rec["run_time"] == 10
        assert len(rec["lanes"]) == 4 and all(len(lane) == 56 for lane in rec["lanes"])
    fractions = eval_files(path, root / "test_label.json")
    assert {k: 100 * v for k, v in fractions.items()} == pytest.approx(again)  # the run reports percent
    assert TuSimpleTask.score_files(path, root / "test_label.json", {}) == again
    assert again == pytest.approx(metrics)
    info = task.describe()
    assert info["test_images"] == 2 and info["aux"] is False


def test_benchmark_run_pipeline_writes_predictions(root, tmp_path, monkeypatch):
    """`benchmark run --task tusimple` end to end: method epochs with hard-prune checks, hard prune, masked retrain,
    a record, and a TuSimple prediction file that scores like the record's final metric."""
    from harness.runner import RunConfig, run

    monkeypatch.chdir(tmp_path)
    # pretrain_epochs 1: the dense phase still runs (no weights), but not the recipe's 100 epochs, which took ~80 % of
    # this test's time and none of its checks depend on (they are about the method, prune, retrain and files).
    rec = run(RunConfig(task="tusimple", model="ufld_resnet18", method="slr", rate=4.21, data=str(root), epochs=2,
                        retrain_epochs=1, check_every=1, batch_size=3, pretrain_epochs=1,
                        options={**SMALL, "griding": 9}),
              log=lambda s: None)  # griding 9: a 4.6M-weight head instead of 46M keeps checkpoints small
    assert rec["status"] == "completed", rec["error"]
    assert [c["epoch"] for c in rec["curves"]["hardprune_checks"]] == [1, 2]
    assert rec["config"]["schedule"]["kind"] == "cosine-iter" and rec["config"]["schedule"]["warmup_iters"] == 100
    assert rec["compression"]["achieved"]["paper"] == pytest.approx(4.21, rel=1e-3)
    pred = Path(rec["artifacts"]["predictions"])
    scores = TuSimpleTask.score_files(pred, root / "test_label.json", {})
    assert scores["Accuracy"] == rec["metrics"]["retrained"]
