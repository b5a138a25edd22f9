"""TuSimple data for UFLD: synthetic generator format, conversion and targets (as UFLD's `scripts/convert_tusimple.py`,
`data/dataset.py`), datasets, layout errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.lanes.constants import H_SAMPLES
from adapters.lanes.convert import assign_slots, convert_test, convert_train, rasterise
from adapters.lanes.synthetic import make_synthetic_tusimple
from adapters.lanes.targets import classification_target, grid_targets, label_rows, lane_positions
from adapters.lanes.transforms import _shift, augment
from adapters.lanes.tusimple_data import TuSimpleTest, TuSimpleTrain, check_layout
from harness.errors import DataError


pytestmark = pytest.mark.usefixtures("one_thread")

CELL = 1279 / 99  # training cell width for a 1280-wide frame and griding 100


@pytest.fixture(scope="module")
def root(tusimple_root) -> Path:
    return tusimple_root


def test_synthetic_is_tusimple_format(root):
    for name in ("label_data_0313.json", "label_data_0531.json", "label_data_0601.json", "test_label.json"):
        for line in (root / name).read_text().splitlines():
            rec = json.loads(line)
            assert set(rec) == {"lanes", "h_samples", "raw_file"}
            assert rec["raw_file"].startswith("clips/") and rec["raw_file"].endswith("/20.jpg")
            assert all(len(lane) == len(rec["h_samples"]) for lane in rec["lanes"]) and 2 <= len(rec["lanes"]) <= 5
            assert all(x == -2 or 0 <= x < 1280 for lane in rec["lanes"] for x in lane)
            with Image.open(root / rec["raw_file"]) as im:
                assert im.size == (1280, 720) and im.format == "JPEG"
            if name == "test_label.json":
                assert rec["h_samples"] == list(H_SAMPLES)
    tasks = [json.loads(line)["raw_file"] for line in (root / "test_tasks_0627.json").read_text().splitlines()]
    assert (root / "test.txt").read_text().split() == tasks


def test_synthetic_is_deterministic_for_any_worker_count(tmp_path):
    make_synthetic_tusimple(tmp_path / "a", n_train=3, n_test=1, seed=7)
    make_synthetic_tusimple(tmp_path / "b", n_train=3, n_test=1, seed=7, workers=2)  # frames rendered in a pool
    for f in ("label_data_0313.json", "label_data_0601.json", "test_label.json", "test_tasks_0627.json"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    rec = json.loads((tmp_path / "a" / "test_label.json").read_text())
    assert (tmp_path / "a" / rec["raw_file"]).read_bytes() == (tmp_path / "b" / rec["raw_file"]).read_bytes()


def _record(*lanes_xy: tuple[tuple[float, float], tuple[float, float]]) -> dict:
    """A TuSimple record with straight lanes from (x0, y0) to (x1, y1), sampled on the 56 h_samples."""
    lanes = []
    for (x0, y0), (x1, y1) in lanes_xy:
        lanes.append([int(round(x0 + (x1 - x0) * (y - y0) / (y1 - y0))) if y0 <= y <= y1 else -2 for y in H_SAMPLES])
    return {"lanes": lanes, "h_samples": list(H_SAMPLES), "raw_file": "clips/x/1/20.jpg"}


def test_conversion_assigns_culane_slots():
    # listed out of order on purpose: right-outer, ego-left, ego-right, left-outer
    rec = _record(((700, 300), (1270, 500)), ((600, 300), (300, 710)), ((660, 300), (900, 710)),
                  ((560, 300), (20, 600)))
    conv = rasterise(rec)
    assert conv.exists == (1, 1, 1, 1)
    # the value on each lane's centre line at row 400 is its slot id
    for lane, slot in zip(rec["lanes"], (4, 2, 3, 1)):
        x = lane[H_SAMPLES.index(400)]
        assert conv.label[400, x] == slot
    # a short lane (< 90 px) is dropped, and one lane per side takes the ego slots
    short = _record(((600, 300), (300, 710)), ((660, 300), (900, 710)), ((640, 600), (650, 650)))
    assert rasterise(short).exists == (0, 1, 1, 0)
    # three right lanes: the largest angle is slot 3, the 2nd-largest slot 4, the smallest is dropped
    assert assign_slots([-0.5, 0.3, 0.2, 0.9]) == [(0, 2), (3, 3), (1, 4)]


def test_train_list_and_pngs(root):
    lines = (root / "train_gt.txt").read_text().splitlines()
    assert len(lines) == 3
    img, png, *flags = lines[0].split()
    assert png == img[:-3] + "png" and len(flags) == 4 and set(flags) <= {"0", "1"}
    label = np.asarray(Image.open(root / png))
    assert label.shape == (720, 1280) and set(np.unique(label)) <= {0, 1, 2, 3, 4}
    assert [str(int(k in np.unique(label))) for k in (1, 2, 3, 4)] == flags


def test_targets_on_a_known_lane():
    rows_720 = label_rows(720)
    # upstream's int(r / 288 * 720) lands one row short on three anchors (float rounding); elsewhere rows == h_samples
    short = {7: 229, 21: 369, 30: 459}
    assert rows_720 == [short.get(j, h) for j, h in enumerate(H_SAMPLES)]
    label = np.zeros((720, 1280), dtype=np.uint8)
    label[:, 800:816] = 2  # a vertical lane in slot 2 on every row: mean column 807.5
    ys = np.arange(300, 501)
    xs = 200 + (ys - 300)  # slot 3: x = 200 + (y-300) on rows 300..500, 16 px wide
    for y, x in zip(ys, xs):
        label[y, x - 8: x + 8] = 3
    pos = lane_positions(label)
    assert np.all(pos[1] == 807.5)
    assert np.all(pos[0] == -1) and np.all(pos[3] == -1)
    rows = np.asarray(rows_720)
    inside = (rows >= 300) & (rows <= 500)
    np.testing.assert_allclose(pos[2, inside], 200 + (rows[inside] - 300) - 0.5)
    assert np.all(pos[2, rows < 300] == -1)
    # extension: the straight line continues to the bottom row (exactly, the fitted points are collinear)
    np.testing.assert_allclose(pos[2, rows > 500], 200 + (rows[rows > 500] - 300) - 0.5, atol=1e-6)
    target = classification_target(label).numpy()
    assert target.shape == (56, 4) and target.dtype == np.int64
    assert np.all(target[:, 1] == int(807.5 // CELL)) and int(807.5 // CELL) == 62
    assert np.all(target[:, 0] == 100) and np.all(target[rows < 300, 2] == 100)
    assert target[H_SAMPLES.index(710), 2] == int((200 + 410 - 0.5) // CELL) == 47


def test_extension_drops_points_outside_the_frame():
    pos = np.full((4, 56), -1.0)
    pos[0, :20] = 1000 + 30 * np.arange(20)  # steep lane that leaves the frame when extrapolated
    label = np.zeros((720, 1280), dtype=np.uint8)
    for j, r in enumerate(label_rows(720)[:20]):
        x = int(pos[0, j])
        label[r, x - 2: x + 2] = 1
    out = lane_positions(label)
    rows = np.asarray(H_SAMPLES)
    assert np.all(out[0, 20:][rows[20:] * 3 - 1000 > 0] == -1)  # extrapolated x > 1279 -> absent
    assert grid_targets(out, 1280)[25, 0] == 100


def test_shift_and_augment():
    a = np.arange(20, dtype=np.uint8).reshape(4, 5)
    s = _shift(a, 1, -2)
    assert s[0].tolist() == [0] * 5 and s[1, :3].tolist() == [2, 3, 4] and s[1, 3:].tolist() == [0, 0]
    img = Image.fromarray(np.full((720, 1280, 3), 200, np.uint8))
    lab = Image.fromarray(np.ones((720, 1280), np.uint8))
    i1, l1 = augment(img, lab, np.random.default_rng(0))
    i2, l2 = augment(img, lab, np.random.default_rng(0))
    assert i1.size == (1280, 720) and np.array_equal(np.asarray(l1), np.asarray(l2))
    assert np.asarray(l1).min() == 0  # some border was zero-filled


def test_datasets(root):
    train = TuSimpleTrain(root, griding_num=100, input_size=(64, 160), use_aux=True, augment=False)
    x, cls, seg = train[0]
    assert x.shape == (3, 64, 160) and cls.shape == (56, 4) and seg.shape == (8, 20)
    assert int(cls.max()) <= 100 and int(seg.max()) <= 4
    assert abs(float(x.mean())) < 3  # normalised
    test = TuSimpleTest(root, input_size=(64, 160))
    img, name = test[0]
    assert img.shape == (3, 64, 160) and name == (root / "test.txt").read_text().split()[0]


def test_layout_errors(tmp_path, root):
    with pytest.raises(DataError, match="needs --data"):
        check_layout(None)
    with pytest.raises(DataError, match="does not exist"):
        check_layout(tmp_path / "nope")
    with pytest.raises(DataError, match="label_data_0601.json.*tusimple_download.py"):
        check_layout(tmp_path)
    make_synthetic_tusimple(tmp_path, n_train=3, n_test=1, seed=1)
    with pytest.raises(DataError, match="train_gt.txt.*tusimple_convert.py"):
        check_layout(tmp_path)
    convert_train(tmp_path)
    with pytest.raises(DataError, match="test.txt.*tusimple_convert.py"):
        check_layout(tmp_path)
    convert_test(tmp_path)
    (tmp_path / "test_label.json").unlink()
    with pytest.raises(DataError, match="test_label.json"):
        check_layout(tmp_path)
    assert check_layout(tmp_path, test=False) == tmp_path
    png = (tmp_path / "train_gt.txt").read_text().split()[1]
    (tmp_path / png).unlink()
    with pytest.raises(DataError, match="missing, e.g. .*20.png"):
        TuSimpleTrain(tmp_path)
