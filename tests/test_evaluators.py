"""The evaluators of harness/evaluators: one protocol, one unit (percent), file scoring through the task, and the
input bounds and rejections that keep hostile or broken files to a one-line error."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters.detection.task import CocoTask
from adapters.lanes.task import TuSimpleTask
from harness.errors import DataError, UserError
from harness.evaluation import Evaluator
from harness.evaluators.coco import BACKENDS, CocoEvaluator, eval_files, evaluate_detections
from harness.evaluators.topk import TopKAccuracy
from harness.evaluators.tusimple import TuSimpleEvaluator, evaluate_predictions, reading
from harness.evaluators.tusimple import eval_files as tusimple_eval_files
from harness.regress import read_table

ROOT = Path(__file__).resolve().parent.parent
H56 = list(range(160, 720, 10))


def _one_line(exc_info: pytest.ExceptionInfo) -> str:
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, UserError) and "\n" not in msg and len(msg) < 600, msg
    return msg


def _lane(x: int) -> list[int]:
    return [x] * len(H56)


def _gt(name: str, xs: list[int]) -> dict:
    return {"raw_file": name, "lanes": [_lane(x) for x in xs], "h_samples": H56}


def _pred(name: str, xs: list[int]) -> dict:
    return {"raw_file": name, "lanes": [_lane(x) for x in xs], "h_samples": H56, "run_time": 10}


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def coco_gt() -> dict:
    return {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 30], "area": 600, "iscrowd": 0},
                {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 40, 40], "area": 1600, "iscrowd": 0}]}


COCO_DETS = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
             {"image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 30], "score": 0.8},
             {"image_id": 2, "category_id": 1, "bbox": [30, 30, 40, 40], "score": 0.7}]


# ----------------------------------------------------------------------------------------------------------------------
# one protocol, named and versioned


def test_every_evaluator_follows_the_protocol_and_is_named():
    for ev in (TopKAccuracy(), TuSimpleEvaluator([_gt("a.jpg", [300])]), CocoEvaluator(coco_gt())):
        assert isinstance(ev, Evaluator)
        assert isinstance(ev.name, str) and ev.name and isinstance(ev.version, str) and ev.version


def test_topk_accuracy_in_percent():
    ev = TopKAccuracy()
    ev.process((None, torch.tensor([0, 1, 2, 3])), torch.eye(6)[[0, 1, 3, 4]])  # 2 of 4 right at top-1
    assert ev.evaluate() == {"top1": 50.0, "top5": 100.0}
    ev.reset()
    assert all(np.isnan(v) for v in ev.evaluate().values())


def test_tusimple_evaluator_accumulates_records_and_reports_percent():
    gts = [_gt("a.jpg", [300, 700]), _gt("b.jpg", [400])]
    ev = TuSimpleEvaluator(gts)
    ev.reset()
    ev.process(None, [_pred("a.jpg", [300, 700, 1000])])
    ev.process(None, [_pred("b.jpg", [900])])
    fractions = evaluate_predictions(ev.records, gts)
    assert ev.evaluate() == {k: 100 * v for k, v in fractions.items()}
    assert ev.evaluate() == pytest.approx({"Accuracy": 50.0, "FP": 100 * (1 / 3 + 1) / 2, "FN": 50.0})
    assert [r["raw_file"] for r in ev.records] == ["a.jpg", "b.jpg"]  # kept for the prediction file
    ev.reset()
    assert ev.records == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_coco_evaluator_matches_the_function_in_percent(backend):
    ev = CocoEvaluator(coco_gt(), backend)
    ev.reset()
    for det in COCO_DETS:  # one detection per batch: accumulation must not change the result
        ev.process(None, [det])
    got = ev.evaluate()
    ref = evaluate_detections(COCO_DETS, coco_gt(), backend=backend)
    assert got["AP50"] == 100 * ref["AP50"] and got["AP"] == 100 * ref["stats"][0]
    assert got["n_images"] == 2.0 and got["n_detections"] == 3.0 and len(got) == 14
    assert backend in ev.version


def test_score_files_through_the_tasks_in_percent(tmp_path):
    gt = _jsonl(tmp_path / "gt.json", [_gt("a.jpg", [300, 700]), _gt("b.jpg", [400])])
    pred = _jsonl(tmp_path / "pred.json", [_pred("a.jpg", [300, 700]), _pred("b.jpg", [900])])
    fractions = tusimple_eval_files(pred, gt)  # the official tool's unit
    assert fractions["Accuracy"] == 0.5
    assert TuSimpleTask.score_files(pred, gt, {}) == {"Accuracy": 50.0, "FP": 50.0, "FN": 50.0}
    with pytest.raises(UserError) as info:
        TuSimpleTask.score_files(pred, gt, {"backend": "x"})
    _one_line(info)

    coco_gt_path = tmp_path / "coco_gt.json"
    coco_gt_path.write_text(json.dumps(coco_gt()))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(COCO_DETS))
    for backend in BACKENDS:
        got = CocoTask.score_files(dets, coco_gt_path, {"backend": backend})
        assert got["AP50"] == 100 * eval_files(dets, coco_gt_path, backend=backend)["AP50"]
    assert CocoTask.score_files(dets, coco_gt_path, {}) == CocoTask.score_files(dets, coco_gt_path,
                                                                              {"backend": BACKENDS[0]})
    for options in ({"imgsz": 3}, {"backend": "detectron"}):
        with pytest.raises(UserError) as info:
            CocoTask.score_files(dets, coco_gt_path, options)
        _one_line(info)


def test_reported_tables_are_in_the_harness_unit():
    """Every table compares the harness's percent directly: no scale factor is left (TuSimple was 100)."""
    tables = sorted((ROOT / "benchmarks" / "tables").glob("*.csv"))
    assert tables
    for table in tables:
        assert {ref.measured_scale for ref in read_table(table)} == {1.0}, table.name


