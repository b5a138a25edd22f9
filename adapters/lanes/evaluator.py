"""The TuSimple evaluator of the harness protocol (`reset` / `process(batch, outputs)` / `evaluate`).

`process` decodes each batch into UFLD prediction records; `evaluate` scores them against the test GT with
`harness.evaluators.tusimple.evaluate_predictions` (official LaneEval semantics; Accuracy/FP/FN as fractions in
[0, 1], as the official `bench_one_submit` returns them; tables show Accuracy x 100).
"""

from __future__ import annotations

from typing import Any, Sequence

from adapters.lanes.decode import decode_batch


class TuSimpleEvaluator:
    """Collects prediction records over one pass; `records` stays available for writing the prediction file."""

    def __init__(self, gt_records: Sequence[dict]):
        self.gt_records = list(gt_records)
        self.records: list[dict] = []

    def reset(self) -> None:
        self.records = []

    def process(self, batch: Any, outputs: Any) -> None:
        """`batch` is (images, raw_file names) from the test loader; `outputs` the model's logits."""
        self.records.extend(decode_batch(outputs, list(batch[1])))

    def evaluate(self) -> dict[str, float]:
        # Imported here so the adapter loads even where the metric module is absent (it is optional at import time).
        from harness.evaluators.tusimple import evaluate_predictions

        scores = evaluate_predictions(self.records, self.gt_records)
        return {k: float(scores[k]) for k in ("Accuracy", "FP", "FN")}
