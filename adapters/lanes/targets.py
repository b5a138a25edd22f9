"""Training targets from a lane-id label image (UFLD `data/dataset.py`): row-anchor classification and aux segmentation.

Restates UFLD v1's `LaneClsDataset._get_index` / `_grid_pts` (no code copied). The classification target is
computed on the full-resolution label (after augmentation), never on a resized one: upstream's row scaling only runs
for labels that are not 288 px high.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from adapters.lanes.constants import GRIDING_NUM, NUM_LANES, ROW_ANCHORS

MIN_POINTS_TO_EXTEND = 6  # a lane needs this many row points before it is extrapolated to the image bottom
ABSENT = -1.0  # "no lane on this row" in the position array


def label_rows(height: int, row_anchors: tuple[int, ...] = ROW_ANCHORS) -> list[int]:
    """Row anchors (defined for a 288-high image) mapped to label rows as upstream computes them: int(r / 288 * H).

    Dividing first matters: in floating point e.g. 148/288*720 = 369.999…, so for H = 720 anchors 7, 21 and 30
    read label rows 229, 369 and 459, not 230, 370 and 460 (the other 53 rows are 160, 170, …, 710).
    Computing int(r * H / 288) instead would give the round values; we follow UFLD's code (checked
    against it on converted synthetic labels).
    """
    return [int((r * 1.0 / 288) * height) for r in row_anchors]


def lane_positions(
    label: np.ndarray, num_lanes: int = NUM_LANES, row_anchors: tuple[int, ...] = ROW_ANCHORS
) -> np.ndarray:
    """Mean column of each lane id on each anchor row, extended to the bottom: lanes x rows, ABSENT where none.

    Extension (upstream's "augmentation"): a lane with >= 6 row points that stops above the last anchor row is
    continued downwards by a straight line x = a*y + b fitted to the lower half of its points; extrapolated values
    outside [0, W-1] are ABSENT.
    """
    h, w = label.shape
    rows = np.asarray(label_rows(h, row_anchors), dtype=np.float64)
    pos = np.full((num_lanes, len(rows)), ABSENT)
    for j, r in enumerate(rows):
        line = label[int(round(r))]
        for lane in range(num_lanes):
            cols = np.flatnonzero(line == lane + 1)
            if len(cols):
                pos[lane, j] = cols.mean()
    for lane in range(num_lanes):
        valid = np.flatnonzero(pos[lane] != ABSENT)
        if len(valid) == 0 or valid[-1] == len(rows) - 1 or len(valid) < MIN_POINTS_TO_EXTEND:
            continue  # no lane, already reaches the bottom row, or too short to extrapolate reliably
        half = valid[len(valid) // 2:]
        a, b = np.polyfit(rows[half], pos[lane, half], deg=1)
        below = np.arange(valid[-1] + 1, len(rows))
        fitted = np.polyval([a, b], rows[below])
        pos[lane, below] = np.where((fitted < 0) | (fitted > w - 1), ABSENT, fitted)
    return pos


def grid_targets(pos: np.ndarray, width: int, griding_num: int = GRIDING_NUM) -> np.ndarray:
    """Positions -> cell classes, rows x lanes int64: floor(x / cell), cell = (W-1)/(griding-1); ABSENT -> griding.

    Python's float floor division is used element by element so the class matches upstream bit for bit.
    """
    cell = float(np.linspace(0, width - 1, griding_num)[1])  # upstream's col_sample[1] - col_sample[0]
    out = np.full(pos.shape[::-1], griding_num, dtype=np.int64)
    for lane in range(pos.shape[0]):
        for j in range(pos.shape[1]):
            p = float(pos[lane, j])
            if p != ABSENT:
                out[j, lane] = int(p // cell)
    return out


def classification_target(
    label: np.ndarray, griding_num: int = GRIDING_NUM, num_lanes: int = NUM_LANES
) -> torch.Tensor:
    """The 56 x 4 class target of one full-resolution label image (values 0..griding_num)."""
    return torch.from_numpy(grid_targets(lane_positions(label, num_lanes), label.shape[1], griding_num))


def segmentation_target(label: Image.Image, size_hw: tuple[int, int]) -> torch.Tensor:
    """Aux target: the label resized nearest-neighbour to `size_hw` (36 x 100 for a 288 x 800 input), int64."""
    small = label.resize((size_hw[1], size_hw[0]), Image.NEAREST)
    return torch.from_numpy(np.asarray(small, dtype=np.int64).copy())
