"""Entry points of the TuSimple metric: in-memory records, files, and the harness evaluator protocol.

Two units, named by the function: `evaluate_predictions` and `eval_files` return the official tool's **fractions**
in [0, 1] (what `bench_one_submit` prints; `benchmarks/perf/bench_tusimple_eval.py` compares them with it), while
`score_files` and `TuSimpleEvaluator` return **percent** (x 100, full precision), the unit of every prunebench
record, table and CLI output.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from harness.evaluators.records import RecordEvaluator
from harness.evaluators.tusimple.reading import file_where, pack_gt, pack_pred, read_jsonl, record_where
from harness.evaluators.tusimple.scoring import score

METRICS: tuple[str, ...] = ("Accuracy", "FP", "FN")


def as_percent(fractions: dict[str, float]) -> dict[str, float]:
    """Official fractions -> percent, the project's unit for accuracy-like metrics (no rounding)."""
    return {k: 100.0 * float(fractions[k]) for k in METRICS}


def evaluate_predictions(pred_records: list[dict], gt_records: list[dict]) -> dict[str, float]:
    """Official TuSimple scores of prediction records against GT records: {"Accuracy", "FP", "FN"} as fractions.

    Records are parsed JSON objects as in the official files (`raw_file`, `lanes`, `run_time` for predictions;
    `raw_file`, `lanes`, `h_samples` for GT); `lanes` may also be numpy arrays. Every GT image needs exactly one
    prediction and vice versa. Raises `DataError` on bad input.
    """
    gt_where = record_where("ground-truth", gt_records)
    gt = pack_gt(gt_records, gt_where, None)
    pred = pack_pred(
        pred_records, record_where("prediction", pred_records), None, gt, gt_where, "predictions", "the ground truth"
    )
    return score(gt, pred)


def eval_files(pred_path: str | Path, gt_path: str | Path) -> dict[str, float]:
    """Official TuSimple scores of a prediction file against a GT file as **fractions** (`bench_one_submit`)."""
    with _no_gc():
        gt_records, gt_lines, gt_suspects = read_jsonl(gt_path, "ground-truth")
        gt_where = file_where(gt_path, gt_lines)
        gt = pack_gt(gt_records, gt_where, gt_suspects)
        pred_records, pred_lines, pred_suspects = read_jsonl(pred_path, "prediction")
        pred = pack_pred(
            pred_records, file_where(pred_path, pred_lines), pred_suspects, gt, gt_where, str(pred_path), str(gt_path)
        )
        # Free the parsed objects while the collector is still off; re-enabling it with them alive would make the
        # next collection walk them all.
        del gt_records, pred_records
    return score(gt, pred)


def score_files(pred_path: str | Path, gt_path: str | Path) -> dict[str, float]:
    """`eval_files` in percent: what `benchmark eval --task tusimple` reports."""
    return as_percent(eval_files(pred_path, gt_path))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small objects are parsed: they hold no cycles, and the
    collector's repeated passes over them cost ~10 % of an evaluation. Restores the previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class TuSimpleEvaluator(RecordEvaluator):
    """The harness evaluator (reset / process / evaluate) over TuSimple prediction records.

    `process(batch, outputs)` takes the task's decoded prediction records (one dict per image, as written to the
    prediction file; `adapters/lanes/decode.py`), so the metric needs no model code. `records` keeps them for
    writing the prediction file; `evaluate()` scores them against the GT records in percent.
    """

    name = "tusimple"
    version = "2"  # 1: fractions; 2: percent (same official LaneEval semantics)

    def __init__(self, gt_records: Sequence[dict]):
        self.gt_records = list(gt_records)
        super().__init__()

    def score(self, records: list[dict]) -> dict[str, float]:
        return as_percent(evaluate_predictions(records, self.gt_records))
