"""TuSimple lane-detection metric (Accuracy, FP, FN) with the official `LaneEval` semantics, vectorised with numpy.

What: a reimplementation of `evaluate/lane.py` from `TuSimple/tusimple-benchmark` (`LaneEval.bench` per image and
`LaneEval.bench_one_submit` over a submission). Why: the official file is Python 2, needs ujson and scikit-learn, and
spends ~3 ms of Python per image (a scikit-learn fit per GT lane, list comprehensions per lane pair); the harness
evaluates after every pruning stage, so it needs the same numbers much faster. The scores agree with the official
code to 1e-9 (normally bit for bit); `benchmarks/perf/bench_tusimple_eval.py` checks this against a user's copy of
the official file. No official code is included here; the rules below are restated from reading it.

Official rules, per image (`pred` = predicted lanes, `gt` = GT lanes, rows = the GT's `h_samples`):

* a predicted lane whose length differs from the number of rows is an error;
* `run_time > 200` or `len(pred) > len(gt) + 2` scores the image (acc 0, fp 0, fn 1);
* each GT lane gets the tolerance `20 / cos(atan(k))`, k = least-squares slope of x on y over its points with
  x >= 0 (k = 0 with fewer than two points): slanted lanes get a wider horizontal tolerance;
* a (GT, pred) pair's point accuracy is the fraction of *all* rows where |p' - g'| < tolerance, p'/g' being the
  values with every negative one replaced by -100 (so a row absent in both counts as correct);
* a GT lane's accuracy is its best pair (0 without predictions); it is matched when that is >= 0.85, else a FN;
  matching is not one-to-one, so FP = len(pred) - matched can be negative;
* with more than 4 GT lanes the worst lane's accuracy is dropped and one FN is forgiven (once, whatever the count;
  with 6+ GT lanes the image scores can exceed 1, as in the official code);
* image scores: sum(acc) / max(min(4, len(gt)), 1), FP / len(pred) (0 without predictions),
  FN / max(min(4, len(gt)), 1).

The submission scores are the per-image scores summed in prediction-file order and divided by the number of GT images
(a per-image mean, not the pooled formula of the benchmark readme).

Modules: `reading` (JSON lines, record checks, resource bounds, packing into arrays), `scoring` (the rules above on
those arrays), `evaluator` (the entry points: `evaluate_predictions` / `eval_files` in the official fractions,
`score_files` and the harness `TuSimpleEvaluator` in percent). Bad input raises a one-line `DataError` naming file,
line and field instead of the official bare "Format of lanes error"; see `reading` for what else is rejected and why.
"""

from harness.evaluators.tusimple.evaluator import (
    METRICS,
    TuSimpleEvaluator,
    as_percent,
    eval_files,
    evaluate_predictions,
    score_files,
)
from harness.evaluators.tusimple.reading import (
    MAX_FILE_BYTES,
    MAX_GT_LANES,
    MAX_RECORDS,
    load_gt_file,
    load_prediction_file,
)
from harness.evaluators.tusimple.scoring import MAX_RUN_TIME_MS, PIXEL_THRESH, POINT_THRESH

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_GT_LANES",
    "MAX_RECORDS",
    "MAX_RUN_TIME_MS",
    "METRICS",
    "PIXEL_THRESH",
    "POINT_THRESH",
    "TuSimpleEvaluator",
    "as_percent",
    "eval_files",
    "evaluate_predictions",
    "load_gt_file",
    "load_prediction_file",
    "score_files",
]
