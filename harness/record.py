"""The results record of one run, typed, with one constructor and schema validation on every write.

`RunRecord` is what the runner fills in and what `record.json` and the results store hold (as `to_dict()`); the JSON
schema is harness/schema/run_record.schema.json. Readers of stored records (regress, export) keep working with the
plain dicts. A record is written to disk only through `write`, which validates it first, so an invalid record can
never reach a results store.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import UserError
from harness.results import SCHEMA_VERSION, _json_default, check_record, write_record

FINAL_STATUSES = ("completed", "failed", "interrupted")


def _curves() -> dict[str, list[dict[str, Any]]]:
    return {"train": [], "hardprune_checks": [], "retrain": []}


@dataclass
class RunRecord:
    run_id: str
    task: str
    model: str | None
    method: str
    config: dict[str, Any]
    provenance: dict[str, Any]
    status: str = "running"  # running | completed | failed | interrupted
    error: str | None = None
    metric: str | None = None  # the task's primary metric
    higher_is_better: bool | None = None
    rate_requested: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # primary metric per stage (dense, hardpruned, …)
    metrics_full: dict[str, dict[str, float]] = field(default_factory=dict)  # every metric per stage
    compression: dict[str, Any] = field(default_factory=dict)
    epochs: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=_curves)
    updates: list[dict[str, Any]] = field(default_factory=list)  # every SLR/ADMM dual/Z update
    task_info: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    size: dict[str, Any] = field(default_factory=dict)  # the pruned-model file's bytes vs the dense model's
    costs: dict[str, Any] = field(default_factory=dict)  # dense/effective MACs and measured latency
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def start(cls, cfg: RunConfig, run_dir: Path, provenance: dict[str, Any], task: Any = None) -> "RunRecord":
        """The record of a run that is about to start (`task`: the built task, when there is one)."""
        return cls(
            run_id=cfg.run_id(), task=cfg.task, model=cfg.model, method=cfg.method,
            config=cfg.as_record(), provenance=provenance, rate_requested=cfg.rate,
            metric=getattr(task, "primary_metric", None), higher_is_better=getattr(task, "higher_is_better", None),
            task_info=task.describe() if task is not None else {}, artifacts={"dir": str(run_dir)},
        )

    @classmethod
    def failed(cls, cfg: RunConfig, run_dir: Path, provenance: dict[str, Any], error: str) -> "RunRecord":
        """A record for a run that failed before or outside the runner's own bookkeeping (a sweep cell)."""
        rec = cls.start(cfg, run_dir, provenance)
        rec.status, rec.error = "failed", error
        return rec

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "RunRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def restore_progress(self, saved: dict[str, Any]) -> None:
        """Take the progress of a resumed run from its checkpoint's copy of the record."""
        for key in ("metrics", "metrics_full", "curves", "updates", "epochs", "timing"):
            if key in saved:
                setattr(self, key, saved[key])

    def validate(self) -> dict[str, Any]:
        """The record as it lands on disk, checked against the schema (a violation is a bug: ValueError)."""
        doc = json.loads(json.dumps(self.to_dict(), default=_json_default))
        try:
            return check_record(doc, f"run record {self.run_id}")
        except UserError as exc:
            raise ValueError(f"{exc} (the schema is violated: a prunebench bug)") from None

    def write(self, path: Path) -> None:
        """Validate, then write atomically. A completed record on disk is never replaced by an unfinished one."""
        if not write_record(path, self.validate()):
            raise UserError(f"{path} already holds a completed record; not replacing it with a {self.status} one")
