"""Reading and validating COCO input: JSON files, ground-truth dicts and detection lists.

Everything that can go wrong with a user's file or dict ends here in one `DataError` naming the file (or "ground-truth
dict" / "detections"), the record and the field, before either backend sees it; the checks are stricter than
pycocotools where the backends would otherwise disagree or crash (see `_validate_gt`).
"""

from __future__ import annotations

import json
import math
import sys
from itertools import chain
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.errors import DataError
from harness.evaluators.text import describe

_SHOW = 5  # how many offending ids/indices an error message names


# ----------------------------------------------------------------------------------------------------------------------
# small helpers


def show(values: Iterable[Any], limit: int = _SHOW) -> str:
    vals = list(values)
    head = ", ".join(describe(v) for v in vals[:limit])
    return head + (f", … (+{len(vals) - limit} more)" if len(vals) > limit else "")


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file, turning every way it can fail into a one-line DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} is not a file" if p.exists() else f"{what} not found: {p}")
    try:
        with p.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} {p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{what} {p} is not UTF-8 JSON text: {e.reason} at byte {e.start}") from None
    except ValueError as e:  # an integer of more than 4,300 digits: Python refuses to convert it
        raise DataError(f"{what} {p} is not usable JSON: {str(e).split(':')[0]}") from None
    except RecursionError:  # arrays/objects nested deeper than the interpreter's recursion limit
        raise DataError(f"{what} {p} is not usable JSON: nested deeper than {sys.getrecursionlimit()} levels "
                        "(a COCO file nests 5)") from None
    except OSError as e:
        raise DataError(f"cannot read {what} {p}: {e.strerror or e}") from None


def is_int(v: Any) -> bool:
    # bool is an int subclass but never a valid id; numpy integers come from in-memory callers.
    return (type(v) is int) or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))


def _is_num(v: Any) -> bool:
    return (type(v) is float) or is_int(v) or isinstance(v, np.floating)


def _is_finite(v: Any) -> bool:
    """A number that converts to a finite float (an int too large for float64 does not)."""
    try:
        return _is_num(v) and math.isfinite(float(v))
    except OverflowError:
        return False


def _is_numpy_number(t: type) -> bool:
    return issubclass(t, (np.integer, np.floating)) and not issubclass(t, np.bool_)



# ----------------------------------------------------------------------------------------------------------------------
# ground truth


def load_gt(gt: dict | str | Path) -> dict:
    """Return a validated COCO ground-truth dict that the caller may mutate.

    A path is parsed (and owned by us). A dict is copied one level deep per image/annotation, because both COCO
    APIs write into the annotation dicts (`ignore`, int-coerced ids) and the caller's object must stay untouched.
    """
    if isinstance(gt, (str, Path)):
        source = str(gt)
        data = read_json(gt, "COCO annotation file")
    elif isinstance(gt, dict):
        source = "ground-truth dict"
        data = gt
    else:
        raise DataError(f"ground truth must be a COCO annotation dict or a path to one, got {type(gt).__name__}")
    if not isinstance(data, dict):
        raise DataError(f"{source}: a COCO annotation file is a JSON object, got a JSON {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: missing list '{key}' (not a COCO instances_*.json file?)")
    if data is gt:
        data = {
            **gt,
            "images": [dict(i) if isinstance(i, dict) else i for i in gt["images"]],
            "annotations": [dict(a) if isinstance(a, dict) else a for a in gt["annotations"]],
            "categories": [dict(c) if isinstance(c, dict) else c for c in gt["categories"]],
        }
    _validate_gt(data, source)
    return data


# Why GT is rejected rather than evaluated "as pycocotools would": on ids outside int64 (or negative annotation ids),
# non-finite or negative boxes and areas, and crowd flags other than 0/1, the two backends give different AP for the
# same files (faster-coco-eval holds ids and areas in C++ types, pycocotools in Python objects), pycocotools itself
# crashes on some (`iscrowd: "yes"`), and none of these occur in a real COCO file. A benchmark number that depends on
# which backend ran is worse than a clear error; so the GT must be what both compute identically on.
ID_MAX = 2**63 - 1  # the largest id both backends hold exactly (int64)
_ID_LOW = {"images": 0, "categories": 0, "annotations": 1}  # Ultralytics' in-memory GT numbers images from 0;
# annotation id 0 is COCOeval's "unmatched" marker, so its matches would count as false positives in both backends.
_REQUIRED = {"images": ("id",), "categories": ("id",), "annotations": ("id", "image_id", "category_id", "bbox", "area")}