# ----------------------------------------------------------------------------------------------------------------------
# TuSimple resource bounds


def test_tusimple_gt_with_too_many_lanes_is_rejected(tmp_path):
    gts = [_gt("a.jpg", [300]), _gt("b.jpg", list(range(0, 10 * (reading.MAX_GT_LANES + 1), 10)))]
    preds = [_pred("a.jpg", [300]), _pred("b.jpg", [300])]
    with pytest.raises(DataError, match=r"line 2: field 'lanes' has 17 lanes, more than the 16") as info:
        tusimple_eval_files(_jsonl(tmp_path / "p.json", preds), _jsonl(tmp_path / "g.json", gts))
    _one_line(info)
    with pytest.raises(DataError, match=r"ground-truth record 1 \(raw_file 'b.jpg'\): field 'lanes' has 17"):
        evaluate_predictions(preds, gts)
    # The bound itself is accepted.
    gts[1] = _gt("b.jpg", list(range(0, 10 * reading.MAX_GT_LANES, 10)))
    assert evaluate_predictions(preds, gts)["Accuracy"] > 0


def test_tusimple_extra_predicted_lanes_zero_the_image_without_pair_memory():
    """Official rule: more than len(gt) + 2 predicted lanes score the image 0 before any lane pair is formed."""
    gts = [_gt("a.jpg", [300, 700])]
    preds = [_pred("a.jpg", list(range(0, 5000)))]
    tracemalloc.start()
    start = time.perf_counter()
    out = evaluate_predictions(preds, gts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out == {"Accuracy": 0.0, "FP": 0.0, "FN": 1.0}
    # 5000 lanes x 56 rows as float64 is 2.2 MB; 5000 x 2 pairs x 56 rows of temporaries would be several times that.
    assert peak < 40 * 2**20 and time.perf_counter() - start < 5


def test_tusimple_file_size_and_record_bounds(tmp_path, monkeypatch):
    gt = _jsonl(tmp_path / "gt.json", [_gt(f"{i}.jpg", [300]) for i in range(5)])
    pred = _jsonl(tmp_path / "pred.json", [_pred(f"{i}.jpg", [300]) for i in range(5)])
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", gt.stat().st_size - 1)
    with pytest.raises(DataError, match=r"gt\.json has [\d,]+ bytes, more than the") as info:
        tusimple_eval_files(pred, gt)
    _one_line(info)
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 2**30)
    monkeypatch.setattr(reading, "MAX_RECORDS", 4)
    with pytest.raises(DataError, match=r"gt\.json, line 5: more than 4 records") as info:
        tusimple_eval_files(pred, gt)
    _one_line(info)


def test_tusimple_directory_given_as_a_file(tmp_path):
    gt = _jsonl(tmp_path / "gt.json", [_gt("a.jpg", [300])])
    with pytest.raises(DataError, match="is not a file"):
        tusimple_eval_files(tmp_path, gt)


# ----------------------------------------------------------------------------------------------------------------------
# COCO ground truth the backends would disagree on (or crash on) is rejected with file, record and field


