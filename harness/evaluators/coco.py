"""COCO bbox evaluation (AP@[.5:.95], AP50, ...) with the COCO API's exact semantics.

What is computed
----------------
The 12 standard `COCOeval.stats` of `iouType="bbox"` with the default parameters (IoU 0.50:0.05:0.95, 101 recall
thresholds, maxDets 1/10/100, areas all/small/medium/large), exactly as `pycocotools` computes them. `AP50` is
`stats[1]`, the number SLR paper Table 3 reports (mAP@0.5).

Which images are evaluated (`params.imgIds`)
--------------------------------------------
* `img_ids=None` (default): **every image of the ground-truth file**, which is what `COCOeval(gt, dt)` does when you
  don't touch `params.imgIds`. Use it when the GT file *is* the evaluated set (val2017, a synthetic val split).
* `img_ids=[...]`: exactly those images, e.g. the 5,000 ids of the Darknet `5k.txt` minival, which is a subset of
  `instances_val2014.json` (40,504 images). This is the old ultralytics/yolov3 `test.py` recipe
  (`imgIds = ids of all images in the val list`): without it, the ~35k val2014 images that were
  never run count as misses. The converter in `adapters/detection/coco_data.py` writes this list into the data YAML
  (`coco_val_image_ids`).
* We deliberately offer **no** "only images that have detections" switch. It is not what pycocotools does and it
  inflates AP: an evaluated image on which the model found nothing must still count its objects as missed. Pass
  such a list explicitly via `img_ids` if you really want it.

Detections on images outside `img_ids` are ignored (as in pycocotools); `n_detections` counts only the detections
on the evaluated images.

Backends
--------
* `faster-coco-eval` (default): C++ matching/accumulation, same numbers (tested to 1e-6 against pycocotools on
  random inputs with crowds, ties, >100 dets per image, empty images). We build its result object directly instead
  of calling `loadRes`, which for bbox results only adds a 4-point polygon per detection that bbox evaluation never
  reads (2.0 s of about 10 s under cProfile on 500k detections).
* `pycocotools`: the reference implementation, used the standard way (`COCO` + `loadRes` + `COCOeval`).

Input checks (`coco_reading.py`) are stricter than pycocotools (which asserts on unknown image ids and silently
ignores unknown category ids): any detection naming an image id or category id that the GT file does not contain
raises `DataError`, because in practice that is a class-index/id-mapping bug (e.g. Ultralytics' class+1 ids or
string COCO-2014 image ids; see `normalize_ultralytics_predictions`). GT that the two backends would score
differently (ids outside int64, negative annotation ids, non-finite or negative boxes, `iscrowd` not 0/1) is
rejected too.

Units: `evaluate_detections` / `eval_files` return COCOeval's fractions (`stats`, `AP50`); `CocoEvaluator` and
`score_files` return the stats by name in percent, the unit of every prunebench record and table.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from harness.errors import DataError
from harness.evaluators.coco_reading import clean_detections, is_int, load_gt, read_json, show
from harness.evaluators.records import RecordEvaluator
from harness.evaluators.text import describe

BACKENDS: tuple[str, ...] = ("faster-coco-eval", "pycocotools")

# The 10 ids in 1..90 that COCO never used (their categories were dropped before release).
COCO_UNUSED_IDS: tuple[int, ...] = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)

# Class index c (0..79, Ultralytics/Darknet "coco80" order) -> COCO category id: the (c+1)-th smallest used id.
# Written out (not generated) so it can be read next to a COCO json; tests check it against the rule above and
# against ultralytics.data.converter.coco80_to_coco91_class().
COCO80_TO_COCO91: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,                          # person .. fire hydrant
    13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,         # stop sign .. giraffe
    27, 28,                                                     # backpack, umbrella
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,     # handbag .. bottle
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,  # wine glass .. bed
    67,                                                         # dining table
    70,                                                         # toilet
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82,                 # tv .. refrigerator
    84, 85, 86, 87, 88, 89, 90,                                 # book .. toothbrush
)  # fmt: skip
COCO91_TO_COCO80: dict[int, int] = {cid: c for c, cid in enumerate(COCO80_TO_COCO91)}

# Labels of the 12 stats, in COCOeval.summarize() order.
STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
)  # fmt: skip

@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Swallow the COCO API's progress/summary prints (pure Python `print`s; neither backend's C code writes to
    stdout, checked with `nm` on both extension modules), so callers get only our own output."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def normalize_ultralytics_predictions(
    preds: list[dict],
    category_ids: Literal["class+1", "coco91"] = "class+1",
) -> list[dict]:
    """Turn Ultralytics `predictions.json` entries into COCO-API detections (int image id, COCO-91 category id).

    * `image_id`: Ultralytics writes `int(stem)` for numeric stems (COCO 2017 names) and the stem string otherwise,
      e.g. `COCO_val2014_000000000042` -> 42 (the digits after the last `_`: the image's id in the COCO 2014
      annotation files).
    * `category_id`: `"class+1"` (what 8.x writes unless the val list ends in `val2017.txt`: ultralytics 8.4
      `models/yolo/detect/val.py`): 1..80 are mapped through `COCO80_TO_COCO91`. `"coco91"`: already COCO ids (8.x
      COCO-2017 mode); kept as they are.
    * Only `image_id`, `category_id`, `bbox`, `score` are kept (`file_name` is dropped).
    """
    if category_ids not in ("class+1", "coco91"):
        raise DataError(f"category_ids must be 'class+1' or 'coco91', got {category_ids!r}")
    if not isinstance(preds, list):
        raise DataError(f"Ultralytics predictions must be a list of objects, got a {type(preds).__name__}")
    out: list[dict] = []
    for i, p in enumerate(preds):
        if not isinstance(p, dict) or "image_id" not in p or "category_id" not in p:
            raise DataError(f"Ultralytics prediction [{i}] lacks 'image_id' or 'category_id': {describe(p)}")
        img = p["image_id"]
        if isinstance(img, str):
            tail = img.rsplit("_", 1)[-1]
            if not (tail.isascii() and tail.isdigit() and len(tail) <= 18):  # 18 digits: always within int64
                raise DataError(f"Ultralytics prediction [{i}]: image_id {describe(img)} does not end in digits "
                                "(expected a COCO file stem such as COCO_val2014_000000000042)")
            img = int(tail)
        elif not is_int(img):
            raise DataError(f"Ultralytics prediction [{i}]: image_id must be a file stem or an integer, got "
                            f"{describe(img)}")
        cat = p["category_id"]
        if not is_int(cat):
            raise DataError(f"Ultralytics prediction [{i}]: category_id must be an integer, got {describe(cat)}")
        if category_ids == "class+1":
            if not 1 <= cat <= 80:
                raise DataError(f"Ultralytics prediction [{i}]: category_id {cat} is not a coco80 class+1 index "
                                "(1..80); is this a COCO-80 model, or are the ids already COCO-91 (category_ids="
                                "'coco91')?")
            cat = COCO80_TO_COCO91[cat - 1]
        q = {"image_id": int(img), "category_id": int(cat)}
        for key in ("bbox", "score"):
            if key in p:  # missing keys are reported by the evaluator with the entry's index
                q[key] = p[key]
        out.append(q)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# evaluation


def _resolve_img_ids(img_ids: Iterable[int] | None, gt: dict) -> list[int]:
    all_ids = [im["id"] for im in gt["images"]]
    if img_ids is None:
        return sorted(set(int(i) for i in all_ids))
    ids = list(img_ids)
    bad = [v for v in ids if not is_int(v)]
    if bad:
        raise DataError(f"img_ids must be integers, got {show(bad)}")
    ids = sorted(set(int(v) for v in ids))
    if not ids:
        raise DataError("img_ids is empty: nothing to evaluate")
    unknown = set(ids) - set(all_ids)
    if unknown:
        raise DataError(f"{len(unknown)} of the {len(ids)} img_ids are not images of the ground truth: "
                        f"{show(sorted(unknown))}")
    return ids


def _run_pycocotools(gt: dict, dets: list[dict], img_ids: list[int], verbose: bool) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with _quiet(verbose):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            # loadRes indexes anns[0] and crashes on an empty list; an empty result object is what it would build.
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": [dict(c) for c in gt["categories"]],
                               "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats[:12]]


def _run_faster(gt: dict, dets: list[dict], img_ids: list[int], verbose: bool) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    say = print if verbose else (lambda *a, **k: None)
    with _quiet(verbose):
        coco_gt = COCO(gt, print_function=say)
        # Equivalent of loadRes for bbox results: `dets` already carry id/area/iscrowd (see clean_detections);
        # the polygon loadRes would add is only read by segm evaluation.
        coco_dt = COCO(print_function=say)
        coco_dt.dataset = {"images": list(gt["images"]), "categories": [dict(c) for c in gt["categories"]],
                           "annotations": dets}
        coco_dt.createIndex()
        ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=say)
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in list(ev.stats)[:12]]


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise DataError(f"unknown COCO evaluation backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _evaluate(dets: Any, gt_data: dict, det_source: str, backend: str, img_ids: Iterable[int] | None,
              verbose: bool) -> dict:
    """Shared tail of both entry points; `gt_data` is validated and owned by us (the backends write into it)."""
    known_img = {im["id"] for im in gt_data["images"]}
    known_cat = {c["id"] for c in gt_data["categories"]}
    clean = clean_detections(dets, known_img, known_cat, det_source, eval_fields=(backend == "faster-coco-eval"))
    ids = _resolve_img_ids(img_ids, gt_data)
    id_set = set(ids)
    n_gt = sum(1 for a in gt_data["annotations"] if a["image_id"] in id_set and not a.get("iscrowd", 0))
    if n_gt == 0:
        raise DataError(f"the {len(ids)} evaluated images have no (non-crowd) ground-truth boxes, so AP is undefined "
                        "(wrong annotation file or img_ids?)")
    n_det = len(clean) if len(id_set) == len(known_img) else sum(1 for d in clean if d["image_id"] in id_set)
    run = _run_faster if backend == "faster-coco-eval" else _run_pycocotools
    stats = run(gt_data, clean, ids, verbose)
    return {"AP50": stats[1], "stats": stats, "backend": backend, "n_images": len(ids), "n_detections": n_det}


def evaluate_detections(
    detections: list[dict],
    gt: dict | str | Path,
    backend: str = "faster-coco-eval",
    img_ids: list[int] | None = None,
    *,
    verbose: bool = False,
) -> dict:
    """COCO bbox evaluation of in-memory detections.

    `detections`: COCO result entries `{"image_id": int, "category_id": int (COCO-91), "bbox": [x, y, w, h] in
    original-image pixels, "score": float}`; they are not modified. `gt`: a COCO annotation dict (not modified) or
    a path to `instances_*.json`. `img_ids`: see the module docstring (None = all GT images). `verbose` lets the
    backend print its own progress and summary table.

    Returns `{"AP50": stats[1], "stats": [12 floats], "backend": str, "n_images": int, "n_detections": int}`;
    `n_detections` counts the detections on the evaluated images.
    """
    _check_backend(backend)
    return _evaluate(detections, load_gt(gt), "detections", backend, img_ids, verbose)


def eval_files(
    pred_path: str | Path,
    gt_path: str | Path,
    backend: str = "faster-coco-eval",
    img_ids: list[int] | None = None,
    *,
    verbose: bool = False,
) -> dict:
    """COCO bbox evaluation of a COCO-format results file against an annotation file (see `evaluate_detections`).

    The results file must already use integer image ids and COCO-91 category ids; run Ultralytics'
    `predictions.json` through `normalize_ultralytics_predictions` first.
    """
    _check_backend(backend)
    dets = read_json(pred_path, "detections file")
    # load_gt on a path parses a fresh object that nobody else holds, so no defensive copy is made.
    return _evaluate(dets, load_gt(Path(gt_path)), str(pred_path), backend, img_ids, verbose)


def as_percent(result: dict) -> dict[str, float]:
    """The 12 stats by name in percent (COCOeval's fractions x 100, the project's unit), plus the image and
    detection counts of an `evaluate_detections` / `eval_files` result."""
    metrics = {name: 100.0 * float(v) for name, v in zip(STAT_NAMES, result["stats"])}
    return metrics | {"n_images": float(result["n_images"]), "n_detections": float(result["n_detections"])}


def score_files(pred_path: str | Path, gt_path: str | Path, backend: str = "faster-coco-eval") -> dict[str, float]:
    """`eval_files` as `as_percent` metrics: what `benchmark eval --task coco` reports."""
    return as_percent(eval_files(pred_path, gt_path, backend=backend))


class CocoEvaluator(RecordEvaluator):
    """The harness evaluator (reset / process / evaluate) for COCO bbox detections.

    `process(batch, detections)` takes COCO result entries (`image_id`, COCO-91 `category_id`, `bbox` [x, y, w, h]
    in original-image pixels, `score`), however the caller batches them (the coco task hands over all of Ultralytics'
    validator output at once); `evaluate()` scores them against the GT on `img_ids` (None: every GT image) and
    returns `as_percent` metrics.
    """

    name = "coco-bbox"

    def __init__(self, gt: dict | str | Path, backend: str = "faster-coco-eval", img_ids: list[int] | None = None):
        _check_backend(backend)
        # A path is parsed and validated once here; evaluate_detections copies what the backends mutate.
        self.gt = load_gt(gt) if isinstance(gt, (str, Path)) else gt
        self.backend = backend
        self.img_ids = img_ids
        # The scores are the backend's: name its release so a record says which code computed them.
        self.version = f"1 ({backend} {importlib.metadata.version(backend)})"
        super().__init__()

    def score(self, records: list[dict]) -> dict[str, float]:
        return as_percent(evaluate_detections(records, self.gt, self.backend, self.img_ids))


def format_stats(result: dict) -> str:
    """The 12 stats as COCOeval.summarize() lays them out, for our own CLI output."""
    rows = [
        ("Average Precision", "0.50:0.95", "all", 100), ("Average Precision", "0.50", "all", 100),
        ("Average Precision", "0.75", "all", 100), ("Average Precision", "0.50:0.95", "small", 100),
        ("Average Precision", "0.50:0.95", "medium", 100), ("Average Precision", "0.50:0.95", "large", 100),
        ("Average Recall", "0.50:0.95", "all", 1), ("Average Recall", "0.50:0.95", "all", 10),
        ("Average Recall", "0.50:0.95", "all", 100), ("Average Recall", "0.50:0.95", "small", 100),
        ("Average Recall", "0.50:0.95", "medium", 100), ("Average Recall", "0.50:0.95", "large", 100),
    ]  # fmt: skip
    lines = [f"COCO bbox ({result['backend']}, {result['n_images']} images, {result['n_detections']} detections)"]
    for (title, iou, area, md), v in zip(rows, result["stats"]):
        kind = "(AP)" if title.startswith("Average Precision") else "(AR)"
        lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={md:>3} ] = {v:0.3f}")
    return "\n".join(lines)
