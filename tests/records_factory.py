"""Synthetic results records for the report tests, built from a real record (the committed CI baseline) so they have
the layout `benchmark run` writes; only the fields a test is about are changed."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines" / "ci_digits.json"


@lru_cache(maxsize=1)
def _template() -> str:
    return json.dumps(json.loads(BASELINE.read_text())[0])


def make_record(method: str = "slr", rate: float = 4.0, seed: int = 0, hardpruned: float = 90.0,
                retrained: float | None = None, dense: float = 98.0, status: str = "completed",
                **config: Any) -> dict[str, Any]:
    """One record; `config` keys override `config[...]` (dotted names reach into nested dicts: "settings.rho")."""
    rec = json.loads(_template())
    retrained = hardpruned + 5.0 if retrained is None else retrained
    rec.update(method=method, rate_requested=rate, status=status,
               run_id=f"digits-cnn-{method}-{rate:g}x-s{seed}-{abs(hash(json.dumps(config, sort_keys=True))) % 10**8}")
    rec["metrics"] = {"dense": dense, "hardpruned": hardpruned, "retrained": retrained, "retrained_best": retrained}
    rec["metrics_full"] = {"dense": {"top1": dense}, "hardpruned": {"top1": hardpruned}, "retrained": {"top1": retrained}}
    rec["compression"]["achieved"] = {rule: rate for rule in rec["compression"]["achieved"]}
    cfg = rec["config"]
    cfg.update(method=method, rate=rate, seed=seed)
    cfg["settings"]["seed"] = seed
    cfg["method_config"]["method"] = method
    rec["provenance"]["seed"] = seed
    rec["provenance"]["started"] = f"2026-01-01T00:00:{seed:02d}+00:00"
    for key, value in config.items():
        node = cfg
        *path, leaf = key.split(".")
        for part in path:
            node = node[part]
        node[leaf] = value
    return copy.deepcopy(rec)