def _ann(field: str, value):
    def mutate(gt: dict) -> None:
        gt["annotations"][0][field] = value
    return mutate


def _image_id(value):
    def mutate(gt: dict) -> None:
        gt["images"][0]["id"] = value
        for a in gt["annotations"]:
            if a["image_id"] == 1:
                a["image_id"] = value
    return mutate


@pytest.mark.parametrize(("mutate", "expected"), [
    (_ann("id", -1), r"annotations\[0\] field 'id' is -1; it must lie in 1\.\.2\*\*63-1"),
    (_ann("id", 0), r"annotations\[0\] field 'id' is 0"),
    (_ann("id", 2**63), r"annotations\[0\] field 'id' is 9223372036854775808"),
    (_image_id(-5), r"images\[0\] field 'id' is -5; it must lie in 0\.\.2\*\*63-1"),
    (_image_id(2**64), r"images\[0\] field 'id' is 18446744073709551616"),
    (_ann("bbox", [10, 10, float("nan"), 20]), r"annotations\[0\] \(id 1\) field 'bbox' is \[10, 10, nan, 20\]"),
    (_ann("bbox", [10, float("inf"), 20, 20]), r"annotations\[0\] \(id 1\) field 'bbox'.*4 finite numbers"),
    (_ann("bbox", [10, 10, -20, 20]), r"annotations\[0\] \(id 1\) field 'bbox'.*must not be negative"),
    (_ann("bbox", [10, 10, 10**400, 20]), r"annotations\[0\] \(id 1\) field 'bbox'"),
    (_ann("area", float("nan")), r"annotations\[0\] \(id 1\) field 'area' is nan"),
    (_ann("area", -1), r"annotations\[0\] \(id 1\) field 'area' is -1"),
    (_ann("iscrowd", "yes"), r"annotations\[0\] \(id 1\) field 'iscrowd' is 'yes'; it must be 0 or 1"),
    (_ann("iscrowd", 2), r"annotations\[0\] \(id 1\) field 'iscrowd' is 2"),
    (_ann("iscrowd", True), r"annotations\[0\] \(id 1\) field 'iscrowd' is True"),
    (_ann("image_id", [1]), r"annotations\[0\] \(id 1\) field 'image_id' is \[1\]"),
])
def test_coco_gt_backends_disagree_on_is_rejected(tmp_path, mutate, expected):
    gt = coco_gt()
    mutate(gt)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(COCO_DETS))
    for backend in BACKENDS:
        with pytest.raises(DataError, match=f"gt.json: {expected}") as info:
            eval_files(dets, path, backend=backend)
        _one_line(info)


def test_coco_gt_without_iscrowd_scores_the_same_on_both_backends():
    gt = coco_gt()
    for a in gt["annotations"]:
        del a["iscrowd"]
    got = [evaluate_detections(COCO_DETS, gt, backend=b)["stats"] for b in BACKENDS]
    assert got[0] == pytest.approx(got[1], abs=1e-12)
    assert "iscrowd" not in gt["annotations"][0]  # the caller's dict is not modified


@pytest.mark.parametrize(("text", "expected"), [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
    ('{"images": [{"id": ' + "7" * 5000 + "}]}", "Exceeds the limit"),
])
def test_coco_hostile_json_is_one_line(tmp_path, text, expected):
    path = tmp_path / "hostile.json"
    path.write_text(text)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(COCO_DETS))
    good = tmp_path / "gt.json"
    good.write_text(json.dumps(coco_gt()))
    for args in ((dets, path), (path, good)):
        with pytest.raises(DataError, match=expected) as info:
            eval_files(*args)
        assert "hostile.json" in _one_line(info)


@pytest.mark.parametrize(("bbox", "expected"), [
    ([10, 10, 10**400, 20], "non-finite bbox"),
    ([10, 10, [0], 2**62], r"needs 'bbox' = \[x, y, w, h\]"),  # must not become the list [0] * 2**62
])
def test_coco_hostile_detection_values(bbox, expected):
    dets = [dict(COCO_DETS[0], bbox=bbox)]
    for backend in BACKENDS:
        with pytest.raises(DataError, match=expected) as info:
            evaluate_detections(dets, coco_gt(), backend=backend)
        _one_line(info)


def test_error_messages_stay_short_on_huge_values():
    dets = [dict(COCO_DETS[0], bbox=list(range(100_000)))]
    with pytest.raises(DataError) as info:
        evaluate_detections(dets, coco_gt())
    assert len(_one_line(info)) < 300
