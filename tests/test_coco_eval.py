"""COCO bbox evaluator: equality with pycocotools used the standard way, a hand-computed AP50, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataError, UserError
from harness.evaluators.coco import (
    BACKENDS,
    COCO80_TO_COCO91,
    COCO_UNUSED_IDS,
    eval_files,
    evaluate_detections,
    format_stats,
    normalize_ultralytics_predictions,
)



def reference_stats(gt_path: Path, pred_path: Path, img_ids: list[int] | None = None) -> np.ndarray:
    """pycocotools exactly as its README / the old yolov3 test.py use it (paths in, stats out)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(gt_path))
    dt = gt.loadRes(str(pred_path))
    ev = COCOeval(gt, dt, "bbox")
    if img_ids is not None:
        ev.params.imgIds = img_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


def random_case(seed: int) -> tuple[dict, list[dict]]:
    """A random GT + detection set that exercises the corners of COCOeval.

    Several categories with real (non-contiguous) COCO ids, non-contiguous image ids, crowd GT boxes, images with
    no GT, images with no detections, boxes from sub-pixel to larger than the image (all three area ranges),
    jittered true positives, duplicates, wrong-class detections, >100 detections on some images, and score ties.
    """
    rng = np.random.default_rng(seed)
    cats = sorted(rng.choice([i for i in range(1, 91) if i not in COCO_UNUSED_IDS], size=rng.integers(2, 7),
                             replace=False).tolist())
    n_img = int(rng.integers(3, 25))
    img_ids = sorted(rng.choice(np.arange(1, 10_000), size=n_img, replace=False).tolist())
    images, anns, dets = [], [], []
    ann_id = 1
    tie_scores = rng.random() < 0.5  # half the cases round scores to 2 dp -> many exact ties
    for img_id in img_ids:
        W, H = int(rng.integers(200, 800)), int(rng.integers(200, 800))
        images.append({"id": img_id, "file_name": f"{img_id:012d}.jpg", "width": W, "height": H})
        kind = rng.random()
        n_gt = 0 if kind < 0.15 else int(rng.integers(1, 12))
        gts = []
        for _ in range(n_gt):
            scale = float(np.exp(rng.uniform(np.log(2), np.log(max(W, H)))))
            w, h = scale * rng.uniform(0.5, 1.5), scale * rng.uniform(0.5, 1.5)
            x = rng.uniform(-0.1 * w, max(W - 0.9 * w, 1 - 0.1 * w))  # may stick out of the image a little
            y = rng.uniform(-0.1 * h, max(H - 0.9 * h, 1 - 0.1 * h))
            c = int(rng.choice(cats))
            crowd = int(rng.random() < 0.12)
            area = float(w * h * rng.uniform(0.4, 1.0))  # like real COCO: mask area, not box area
            anns.append({"id": ann_id, "image_id": img_id, "category_id": c, "bbox": [x, y, w, h], "area": area,
                         "iscrowd": crowd, "segmentation": [[x, y, x + w, y, x + w, y + h]]})
            gts.append((x, y, w, h, c))
            ann_id += 1
        if 0.15 <= kind < 0.3:
            continue  # an image with GT (or not) and no detections at all
        n_extra = int(rng.integers(0, 150 if rng.random() < 0.3 else 15))  # sometimes > 100 per image
        for x, y, w, h, c in gts:
            for _ in range(int(rng.integers(0, 4))):
                j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                cc = c if rng.random() < 0.8 else int(rng.choice(cats))
                dets.append({"image_id": img_id, "category_id": cc,
                             "bbox": [x + j[0], y + j[1], max(0.0, w + j[2]), max(0.0, h + j[3])],
                             "score": float(rng.random())})
        for _ in range(n_extra):
            s = float(np.exp(rng.uniform(np.log(0.5), np.log(2 * max(W, H)))))
            dets.append({"image_id": img_id, "category_id": int(rng.choice(cats)),
                         "bbox": [rng.uniform(-20, W), rng.uniform(-20, H), s * rng.uniform(0.3, 2),
                                  s * rng.uniform(0.3, 2)],
                         "score": float(rng.random())})
    if tie_scores:
        for d in dets:
            d["score"] = round(d["score"], 2)
    order = rng.permutation(len(dets))
    dets = [dets[i] for i in order]
    gt = {"info": {"description": "random"}, "licenses": [], "images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}", "supercategory": "x"} for c in cats]}
    if not any(a["iscrowd"] == 0 for a in anns):  # make sure AP is defined
        anns.append({"id": ann_id, "image_id": img_ids[0], "category_id": cats[0], "bbox": [1, 1, 50, 50],
                     "area": 2500.0, "iscrowd": 0})
    return gt, dets


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize("seed", range(12))
def test_random_inputs_match_pycocotools(tmp_path: Path, seed: int) -> None:
    gt, dets = random_case(seed)
    gt_path, pred_path = write(tmp_path / "gt.json", gt), write(tmp_path / "dt.json", dets)
    # Every other seed also restricts params.imgIds to a random subset (the 5k-of-val2014 situation).
    sub = None
    if seed % 2:
        ids = [im["id"] for im in gt["images"]]
        sub = sorted(np.random.default_rng(seed).choice(ids, size=max(1, len(ids) // 2), replace=False).tolist())
        if not any(a["image_id"] in sub and not a["iscrowd"] for a in gt["annotations"]):
            sub = None
    ref = reference_stats(gt_path, pred_path, sub)
    assert (ref >= 0).any(), "degenerate case: nothing to compare"
    for backend in BACKENDS:
        for res in (eval_files(pred_path, gt_path, backend=backend, img_ids=sub),
                    evaluate_detections(json.loads(pred_path.read_text()), gt, backend=backend, img_ids=sub)):
            got = np.asarray(res["stats"])
            assert got.shape == (12,)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6, err_msg=backend)
            assert res["AP50"] == res["stats"][1]
            assert res["backend"] == backend
            assert res["n_images"] == (len(gt["images"]) if sub is None else len(sub))


def test_more_than_100_detections_and_ties_matter(tmp_path: Path) -> None:
    """A case where the maxDets=100 cut and equal scores decide the result, so a wrong cut/sort would show."""
    gt = {"images": [{"id": 7, "width": 640, "height": 480}],
          "annotations": [{"id": i + 1, "image_id": 7, "category_id": 1, "bbox": [10 * i, 5, 8, 8], "area": 64,
                           "iscrowd": 0} for i in range(30)],
          "categories": [{"id": 1, "name": "person"}]}
    # 120 detections: 90 misses at score 0.9 (ties), then the 30 hits at 0.5 of which only 10 survive maxDets=100.
    dets = [{"image_id": 7, "category_id": 1, "bbox": [600, 400, 5, 5], "score": 0.9} for _ in range(90)]
    dets += [{"image_id": 7, "category_id": 1, "bbox": [10 * i, 5, 8, 8], "score": 0.5} for i in range(30)]
    ref = reference_stats(write(tmp_path / "g.json", gt), write(tmp_path / "d.json", dets))
    for backend in BACKENDS:
        np.testing.assert_allclose(evaluate_detections(dets, gt, backend=backend)["stats"], ref, atol=1e-6)
    assert 0 < ref[8] < 0.5  # AR@100 saw only 10 of the 30 hits


def hand_gt() -> dict:
    return {"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 3, "bbox": [50, 50, 20, 20], "area": 400, "iscrowd": 0},
                {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 60, 30, 30], "area": 900, "iscrowd": 1}],
            "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}]}


HAND_DETS = [
    {"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.9},   # TP (GT 1)
    {"image_id": 1, "category_id": 3, "bbox": [80, 0, 10, 10], "score": 0.8},  # FP
    {"image_id": 1, "category_id": 3, "bbox": [5, 65, 10, 10], "score": 0.75},  # inside the crowd box: ignored
    {"image_id": 1, "category_id": 3, "bbox": [51, 51, 20, 20], "score": 0.7},  # TP at IoU 0.5 (GT 2), IoU 0.83
]
# Ranked: TP, FP, TP over 2 GT -> precision envelope 1 for recall <= 0.5 (51 of the 101 thresholds) and 2/3 above
# (50 thresholds). The crowd-matched detection counts neither way.
HAND_AP50 = (51 * 1.0 + 50 * (2 / 3)) / 101


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_case_known_ap50(backend: str) -> None:
    res = evaluate_detections(HAND_DETS, hand_gt(), backend=backend)
    assert res["AP50"] == pytest.approx(HAND_AP50, abs=1e-12)
    assert res["n_images"] == 2 and res["n_detections"] == 4
    # The crowd box really is what keeps the 3rd detection from being a FP: without the crowd GT it becomes one.
    gt = hand_gt()
    gt["annotations"] = gt["annotations"][:2]
    assert evaluate_detections(HAND_DETS, gt, backend=backend)["AP50"] == pytest.approx((51 + 50 * 0.5) / 101)


@pytest.mark.parametrize("backend", BACKENDS)
def test_img_ids_default_is_every_gt_image(backend: str) -> None:
    """Default = all GT images: objects on an image without detections count as misses (COCOeval default)."""
    gt = hand_gt()
    gt["annotations"].append({"id": 9, "image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100,
                              "iscrowd": 0})
    full = evaluate_detections(HAND_DETS, gt, backend=backend)
    only1 = evaluate_detections(HAND_DETS, gt, backend=backend, img_ids=[1])
    assert full["n_images"] == 2 and only1["n_images"] == 1
    assert only1["AP50"] == pytest.approx(HAND_AP50)
    assert full["AP50"] < only1["AP50"]  # the missed object on image 2 costs recall


def test_empty_detections_give_zero_ap() -> None:
    for backend in BACKENDS:
        res = evaluate_detections([], hand_gt(), backend=backend)
        assert res["AP50"] == 0.0 and res["n_detections"] == 0


def test_inputs_not_modified() -> None:
    gt, dets = hand_gt(), [dict(d) for d in HAND_DETS]
    gt_before, dets_before = json.dumps(gt), json.dumps(dets)
    for backend in BACKENDS:
        evaluate_detections(dets, gt, backend=backend)
    assert json.dumps(gt) == gt_before and json.dumps(dets) == dets_before


def test_numpy_values_accepted() -> None:
    dets = [{"image_id": np.int64(d["image_id"]), "category_id": np.int32(d["category_id"]),
             "bbox": np.asarray(d["bbox"], dtype=np.float32).tolist() if i % 2 else list(np.float64(d["bbox"])),
             "score": np.float32(d["score"])} for i, d in enumerate(HAND_DETS)]
    for backend in BACKENDS:
        assert evaluate_detections(dets, hand_gt(), backend=backend)["AP50"] == pytest.approx(HAND_AP50)


def test_nothing_printed_unless_verbose(capfd: pytest.CaptureFixture) -> None:
    for backend in BACKENDS:
        evaluate_detections(HAND_DETS, hand_gt(), backend=backend)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    evaluate_detections(HAND_DETS, hand_gt(), backend="pycocotools", verbose=True)
    assert "Average Precision" in capfd.readouterr().out


def test_format_stats() -> None:
    text = format_stats(evaluate_detections(HAND_DETS, hand_gt()))
    assert text.count("\n") == 12 and f"= {HAND_AP50:0.3f}" in text.splitlines()[2]


# ----------------------------------------------------------------------------------------------------------------------
# bad inputs: each raises DataError (a UserError) with a one-line message that says what is wrong


def _err(fn, *args, **kw) -> str:
    with pytest.raises(DataError) as ei:
        fn(*args, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and isinstance(ei.value, UserError)
    return msg


def test_bad_files(tmp_path: Path) -> None:
    gt_path = write(tmp_path / "gt.json", hand_gt())
    pred_path = write(tmp_path / "dt.json", HAND_DETS)
    assert "not found" in _err(eval_files, tmp_path / "nope.json", gt_path)
    assert "not found" in _err(eval_files, pred_path, tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('[{"image_id": 1,')
    assert "not valid JSON" in _err(eval_files, tmp_path / "bad.json", gt_path)
    assert "not valid JSON" in _err(eval_files, pred_path, tmp_path / "bad.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    assert "bin.json" in _err(eval_files, tmp_path / "bin.json", gt_path)
    assert "not a file" in _err(eval_files, tmp_path, gt_path)
    assert "list" in _err(eval_files, gt_path, gt_path)  # a GT file passed as predictions
    assert "'annotations'" in _err(eval_files, pred_path, write(tmp_path / "x.json", {"images": []}))
    assert "backend" in _err(eval_files, pred_path, gt_path, backend="detectron")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d[2].pop("score"), "detection [2] has no 'score'"),
        (lambda d: d[1].update(bbox=[1, 2, 3]), "detection [1] needs 'bbox'"),
        (lambda d: d[1].update(bbox=[1, 2, 3, "4"]), "detection [1] needs 'bbox'"),
        (lambda d: d[0].update(bbox=[1, 2, float("nan"), 4]), "detection [0] has a non-finite bbox"),
        (lambda d: d[3].update(bbox=[1, 2, -3, 4]), "detection [3] has a negative"),
        (lambda d: d[0].update(score="high"), "detection [0] needs a finite numeric 'score'"),
        (lambda d: d[0].update(image_id="COCO_val2014_000000000001"), "normalize_ultralytics_predictions"),
        (lambda d: d.append(5), "detection [4] is a int"),
    ],
)
def test_bad_detection_entries(mutate, expected: str) -> None:
    dets = [dict(d) for d in HAND_DETS]
    mutate(dets)
    for backend in BACKENDS:
        assert expected in _err(evaluate_detections, dets, hand_gt(), backend=backend)


def test_unknown_ids_are_named_with_counts() -> None:
    dets = [dict(d) for d in HAND_DETS] + [{"image_id": 100 + i % 7, "category_id": 3, "bbox": [0, 0, 1, 1],
                                             "score": 0.1} for i in range(20)]
    msg = _err(evaluate_detections, dets, hand_gt())
    assert "20 detections name 7 image ids" in msg and "100, 101, 102, 103, 104, … (+2 more)" in msg
    dets = [dict(d, category_id=1) for d in HAND_DETS]  # class+1 style id where GT only knows 3
    msg = _err(evaluate_detections, dets, hand_gt())
    assert "4 detections name 1 category ids" in msg and "[1]" not in msg and ": 1 (" in msg


def test_bad_ground_truth_and_img_ids() -> None:
    gt = hand_gt()
    gt["annotations"][0].pop("area")
    assert "annotations[0] lacks area" in _err(evaluate_detections, HAND_DETS, gt)
    gt = hand_gt()
    gt["annotations"][1]["id"] = 1
    assert "duplicate annotations ids 1" in _err(evaluate_detections, HAND_DETS, gt)
    gt = hand_gt()
    gt["annotations"][1]["category_id"] = 99
    assert "category ids missing" in _err(evaluate_detections, HAND_DETS, gt)
    assert "not images of the ground truth" in _err(evaluate_detections, HAND_DETS, hand_gt(), img_ids=[1, 5])
    assert "empty" in _err(evaluate_detections, HAND_DETS, hand_gt(), img_ids=[])
    assert "no (non-crowd) ground-truth" in _err(evaluate_detections, HAND_DETS, hand_gt(), img_ids=[2])
    assert "ground truth must be" in _err(evaluate_detections, HAND_DETS, [1, 2])


# ----------------------------------------------------------------------------------------------------------------------
# Ultralytics predictions.json -> COCO ids


def test_coco80_to_coco91_follows_the_rule() -> None:
    used = [i for i in range(1, 91) if i not in COCO_UNUSED_IDS]
    assert list(COCO80_TO_COCO91) == used and len(used) == 80


def test_coco80_to_coco91_matches_ultralytics(tmp_path: Path) -> None:
    """Cross-check with the package helper, in a subprocess so ultralytics' import-time side effects (network
    probe, settings file, OMP_NUM_THREADS) stay out of this test process (see `harness.offline`)."""
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(tmp_path / "yolo"),
               MPLCONFIGDIR=str(tmp_path / "mpl"), OMP_NUM_THREADS="1")
    code = "import json; from ultralytics.data.converter import coco80_to_coco91_class as f; print(json.dumps(f()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == list(COCO80_TO_COCO91)


def test_normalize_ultralytics_predictions() -> None:
    preds = [
        {"image_id": "COCO_val2014_000000000042", "file_name": "COCO_val2014_000000000042.jpg", "category_id": 1,
         "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5},
        {"image_id": "COCO_val2014_000000581929", "category_id": 80, "bbox": [0, 0, 1, 1], "score": 0.25},
        {"image_id": 139, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.1},
    ]
    out = normalize_ultralytics_predictions(preds)
    assert [(o["image_id"], o["category_id"]) for o in out] == [(42, 1), (581929, 90), (139, 13)]
    assert out[0] == {"image_id": 42, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    assert "file_name" in preds[0]  # input untouched
    keep = normalize_ultralytics_predictions([dict(preds[2], category_id=90)], category_ids="coco91")
    assert keep[0]["category_id"] == 90
    assert "1..80" in _err(normalize_ultralytics_predictions, [dict(preds[2], category_id=81)])
    assert "does not end in digits" in _err(normalize_ultralytics_predictions, [dict(preds[2], image_id="bus")])


def test_normalized_ultralytics_predictions_evaluate(tmp_path: Path) -> None:
    """End to end with 2014-style names: string ids and class+1 go in, the same AP as hand-made COCO ids comes out."""
    gt = hand_gt()  # category 3 = car = class index 2 -> Ultralytics category_id 3 (class+1); same number by luck
    gt["categories"] = [{"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]
    preds = [dict(d, image_id=f"COCO_val2014_{d['image_id']:012d}", category_id=3) for d in HAND_DETS]
    preds.append({"image_id": "COCO_val2014_000000000002", "category_id": 80, "bbox": [0, 0, 5, 5], "score": 0.3})
    res = evaluate_detections(normalize_ultralytics_predictions(preds), gt)
    assert res["AP50"] == pytest.approx(HAND_AP50) and res["n_detections"] == 5