def _validate_gt(data: dict, source: str) -> None:
    """Check the fields the bbox evaluation reads, so a broken file fails here and not deep inside a backend.

    Each failure is one `DataError` naming the file, the record (`annotations[i] (id N)`) and the field. An
    annotation without `iscrowd` gets 0 (faster-coco-eval's default; pycocotools would raise KeyError).
    """
    for key, fields in _REQUIRED.items():
        for i, item in enumerate(data[key]):
            if not isinstance(item, dict) or any(f not in item for f in fields):
                miss = [f for f in fields if not isinstance(item, dict) or f not in item]
                raise DataError(f"{source}: {key}[{i}] lacks {', '.join(miss)}")
    ids = {key: _checked_ids(data[key], key, source) for key in _REQUIRED}
    anns = data["annotations"]
    for a in anns:
        if "iscrowd" not in a:
            a["iscrowd"] = 0
    if not _annotations_plain(anns):
        for i, a in enumerate(anns):
            why = _bad_annotation_field(a)
            if why is not None:
                raise DataError(f"{source}: annotations[{i}] (id {a['id']}) {why}")
    for field, key, what in (("image_id", "images", "image"), ("category_id", "categories", "category")):
        missing = {a[field] for a in anns} - set(ids[key])
        if missing:
            raise DataError(f"{source}: annotations reference {len(missing)} {what} ids missing from '{key}': "
                            f"{show(sorted(missing))}")


