"""The shared shape of evaluators that score a whole pass at once (COCO detections, TuSimple lane records)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable


class RecordEvaluator(ABC):
    """Collects the task's output records (one dict per detection or image) over a pass; `evaluate()` scores them.

    Such metrics are not sums over batches (AP ranks all detections; TuSimple averages over the GT images), so
    `process` only accumulates and `records` stays available afterwards (e.g. to write a prediction file).
    """

    name: ClassVar[str]
    version: str

    def __init__(self) -> None:
        self.records: list[dict] = []

    def reset(self) -> None:
        self.records = []

    def process(self, batch: Any, outputs: Iterable[dict]) -> None:
        self.records.extend(outputs)

    def partial(self) -> list[dict]:
        return self.records

    def merge(self, partials: list[list[dict]]) -> None:
        """The records of a pass split over processes, in dataset order (the parts come in rank order)."""
        self.records = [r for part in partials for r in part]

    def evaluate(self) -> dict[str, float]:
        return self.score(self.records)

    @abstractmethod
    def score(self, records: list[dict]) -> dict[str, float]:
        """The metrics of one pass's records (accuracy-like ones in percent)."""
