"""Every metric of the harness, behind the evaluator protocol of harness/evaluation.py (reset / process / evaluate).

`topk` (classification top-1/top-5), `tusimple` (lane Accuracy / FP / FN, official LaneEval semantics) and `coco`
(bbox AP, COCO API semantics); each evaluator class has a `name` and a `version` for the records. Accuracy-like
metrics are reported in percent. `records.RecordEvaluator` is the accumulate-then-score shape COCO and TuSimple
share; `text.describe` keeps error messages about hostile input short and safe.
"""