def _checked_ids(items: list[dict], key: str, source: str) -> list[int]:
    """The `id`s of `items` once all are distinct integers in [_ID_LOW[key], ID_MAX]."""
    ids = [item["id"] for item in items]
    bad = [v for v in ids if not is_int(v)]
    if bad:
        raise DataError(f"{source}: {key} ids must be integers, got {show(bad)}")
    low = _ID_LOW[key]
    if ids and not (min(ids) >= low and max(ids) <= ID_MAX):
        i = next(i for i, v in enumerate(ids) if not low <= v <= ID_MAX)
        raise DataError(f"{source}: {key}[{i}] field 'id' is {describe(ids[i])}; it must lie in {low}..2**63-1 "
                        "(where both COCO backends agree)")
    if len(set(ids)) != len(ids):
        seen: set = set()
        dup = [v for v in ids if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
        raise DataError(f"{source}: duplicate {key} ids {show(sorted(set(dup)))}")
    return ids


def _annotations_plain(anns: list[dict]) -> bool:
    """Fast check over all annotations of what `_bad_annotation_field` checks one by one (True: all fine)."""
    if not anns:
        return True
    if {type(a["image_id"]) for a in anns} | {type(a["category_id"]) for a in anns} != {int}:
        return False
    if not all(type(a["iscrowd"]) is int and (a["iscrowd"] == 0 or a["iscrowd"] == 1) for a in anns):
        return False
    boxes = [a["bbox"] for a in anns]
    if not all(type(b) is list and len(b) == 4 for b in boxes):
        return False
    values = [v for b in boxes for v in b] + [a["area"] for a in anns]
    if {type(v) for v in values} - {int, float}:
        return False
    try:
        arr = np.array(values, dtype=np.float64)
    except OverflowError:  # an int beyond float64
        return False
    wh = arr[: 4 * len(anns)].reshape(-1, 4)[:, 2:]
    return bool(np.isfinite(arr).all() and (wh >= 0).all() and (arr[4 * len(anns):] >= 0).all())


def _bad_annotation_field(a: dict) -> str | None:
    """Which field of one GT annotation is unusable and why, or None."""
    for field in ("image_id", "category_id"):
        if not is_int(a[field]):
            return f"field '{field}' is {describe(a[field])}; it must be an integer id"
    bb = a["bbox"]
    if not isinstance(bb, list) or len(bb) != 4 or not all(_is_finite(v) for v in bb):
        return f"field 'bbox' is {describe(bb)}; it must be [x, y, w, h], 4 finite numbers"
    if bb[2] < 0 or bb[3] < 0:
        return f"field 'bbox' is {describe(bb)}; its width and height must not be negative"
    if not _is_finite(a["area"]) or a["area"] < 0:
        return f"field 'area' is {describe(a['area'])}; it must be a finite number >= 0"
    crowd = a["iscrowd"]
    if not (is_int(crowd) and crowd in (0, 1)):
        return f"field 'iscrowd' is {describe(crowd)}; it must be 0 or 1"
    return None


# ----------------------------------------------------------------------------------------------------------------------
# detections


def _describe_bad_detection(d: Any) -> str | None:
    """Why one detection entry is unusable, or None if it is fine."""
    if not isinstance(d, dict):
        return f"is a {type(d).__name__}, not an object"
    for key in ("image_id", "category_id", "bbox", "score"):
        if key not in d:
            return f"has no '{key}'"
    bb = d["bbox"]
    if not isinstance(bb, (list, tuple, np.ndarray)) or len(bb) != 4 or not all(_is_num(v) for v in bb):
        return f"needs 'bbox' = [x, y, w, h] (4 numbers), got {describe(bb)}"
    if not all(_is_finite(v) for v in bb):
        return f"has a non-finite bbox {describe(bb)}"
    if bb[2] < 0 or bb[3] < 0:
        return f"has a negative bbox width/height {describe(bb)}"
    s = d["score"]
    if not _is_finite(s):
        return f"needs a finite numeric 'score', got {describe(s)}"
    for key in ("image_id", "category_id"):
        v = d[key]
        if not is_int(v):
            hint = (" (Ultralytics COCO-2014 predictions use file stems; convert them with "
                    "normalize_ultralytics_predictions)") if isinstance(v, str) else ""
            return f"needs an integer '{key}', got {describe(v)}{hint}"
    return None


def _first_bad(dets: list, source: str) -> DataError:
    for i, d in enumerate(dets):
        why = _describe_bad_detection(d)
        if why is not None:
            return DataError(f"{source}: detection [{i}] {why}")
    # Only reachable if a fast-path check and the per-entry check disagree, i.e. a bug here.
    raise AssertionError("detection validation fast path and slow path disagree")


def clean_detections(dets: Any, known_img: set, known_cat: set, source: str, eval_fields: bool) -> list[dict]:
    """Validate detections and return fresh dicts (the COCO APIs write into result dicts, never into the caller's).

    With `eval_fields` the dicts also get what `loadRes` would add for bbox results (1-based `id`, `area` = w*h,
    `iscrowd` = 0), so the faster-coco-eval path can skip `loadRes`. Checks run as one cheap loop plus vectorised
    type/finiteness tests; only when something is wrong do we walk the list again to name the first bad entry.
    """
    if not isinstance(dets, list):
        raise DataError(f"{source}: detections must be a JSON list of objects, got a {type(dets).__name__}")
    out: list[dict] = []
    append = out.append
    try:
        if eval_fields:
            for i, d in enumerate(dets, 1):
                x, y, w, h = d["bbox"]
                # area (= w*h) is set once w and h are known to be numbers: `[0] * 10**12` is not a product
                append({"id": i, "image_id": d["image_id"], "category_id": d["category_id"], "bbox": [x, y, w, h],
                        "score": d["score"], "area": 0.0, "iscrowd": 0})
        else:
            for d in dets:
                x, y, w, h = d["bbox"]
                append({"image_id": d["image_id"], "category_id": d["category_id"], "bbox": [x, y, w, h],
                        "score": d["score"]})
    except (KeyError, TypeError, ValueError, IndexError):
        raise _first_bad(dets, source) from None
    if not out:
        return out
    plain = {int, float}
    if {type(v) for o in out for v in o["bbox"]} - plain or {type(o["score"]) for o in out} - plain:
        types = {type(v) for o in out for v in o["bbox"]} | {type(o["score"]) for o in out}
        if not all(t in plain or _is_numpy_number(t) for t in types):
            raise _first_bad(dets, source)
        # numpy scalars from an in-memory caller: make them plain Python numbers for the C extensions.
        for o in out:
            o["bbox"] = [float(v) for v in o["bbox"]]
            o["score"] = float(o["score"])
    try:
        boxes = np.fromiter(chain.from_iterable(o["bbox"] for o in out), dtype=np.float64, count=4 * len(out))
        scores = np.fromiter((o["score"] for o in out), dtype=np.float64, count=len(out))
    except OverflowError:  # an int beyond float64
        raise _first_bad(dets, source) from None
    boxes = boxes.reshape(-1, 4)
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all() and (boxes[:, 2:] >= 0).all()):
        raise _first_bad(dets, source)
    if eval_fields:
        for o in out:
            o["area"] = o["bbox"][2] * o["bbox"][3]
    for key in ("image_id", "category_id"):
        types = {type(o[key]) for o in out}
        if types != {int}:
            if not all(t is int or (_is_numpy_number(t) and issubclass(t, np.integer)) for t in types):
                raise _first_bad(dets, source)
            for o in out:
                o[key] = int(o[key])
    for key, known, what in (("image_id", known_img, "image"), ("category_id", known_cat, "category")):
        unknown = {o[key] for o in out} - known
        if unknown:
            n = sum(1 for o in out if o[key] in unknown)
            hint = ""
            if key == "category_id":
                hint = (" (Ultralytics writes class+1 for non-COCO-2017 val lists; map them with "
                        "normalize_ultralytics_predictions)")
            raise DataError(f"{source}: {n} detections name {len(unknown)} {what} ids not in the ground truth: "
                            f"{show(sorted(unknown))}{hint}")
    return out
