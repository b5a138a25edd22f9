"""Tests of the TuSimple lane metric (harness/evaluators/tusimple.py) against the official `LaneEval` rules.

Three kinds: hand-worked cases whose Accuracy/FP/FN follow from the official rules by arithmetic (written out in each
test), bad-input cases that must raise `DataError` naming file, line and field, and seeded random cases checked
against `_reference_scores`, a slow loop-by-loop restatement of the official code written here (no network, no
official file needed). The reference fits the slope with scikit-learn exactly as the official does, so the random
cases include exact-threshold ties (slopes 3/4 and 12/5 give 25 px and 52 px) that a closed form alone could get
wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from adapters.lanes.synthetic import random_submission
from harness.errors import DataError, UserError
from harness.evaluators.tusimple import reading, scoring
from harness.evaluators.tusimple import eval_files, evaluate_predictions, load_gt_file, load_prediction_file

H56 = list(range(160, 720, 10))  # the TuSimple h_samples: 56 rows, 160..710
R = len(H56)


def gt_rec(name: str, lanes: list[list[float]], h: list[int] = H56) -> dict:
    return {"raw_file": name, "lanes": lanes, "h_samples": list(h)}  # a copy: tests mutate records


def pred_rec(name: str, lanes: list[list[float]], run_time: float = 10, h: list[int] = H56) -> dict:
    return {"raw_file": name, "lanes": lanes, "h_samples": list(h), "run_time": run_time}


def vertical(x: float, n: int = R) -> list[float]:
    return [x] * n


def scores(preds: list[dict], gts: list[dict]) -> tuple[float, float, float]:
    out = evaluate_predictions(preds, gts)
    return out["Accuracy"], out["FP"], out["FN"]


def one_image(pred_lanes, gt_lanes, run_time=10, h=H56) -> tuple[float, float, float]:
    return scores([pred_rec("a.jpg", pred_lanes, run_time, h)], [gt_rec("a.jpg", gt_lanes, h)])


# ---------------------------------------------------------------------------------------------------------------------
# Slow reference: the official rules restated with plain loops (slope from scikit-learn, as the official does).
# ---------------------------------------------------------------------------------------------------------------------


def _reference_threshold(xs: list[float], ys: list[float]) -> float:
    from sklearn.linear_model import LinearRegression

    pts = [(y, x) for x, y in zip(xs, ys) if x >= 0]
    if len(pts) <= 1:
        return 20 / np.cos(0)
    k = LinearRegression().fit(np.array([[p[0]] for p in pts]), np.array([p[1] for p in pts])).coef_[0]
    return 20 / np.cos(np.arctan(k))


def _reference_image(pred: list[list[float]], gt: list[list[float]], ys: list[float], run_time: float):
    if any(len(p) != len(ys) for p in pred):
        raise ValueError("format")
    if run_time > 200 or len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0
    best_per_gt = []
    matched = 0.0
    misses = 0.0
    for g in gt:
        th = _reference_threshold(g, ys)
        best = 0.0
        for p in pred:
            correct = 0.0
            for pv, gv in zip(p, g):
                pv2 = pv if pv >= 0 else -100
                gv2 = gv if gv >= 0 else -100
                if abs(pv2 - gv2) < th:
                    correct += 1.0
            best = max(best, correct / len(g))
        best_per_gt.append(best)
        if best < 0.85:
            misses += 1
        else:
            matched += 1
    fp = len(pred) - matched
    if len(gt) > 4 and misses > 0:
        misses -= 1
    total = sum(best_per_gt)
    if len(gt) > 4:
        total -= min(best_per_gt)
    denom = max(min(4.0, len(gt)), 1.0)
    return total / denom, (fp / len(pred) if pred else 0.0), misses / denom


def _reference_scores(preds: list[dict], gts: list[dict]) -> tuple[float, float, float]:
    by_name = {g["raw_file"]: g for g in gts}
    a = p = n = 0.0
    for rec in preds:
        g = by_name[rec["raw_file"]]
        da, dp, dn = _reference_image(rec["lanes"], g["lanes"], g["h_samples"], rec["run_time"])
        a, p, n = a + da, p + dp, n + dn
    return a / len(gts), p / len(gts), n / len(gts)


# ---------------------------------------------------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------------------------------------------------


def test_perfect_prediction_scores_one_zero_zero():
    lanes = [vertical(x) for x in (200, 500, 800, 1100)]
    assert one_image(lanes, lanes) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "shift, expected",
    [
        (19, (1.0, 0.0, 0.0)),  # |19| < 20 on every row
        (20, (0.0, 1.0, 1.0)),  # 20 is not < 20: no row correct, the GT lane is a FN and the pred lane a FP
        (-20, (0.0, 1.0, 1.0)),
    ],
)
def test_vertical_lane_shift_against_20px(shift, expected):
    assert one_image([vertical(500 + shift)], [vertical(500)]) == expected


def test_angled_lane_gets_cos_adjusted_threshold():
    # GT x = 200 + 0.75 (y - 160): slope 3/4, so the tolerance is 20 / cos(atan(3/4)) = 20 / 0.8 = 25 px.
    gt = [200 + 0.75 * (y - 160) for y in H56]
    # Offset 24 on the first 48 rows (24 < 25: correct), 30 on the last 8 (wrong): 48/56 = 0.857 >= 0.85, matched.
    pred = [x + (24 if j < 48 else 30) for j, x in enumerate(gt)]
    acc, fp, fn = one_image([pred], [gt])
    assert acc == pytest.approx(48 / 56, abs=1e-15) and fp == 0.0 and fn == 0.0
    # The same offsets against a vertical lane (20 px tolerance) get no row right: a FN and a FP.
    pred_v = [500 + (24 if j < 48 else 30) for j in range(R)]
    assert one_image([pred_v], [vertical(500)]) == (0.0, 1.0, 1.0)
    # 47 rows right is 47/56 = 0.839 < 0.85: a miss, although the point accuracy still counts in Accuracy.
    pred_47 = [x + (24 if j < 47 else 30) for j, x in enumerate(gt)]
    acc, fp, fn = one_image([pred_47], [gt])
    assert acc == pytest.approx(47 / 56, abs=1e-15) and fp == 1.0 and fn == 1.0


def test_steep_slope_threshold_52px():
    # Slope 12/5: cos(atan(12/5)) = 5/13, tolerance 52 px. Offsets of 51 px are within, 53 px are not.
    gt = [100 + 2.4 * (y - 160) for y in H56]
    assert one_image([[x + 51 for x in gt]], [gt]) == (1.0, 0.0, 0.0)
    assert one_image([[x + 53 for x in gt]], [gt]) == (0.0, 1.0, 1.0)


def test_minus_two_rows():
    # GT lane absent (-2) on its first 20 rows. A prediction equal on the 36 valid rows and absent on the 20 others
    # is right on all 56 rows, because both-absent rows count as correct.
    gt = [-2] * 20 + [400] * 36
    assert one_image([list(gt)], [gt]) == (1.0, 0.0, 0.0)
    # The same prediction with values on the 20 absent rows: 36/56 = 0.643 < 0.85.
    pred = [400] * 56
    acc, fp, fn = one_image([pred], [gt])
    assert acc == pytest.approx(36 / 56, abs=1e-15) and (fp, fn) == (1.0, 1.0)
    # A full GT lane, prediction absent on 9 rows: 47/56 < 0.85 (miss); absent on 8 rows: 48/56 (match).
    full = [400] * 56
    acc, fp, fn = one_image([[-2] * 9 + [400] * 47], [full])
    assert acc == pytest.approx(47 / 56, abs=1e-15) and (fp, fn) == (1.0, 1.0)
    acc, fp, fn = one_image([[-2] * 8 + [400] * 48], [full])
    assert acc == pytest.approx(48 / 56, abs=1e-15) and (fp, fn) == (0.0, 0.0)


def test_all_absent_prediction_matches_mostly_absent_gt():
    # A GT lane with 8 points and an all -2 prediction agree on the 48 empty rows: 48/56 >= 0.85 is a match.
    gt = [-2] * 48 + [300] * 8
    acc, fp, fn = one_image([[-2] * 56], [gt])
    assert acc == pytest.approx(48 / 56, abs=1e-15) and (fp, fn) == (0.0, 0.0)


def test_run_time_over_200_zeroes_the_image():
    lanes = [vertical(500)]
    assert one_image(lanes, lanes, run_time=200.5) == (0.0, 0.0, 1.0)
    assert one_image(lanes, lanes, run_time=200) == (1.0, 0.0, 0.0)  # the rule is strictly greater than 200


def test_more_than_gt_plus_two_predicted_lanes_zeroes_the_image():
    gt = [vertical(500)]
    far = [vertical(100), vertical(900), vertical(1200)]
    assert one_image([vertical(500)] + far, gt) == (0.0, 0.0, 1.0)  # 4 > 1 + 2
    # 3 lanes (= 1 + 2) are scored: one match, two FPs out of three predictions.
    acc, fp, fn = one_image([vertical(500)] + far[:2], gt)
    assert (acc, fn) == (1.0, 0.0) and fp == pytest.approx(2 / 3, abs=1e-15)


def test_five_gt_lanes_drop_worst_and_forgive_one_fn():
    # The official code does not reject more than 4 GT lanes: it drops the worst lane's accuracy and one FN.
    xs = (100, 300, 500, 700, 900)
    gt = [vertical(x) for x in xs]
    pred = [vertical(x) for x in xs[:4]] + [vertical(1250)]  # the 5th GT lane is missed (best accuracy 0)
    acc, fp, fn = one_image(pred, gt)
    # sum = 1+1+1+1+0 - min 0 = 4, / min(4, 5) = 1; fn = 1 - 1 = 0; fp = 5 - 4 matched = 1, / 5 predictions = 0.2
    assert (acc, fp, fn) == (1.0, 0.2, 0.0)


def test_six_gt_lanes_can_score_above_one_as_official():
    # With 6 perfect GT lanes the official drops one and divides by 4: 5/4 = 1.25. Replicated, not "fixed".
    gt = [vertical(x) for x in (100, 300, 500, 700, 900, 1100)]
    assert one_image(gt, gt) == (1.25, 0.0, 0.0)


def test_matching_is_not_one_to_one_so_fp_can_be_negative():
    # Two GT lanes 10 px apart and one prediction between them: both GT lanes match it, fp = 1 - 2 = -1.
    assert one_image([vertical(505)], [vertical(500), vertical(510)]) == (1.0, -1.0, 0.0)


def test_no_predicted_lanes_and_no_gt_lanes():
    assert one_image([], [vertical(300), vertical(700)]) == (0.0, 0.0, 1.0)  # both GT lanes missed, 2/2
    assert one_image([vertical(300), vertical(700)], []) == (0.0, 1.0, 0.0)  # 2 FPs out of 2 predictions
    assert one_image([], []) == (0.0, 0.0, 0.0)


def test_scores_are_a_per_image_mean():
    # Image a: perfect (1, 0, 0). Image b: 2 GT lanes, one found, one missed -> (0.5, 0, 0.5). Mean: (0.75, 0, 0.25).
    gts = [gt_rec("a", [vertical(500)]), gt_rec("b", [vertical(300), vertical(800)])]
    preds = [pred_rec("b", [vertical(300)]), pred_rec("a", [vertical(500)])]
    assert scores(preds, gts) == (0.75, 0.0, 0.25)


def test_48_row_and_56_row_images_mix():
    h48 = list(range(240, 720, 10))
    gts = [gt_rec("a", [vertical(500)]), gt_rec("b", [vertical(500, 48)], h48)]
    preds = [pred_rec("a", [vertical(500)]), pred_rec("b", [[-2] * 8 + [500] * 40], h=h48)]
    # Image b: 40/48 = 0.833 < 0.85 -> acc 0.8333, fp 1, fn 1. Mean with the perfect image a.
    acc, fp, fn = scores(preds, gts)
    assert acc == pytest.approx((1 + 40 / 48) / 2, abs=1e-15) and (fp, fn) == (0.5, 0.5)


def test_numpy_lanes_are_accepted():
    lanes = np.array([vertical(500), vertical(900)], dtype=np.int64)
    assert scores([pred_rec("a", lanes)], [gt_rec("a", lanes.tolist())]) == (1.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------------------------------
# Slope: the closed form agrees with scikit-learn's LinearRegression
# ---------------------------------------------------------------------------------------------------------------------


def test_closed_form_threshold_matches_sklearn():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    for _ in range(300):
        n_valid = int(rng.integers(0, R + 1))
        x = np.full(R, -2.0)
        rows = np.sort(rng.choice(R, n_valid, replace=False))
        x[rows] = np.rint(rng.uniform(0, 1280) + rng.uniform(-3, 3) * (np.array(H56)[rows] - 400) + rng.normal(0, 5, n_valid))
        x[x < 0] = -2
        ours = scoring._thresholds(x[None], np.array(H56, float)[None], np.ones((1, R), bool))[0]
        ref = _reference_threshold(x.tolist(), H56)
        assert abs(ours - ref) <= 1e-9 * ref


# ---------------------------------------------------------------------------------------------------------------------
# Random inputs against the slow reference
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_random_inputs_match_reference(seed):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(seed)
    preds, gts = random_submission(rng, int(rng.integers(1, 12)))
    got = scores(preds, gts)
    want = _reference_scores(preds, gts)
    for g, w in zip(got, want):
        assert abs(g - w) <= 1e-9, (got, want)


def test_random_tie_cases_are_exercised():
    # Guard on the test itself: the random cases above must contain exact-threshold ties, or they prove nothing.
    rng = np.random.default_rng(0)
    ties = 0
    for seed in range(30):
        preds, gts = random_submission(np.random.default_rng(seed), 8)
        by = {g["raw_file"]: g for g in gts}
        for p in preds:
            g = by[p["raw_file"]]
            for gl in g["lanes"]:
                th = _reference_threshold(gl, g["h_samples"])
                for pl in p["lanes"]:
                    ties += sum(
                        1 for a, b in zip(pl, gl) if a >= 0 and b >= 0 and abs(abs(a - b) - th) < 1e-9 * th
                    )
    assert ties > 10 and rng is not None


def test_single_image_matches_reference_per_image():
    # Per-image comparison (one image per submission) so that averaging cannot hide a wrong image.
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(123)
    for _ in range(150):
        preds, gts = random_submission(rng, 1)
        got = scores(preds, gts)
        want = _reference_scores(preds, gts)
        assert all(abs(g - w) <= 1e-9 for g, w in zip(got, want)), (got, want, preds, gts)


# ---------------------------------------------------------------------------------------------------------------------
# Files and bad input
# ---------------------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list, raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r) for r in records]
    for idx, text in (raw_lines or {}).items():
        lines[idx] = text
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path):
    gts = [gt_rec(f"clips/{i}.jpg", [vertical(300 + i), vertical(700)]) for i in range(5)]
    preds = [pred_rec(f"clips/{i}.jpg", [vertical(300 + i), vertical(700), [-2] * R, [-2] * R]) for i in range(5)]
    return tmp_path, gts, preds


def test_eval_files_round_trip(files):
    tmp, gts, preds = files
    out = eval_files(write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    # Each image: 2 GT lanes matched, 4 predicted lanes -> FP 2/4.
    assert out == {"Accuracy": 1.0, "FP": 0.5, "FN": 0.0}
    assert load_gt_file(tmp / "g.json") == gts
    assert load_prediction_file(tmp / "p.json") == preds


def test_blank_lines_are_skipped(files):
    tmp, gts, preds = files
    p = tmp / "p.json"
    p.write_text("\n".join(json.dumps(r) for r in preds[:2]) + "\n\n" + "\n".join(json.dumps(r) for r in preds[2:]))
    assert len(load_prediction_file(p)) == 5


def _raises(match: str, fn, *args):
    with pytest.raises(DataError, match=match) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, UserError)
    return msg


def test_malformed_json_line(files):
    tmp, gts, preds = files
    p = write_jsonl(tmp / "p.json", preds, {2: '{"raw_file": "clips/2.jpg", "lanes": [[1, 2], '})
    msg = _raises("malformed JSON", load_prediction_file, p)
    assert "p.json, line 3" in msg


def test_nan_literal_is_rejected(files):
    tmp, gts, preds = files
    p = write_jsonl(tmp / "p.json", preds, {1: json.dumps(preds[1]).replace('"run_time": 10', '"run_time": NaN')})
    assert "line 2" in _raises("malformed JSON", load_prediction_file, p)


@pytest.mark.parametrize("field", ["raw_file", "lanes", "run_time"])
def test_prediction_missing_field(files, field):
    tmp, gts, preds = files
    preds[3] = {k: v for k, v in preds[3].items() if k != field}
    msg = _raises(f"field '{field}' is missing", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 4" in msg


@pytest.mark.parametrize("field", ["raw_file", "lanes", "h_samples"])
def test_gt_missing_field(files, field):
    tmp, gts, preds = files
    gts[0] = {k: v for k, v in gts[0].items() if k != field}
    assert "line 1" in _raises(f"field '{field}' is missing", load_gt_file, write_jsonl(tmp / "g.json", gts))


def test_gt_lane_length_differs_from_h_samples(files):
    tmp, gts, preds = files
    gts[2]["lanes"][1] = gts[2]["lanes"][1][:-1]
    msg = _raises(r"field 'lanes'\[1\] has 55 values but 'h_samples' has 56", load_gt_file, write_jsonl(tmp / "g.json", gts))
    assert "line 3" in msg


def test_prediction_lane_length_differs_from_its_h_samples(files):
    tmp, gts, preds = files
    preds[1]["lanes"][2] = [-2] * 50
    msg = _raises(r"'lanes'\[2\] has 50 values", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 2" in msg


def test_prediction_lanes_differ_from_gt_h_samples(files):
    # Consistent within the prediction file, but the GT has 56 rows: official "Format of lanes error".
    tmp, gts, preds = files
    preds[4] = pred_rec("clips/4.jpg", [vertical(304, 48)], h=list(range(240, 720, 10)))
    msg = _raises("ground truth", eval_files, write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    assert "p.json, line 5" in msg and "g.json, line 5" in msg and "'lanes'" in msg


@pytest.mark.parametrize("bad", ["12", None, True, [1], 1e300 * 10, 2**60])
def test_non_numeric_lane_value(files, bad):
    tmp, gts, preds = files
    if isinstance(bad, float) and math.isinf(bad):
        bad = "Infinity-as-string"
    preds[2]["lanes"][1][7] = bad
    msg = _raises(r"field 'lanes'\[1\]\[7\]", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 3" in msg and "finite number" in msg


def test_non_numeric_h_samples_and_run_time(files):
    tmp, gts, preds = files
    gts[1]["h_samples"][3] = "170"
    assert "line 2" in _raises(r"field 'h_samples'\[3\]", load_gt_file, write_jsonl(tmp / "g.json", gts))
    preds[0]["run_time"] = [10.0]  # the readme's "list of float" form, which the official code cannot compare
    assert "line 1" in _raises("field 'run_time'", load_prediction_file, write_jsonl(tmp / "p.json", preds))


def test_raw_file_containing_true_is_not_mistaken_for_a_boolean(files):
    tmp, gts, preds = files
    preds[0]["raw_file"] = gts[0]["raw_file"] = "clips/true_false.jpg"
    out = eval_files(write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    assert out["Accuracy"] == 1.0


def test_duplicate_raw_file(files):
    tmp, gts, preds = files
    preds[3]["raw_file"] = preds[1]["raw_file"]
    msg = _raises("duplicates", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 4" in msg and "line 2" in msg and "'raw_file'" in msg
    gts[4]["raw_file"] = gts[0]["raw_file"]
    assert "line 5" in _raises("duplicates", load_gt_file, write_jsonl(tmp / "g.json", gts))


def test_missing_predictions_name_count_and_first_files(files):
    tmp, gts, preds = files
    p = write_jsonl(tmp / "p.json", [preds[0], preds[2]])
    msg = _raises("3 of 5 ground-truth images have no prediction", eval_files, p, write_jsonl(tmp / "g.json", gts))
    assert "'clips/1.jpg', 'clips/3.jpg', 'clips/4.jpg'" in msg
    assert "We do not get the predictions of all the test tasks" in msg


def test_prediction_for_unknown_image(files):
    tmp, gts, preds = files
    preds[2]["raw_file"] = "clips/other.jpg"
    msg = _raises("not in", eval_files, write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    assert "line 3" in msg and "clips/other.jpg" in msg


def test_missing_file_and_empty_gt(tmp_path):
    _raises("does not exist", load_gt_file, tmp_path / "nope.json")
    (tmp_path / "g.json").write_text("")
    _raises("no ground-truth records", load_gt_file, tmp_path / "g.json")


def test_in_memory_records_report_record_index():
    gts = [gt_rec("a", [vertical(500)])]
    with pytest.raises(DataError, match=r"prediction record 0 \(raw_file 'a'\): field 'lanes'\[0\]\[3\]"):
        evaluate_predictions([pred_rec("a", [[500, 500, 500, True] + [500] * 52])], gts)


# ---------------------------------------------------------------------------------------------------------------------
# Fast paths (record checks skipped for plain JSON records, int64 conversion, shared h_samples): same answers and errors
# ---------------------------------------------------------------------------------------------------------------------


def test_int64_minimum_is_rejected_not_wrapped(files):
    # abs(-2**63) overflows int64 to itself; the bounds check must still reject it (|x| >= 2**53).
    tmp, gts, preds = files
    preds[1]["lanes"][0][5] = -(2**63)
    msg = _raises(r"field 'lanes'\[0\]\[5\]", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 2" in msg
    preds[1]["lanes"][0][5] = -(2**53) + 1  # the most negative value float64 and int64 agree on is accepted
    load_prediction_file(write_jsonl(tmp / "p.json", preds))


def test_non_list_lane_without_h_samples_is_named(files):
    tmp, gts, preds = files
    preds[2] = {"raw_file": preds[2]["raw_file"], "lanes": [5, [1] * R], "run_time": 10}
    msg = _raises(r"field 'lanes'\[0\] is 5", load_prediction_file, write_jsonl(tmp / "p.json", preds))
    assert "line 3" in msg


def test_float_and_int_values_mixed_match_reference(files):
    # Float pixels take the general conversion path; ints on other images the int64 one: scores as the reference.
    tmp, gts, preds = files
    preds[0]["lanes"][0] = [300.4] * R
    gts[3]["lanes"][1] = [699.5] * R
    out = eval_files(write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    ref = _reference_scores(preds, gts)
    assert (out["Accuracy"], out["FP"], out["FN"]) == pytest.approx(ref, abs=1e-12)


def test_bool_in_h_samples_equal_to_an_earlier_list_is_rejected():
    # [True, ...] == [1, ...] in Python: h_samples are converted once per distinct list, which must not hide a boolean.
    h = [1] + H56[1:]
    gts = [gt_rec("a", [vertical(500)], h), gt_rec("b", [vertical(500)], h)]
    gts[1]["h_samples"][0] = True
    preds = [pred_rec("a", [vertical(500)], h=h), pred_rec("b", [vertical(500)], h=h)]
    with pytest.raises(DataError, match=r"ground-truth record 1 \(raw_file 'b'\): field 'h_samples'\[0\] is True"):
        evaluate_predictions(preds, gts)


def test_bool_in_h_samples_file_is_rejected(files):
    tmp, gts, preds = files
    gts[3]["h_samples"] = list(gts[0]["h_samples"])
    gts[3]["h_samples"][0] = True
    assert "line 4" in _raises(r"field 'h_samples'\[0\] is True", load_gt_file, write_jsonl(tmp / "g.json", gts))


@pytest.mark.parametrize("rt", [float("nan"), float("inf"), True, 2.0**53, "10"])
def test_bad_run_time_in_memory(rt):
    gts = [gt_rec("a", [vertical(500)])]
    with pytest.raises(DataError, match=r"prediction record 0 \(raw_file 'a'\): field 'run_time'"):
        evaluate_predictions([pred_rec("a", [vertical(500)], run_time=rt)], gts)


def test_distinct_h_samples_per_image(files):
    # Alternating 56- and 48-row images (and a 56-row list shifted by one) each keep their own rows.
    tmp, gts, preds = files
    h48 = list(range(240, 720, 10))
    hs = [H56, h48, H56, [y + 1 for y in H56], h48]
    gts = [gt_rec(f"clips/{i}.jpg", [vertical(300 + i, len(h)), vertical(700, len(h))], h) for i, h in enumerate(hs)]
    preds = [pred_rec(f"clips/{i}.jpg", [vertical(310 + i, len(h))], h=h) for i, h in enumerate(hs)]
    out = eval_files(write_jsonl(tmp / "p.json", preds), write_jsonl(tmp / "g.json", gts))
    assert (out["Accuracy"], out["FP"], out["FN"]) == pytest.approx(_reference_scores(preds, gts), abs=1e-12)
    g = reading.pack_gt(gts, reading.record_where("ground-truth", gts), None)
    assert g.rows.tolist() == [56, 48, 56, 56, 48]
    assert g.y[3, :56].tolist() == [y + 1 for y in H56] and g.y[1, :48].tolist() == h48
