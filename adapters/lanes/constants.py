"""Fixed numbers of the TuSimple protocol as UFLD uses it (UFLD `configs/tusimple.py`, `data/constant.py`,
`evaluation/eval_wrapper.py`; TuSimple `evaluate/lane.py`).

Kept in one place because the model, the training targets, the decoder and the synthetic-data generator must agree
on them exactly; a drift in any one (e.g. a different row anchor) silently costs accuracy rather than raising.
"""

from __future__ import annotations

# Frame size of every TuSimple image (W, H). The decoder scales to this width and the labels live at this size.
IMG_W, IMG_H = 1280, 720

# Network input (H, W) of the published models. The flattened pooled feature 8 * (288/32) * (800/32) = 1800 is
# hard-wired into the first Linear layer, so another size changes `cls.0.weight` and no official checkpoint loads.
INPUT_SIZE = (288, 800)

# Row anchors in the 288-pixel-high resized image: 64, 68, ..., 284 (56 rows, UFLD's). Row r maps to frame row 2.5 * r.
ROW_ANCHORS: tuple[int, ...] = tuple(range(64, 288, 4))

# The 56 frame rows the predictions are written for (and that the test GT always uses): 160, 170, ..., 710.
H_SAMPLES: tuple[int, ...] = tuple(range(160, 720, 10))

GRIDING_NUM = 100  # location cells per row; class index GRIDING_NUM means "no lane here"
NUM_LANES = 4  # UFLD's lane slots: 1 outer-left, 2 ego-left, 3 ego-right, 4 outer-right (CULane order)

# ImageNet normalisation of torchvision's ResNets (the backbone was pretrained with it).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# The constant UFLD writes as `run_time` (ms). The official evaluator zeroes images with run_time > 200.
RUN_TIME_MS = 10

# Training-label PNG conversion (scripts/convert_tusimple.py): line thickness and the minimum lane length (px
# between first and last point) below which a lane is discarded.
LABEL_LINE_THICKNESS = 16
MIN_LANE_LENGTH_PX = 90

# Label files in the order UFLD's converter concatenates them (this fixes the line order of train_gt.txt).
TRAIN_LABEL_FILES = ("label_data_0601.json", "label_data_0531.json", "label_data_0313.json")
TEST_TASKS_FILE = "test_tasks_0627.json"
TEST_LABEL_FILE = "test_label.json"
TRAIN_LIST = "train_gt.txt"
TEST_LIST = "test.txt"

assert len(ROW_ANCHORS) == 56 and ROW_ANCHORS[-1] == 284
assert len(H_SAMPLES) == 56 and [int(r * IMG_H / 288) for r in ROW_ANCHORS] == list(H_SAMPLES)
