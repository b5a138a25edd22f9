"""Property tests of the evaluators' file readers: whatever JSON a file holds, scoring it ends in a result or in one
`UserError` line (DataError included), never another exception, and stays within a small time and memory budget.

The generated documents are mostly well formed with some fields replaced by arbitrary JSON (nested lists and objects,
huge integers, NaN/Infinity as Python's json writes them, strings, booleans, null), so the checks deep inside the
readers are reached, not only the first "is this a list" test.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import UserError
from harness.evaluators.coco import BACKENDS
from harness.evaluators.coco import eval_files as coco_eval_files
from harness.evaluators.tusimple import eval_files as tusimple_eval_files

# derandomize: the same examples on every run, so the suite cannot flake; each test takes a few seconds on one core.
SETTINGS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_SECONDS = 5.0
MAX_PEAK_BYTES = 64 * 2**20

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
any_json = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                        max_leaves=12)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) position inside `doc`, the root's children included."""
    out: list[tuple[Any, Any]] = []
    todo = [doc]
    while todo:
        node = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            out.append((node, key))
            todo.append(child)
    return out


# Values that broke readers before: wrong types that look right, ids at the int64 edges, huge and non-finite numbers.
nasty = st.one_of(
    st.sampled_from(["yes", "", "1", True, False, None, 0, -1, 2**63, -(2**63) - 1, 10**30, float("nan"),
                     float("inf"), -1e308, [], {}, [1, 2, 3, 4]]),
    st.integers(-(2**70), 2**70),
)


@st.composite
def corrupted(draw: st.DrawFn, valid: st.SearchStrategy) -> Any:
    """A valid document with up to three positions replaced (by a nasty value or any JSON) or removed."""
    doc = copy.deepcopy(draw(valid))  # a copy: `st.just` values are shared between examples
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        if not slots:
            break
        fields = [slot for slot in slots if isinstance(slot[0], dict)]
        # Mostly a named field (an id, a bbox, iscrowd, lanes, ...): where the semantic checks live.
        node, key = draw(st.sampled_from(fields if fields and draw(st.integers(0, 3)) else slots))
        action = draw(st.sampled_from(["nasty", "nasty", "json", "delete"]))
        if action == "delete" and isinstance(node, dict):
            del node[key]
        else:
            node[key] = draw(nasty if action == "nasty" else any_json)
    return doc


def mostly_corrupted(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Three times in four a corrupted valid document, else any JSON at all."""
    return st.one_of(corrupted(valid), corrupted(valid), corrupted(valid), any_json)


def ends_cleanly(score: Callable[[], Any]) -> None:
    """`score()` returns, or raises a one-line UserError, within the time and memory budget."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        score()
    except UserError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000, str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < MAX_SECONDS
    assert peak < MAX_PEAK_BYTES


def scores_cleanly(score: Callable[[Path, Path], Any], pred_text: str, gt_text: str) -> None:
    """Write the two files into a fresh folder and check `score(pred_path, gt_path)` with `ends_cleanly`."""
    with tempfile.TemporaryDirectory() as tmp:
        pred, gt = Path(tmp) / "pred.json", Path(tmp) / "gt.json"
        pred.write_text(pred_text)
        gt.write_text(gt_text)
        ends_cleanly(lambda: score(pred, gt))


# ----------------------------------------------------------------------------------------------------------------------
# COCO

box = st.lists(st.floats(0, 100), min_size=4, max_size=4)


@st.composite
def valid_coco_gt(draw: st.DrawFn) -> dict:
    n_img = draw(st.integers(1, 3))
    anns = [{"id": k + 1, "image_id": draw(st.integers(0, n_img - 1)), "category_id": draw(st.sampled_from([1, 2])),
             "bbox": draw(box), "area": draw(st.floats(0, 1e4)), "iscrowd": draw(st.sampled_from([0, 0, 1]))}
            for k in range(draw(st.integers(1, 5)))]
    return {"images": [{"id": i} for i in range(n_img)], "annotations": anns,
            "categories": [{"id": 1}, {"id": 2}]}


coco_gt = mostly_corrupted(valid_coco_gt())
coco_detections = mostly_corrupted(st.lists(st.fixed_dictionaries({
    "image_id": st.integers(0, 1), "category_id": st.integers(0, 1), "bbox": box, "score": st.floats(0, 1)}),
    max_size=8))
VALID_GT = {"images": [{"id": 0}, {"id": 1}], "categories": [{"id": 0}, {"id": 1}],
            "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 2, 30, 40], "area": 1200,
                             "iscrowd": 0}]}
VALID_DETS = [{"image_id": 0, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.5}]


@SETTINGS
@given(gt=coco_gt, backend=st.sampled_from(BACKENDS))
def test_coco_ground_truth_reader(gt, backend):
    scores_cleanly(partial(coco_eval_files, backend=backend), json.dumps(VALID_DETS), json.dumps(gt))


@SETTINGS
@given(dets=coco_detections, backend=st.sampled_from(BACKENDS))
def test_coco_detection_reader(dets, backend):
    scores_cleanly(partial(coco_eval_files, backend=backend), json.dumps(dets), json.dumps(VALID_GT))


# ----------------------------------------------------------------------------------------------------------------------
# TuSimple

ROWS = [160, 170, 180, 190]
NAMES = ("a.jpg", "b.jpg")
lane = st.lists(st.integers(-2, 1280), min_size=len(ROWS), max_size=len(ROWS))
tusimple_gt = mostly_corrupted(st.tuples(*[
    st.fixed_dictionaries({"raw_file": st.just(n), "lanes": st.lists(lane, max_size=5), "h_samples": st.just(ROWS)})
    for n in NAMES]).map(list))
tusimple_pred = mostly_corrupted(st.tuples(*[
    st.fixed_dictionaries({"raw_file": st.just(n), "lanes": st.lists(lane, max_size=7),
                           "run_time": st.integers(0, 300)}, optional={"h_samples": st.just(ROWS)})
    for n in NAMES]).map(list))
VALID_GT_LINES = [{"raw_file": n, "lanes": [[300] * len(ROWS)], "h_samples": ROWS} for n in ("a.jpg", "b.jpg")]
VALID_PRED_LINES = [{"raw_file": n, "lanes": [[305] * len(ROWS)], "run_time": 10} for n in ("a.jpg", "b.jpg")]


def json_lines(records: Any) -> str:
    """One JSON value per line (a corrupted file may hold non-objects, or a single value instead of a list)."""
    return "".join(json.dumps(r) + "\n" for r in records) if isinstance(records, list) else json.dumps(records)


@SETTINGS
@given(gt=tusimple_gt)
def test_tusimple_ground_truth_reader(gt):
    scores_cleanly(tusimple_eval_files, json_lines(VALID_PRED_LINES), json_lines(gt))


@SETTINGS
@given(pred=tusimple_pred, raw=st.lists(st.text(max_size=20), max_size=2))
def test_tusimple_prediction_reader(pred, raw):
    """Also with a few raw text lines appended: broken JSON must be a one-line error too."""
    scores_cleanly(tusimple_eval_files, json_lines(pred) + "".join(line + "\n" for line in raw),
                   json_lines(VALID_GT_LINES))
