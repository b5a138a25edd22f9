"""TuSimple JSON labels -> UFLD training files: lane-id label PNGs, `train_gt.txt` and `test.txt` (as UFLD's
`scripts/convert_tusimple.py`).

Restates the semantics of UFLD's `scripts/convert_tusimple.py` (no code copied): TuSimple lists lanes in no fixed
order, so each lane's direction (angle of a y-on-x line fit) decides its CULane slot 1..4 (outer-left, ego-left,
ego-right, outer-right); at most two lanes per side are drawn, as 16-px lines whose value is the slot id.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from adapters.lanes.constants import (
    IMG_H,
    IMG_W,
    LABEL_LINE_THICKNESS,
    MIN_LANE_LENGTH_PX,
    TEST_LIST,
    TEST_TASKS_FILE,
    TRAIN_LABEL_FILES,
    TRAIN_LIST,
)
from harness.errors import DataError
from harness.userfiles import read_text

TOO_SHORT = -10.0  # direction code of a lane shorter than MIN_LANE_LENGTH_PX (upstream's sentinel)


def read_json_lines(path: Path) -> list[dict]:
    """One JSON object per non-blank line; DataError naming file and line on bad JSON."""
    records = []
    lines = read_text(path, "TuSimple label file", DataError).splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {lineno}: not JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits, nesting past the stack
            raise DataError(f"{path}, line {lineno}: not usable JSON ({type(exc).__name__})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("raw_file"), str):
            raise DataError(f"{path}, line {lineno}: expected an object with a 'raw_file' string")
        records.append(rec)
    return records


def lane_polylines(record: dict) -> list[np.ndarray]:
    """The valid points (x != -2) of each lane as a K x 2 float array of (x, y); all-absent lanes are skipped."""
    ys = np.asarray(record["h_samples"], dtype=np.float64)
    out = []
    for lane in record["lanes"]:
        xs = np.asarray(lane, dtype=np.float64)
        if len(xs) != len(ys):
            raise DataError(f"{record['raw_file']}: a lane has {len(xs)} points but h_samples has {len(ys)}")
        valid = xs != -2
        if valid.any():
            out.append(np.stack([xs[valid], ys[valid]], axis=1))
    return out


def lane_direction(points: np.ndarray) -> float:
    """atan of the slope of a least-squares fit y = a*x + b in image coordinates, or TOO_SHORT.

    Left lanes lean towards the vanishing point with y falling as x grows, so they get negative angles.
    """
    first, last = points[0], points[-1]
    if float(np.hypot(first[0] - last[0], first[1] - last[1])) < MIN_LANE_LENGTH_PX:
        return TOO_SHORT
    with warnings.catch_warnings():
        # A perfectly vertical lane (constant x) is rank-deficient; numpy's least-squares answer is what upstream
        # gets too, so keep it and silence the warning.
        warnings.simplefilter("ignore", np.exceptions.RankWarning)
        slope = np.polyfit(points[:, 0], points[:, 1], deg=1)[0]
    return float(np.arctan(slope))


def assign_slots(angles: Sequence[float]) -> list[tuple[int, int]]:
    """(lane index, slot id) pairs in drawing order (later draws overwrite earlier ones where lines overlap).

    Left (negative) angles sorted ascending: one lane -> slot 2; two or more -> the 2nd-smallest is slot 1, the
    smallest slot 2. Right (positive): one -> 3; two -> larger 3, smaller 4; more -> largest 3, 2nd-largest 4.
    A lane is found by the first index with that angle (upstream uses `where(ks == k)[0][0]`), so two lanes with
    identical angles resolve to the first one, as upstream.
    """
    ks = np.asarray(angles, dtype=np.float64)
    neg = np.sort(ks[(ks < 0) & (ks != TOO_SHORT)])
    pos = np.sort(ks[(ks > 0) & (ks != TOO_SHORT)])

    def index_of(k: float) -> int:
        return int(np.flatnonzero(ks == k)[0])

    plan: list[tuple[int, int]] = []
    if len(neg) == 1:
        plan.append((index_of(neg[0]), 2))
    elif len(neg) >= 2:
        plan += [(index_of(neg[1]), 1), (index_of(neg[0]), 2)]
    if len(pos) == 1:
        plan.append((index_of(pos[0]), 3))
    elif len(pos) == 2:
        plan += [(index_of(pos[1]), 3), (index_of(pos[0]), 4)]
    elif len(pos) > 2:
        plan += [(index_of(pos[-1]), 3), (index_of(pos[-2]), 4)]
    return plan


def draw_lane(canvas: np.ndarray, points: np.ndarray, value: int) -> None:
    """Polyline of `value` through the points (coordinates truncated with int(), as upstream), 16 px thick."""
    pts = [(int(x), int(y)) for x, y in points]
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(canvas, a, b, (int(value),), thickness=LABEL_LINE_THICKNESS)


@dataclass
class ConvertedLabel:
    """One training frame's label image and the existence flags of slots 1..4."""

    label: np.ndarray  # uint8 IMG_H x IMG_W, values 0 (background) and 1..4
    exists: tuple[int, int, int, int]


def rasterise(record: dict) -> ConvertedLabel:
    """The label PNG content of one TuSimple record."""
    lanes = lane_polylines(record)
    label = np.zeros((IMG_H, IMG_W), dtype=np.uint8)
    exists = [0, 0, 0, 0]
    for idx, slot in assign_slots([lane_direction(p) for p in lanes]):
        draw_lane(label, lanes[idx], slot)
        exists[slot - 1] = 1
    return ConvertedLabel(label, (exists[0], exists[1], exists[2], exists[3]))


def label_png_path(raw_file: str) -> str:
    """`clips/…/20.jpg` -> `clips/…/20.png` (upstream drops the 3-letter extension)."""
    return raw_file[:-3] + "png"


def convert_train(
    root: Path,
    label_files: Iterable[str] = TRAIN_LABEL_FILES,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> int:
    """Write a label PNG next to every labelled frame and `train_gt.txt`; returns the number of frames."""
    root = Path(root)
    records: list[dict] = []
    for name in label_files:
        path = root / name
        if not path.is_file():
            raise DataError(f"TuSimple label file {path} is missing; get it with data_scripts/tusimple_download.py")
        records += read_json_lines(path)
    lines = []
    for rec in progress(records):
        conv = rasterise(rec)
        png = label_png_path(rec["raw_file"])
        out = root / png
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), conv.label):
            raise DataError(f"could not write {out}")
        lines.append(f"{rec['raw_file']} {png} {' '.join(map(str, conv.exists))}\n")
    _write_atomic(root / TRAIN_LIST, "".join(lines))
    return len(lines)


def convert_test(root: Path, tasks_file: str = TEST_TASKS_FILE) -> int:
    """Write `test.txt` (one raw_file per line, in the order of the test tasks file); returns the count."""
    root = Path(root)
    path = root / tasks_file
    if not path.is_file():
        raise DataError(f"TuSimple test tasks file {path} is missing; get it with data_scripts/tusimple_download.py")
    names = [rec["raw_file"] for rec in read_json_lines(path)]
    _write_atomic(root / TEST_LIST, "".join(n + "\n" for n in names))
    return len(names)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file so an interrupted conversion never leaves a truncated list behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
