"""Experiment identity: which records are runs of the same experiment (differing only in the seed).

A leaderboard cell and a regression check average over seeds; they must never average runs of different experiments
(a 1-epoch and a 4-epoch run, two learning rates, two dense models). The identity of a record is its full resolved
config minus the seed and minus the keys that only say where or how a run was executed (store, output folder, device,
workers, checkpointing, resuming), plus the data fingerprint from `task_info` and the dense weights' sha256 from
`provenance` when the record has them.

The config layout is not hard-coded: every leaf of `record["config"]` counts (nested dicts such as `settings` are
flattened to dotted keys) unless its last name component is in `EXCLUDE`. A new knob therefore splits cells by
default, which is the safe direction: two rows that could have been one are untidy, one row that should have been two
is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from harness.config import RunConfig

# Leaf names that do not change a run's results: the seed (averaged over), where outputs go, how the run is executed.
EXCLUDE = frozenset({
    "seed", "store", "out", "out_dir", "output", "run_dir", "run_id", "device", "workers", "checkpoint_every",
    "keep_checkpoint", "resume", "progress", "log_every", "dry_run", "shard", "stale_after", "junit", "tracker",
    "tensorboard", "mlflow", "trust_weights",
    # derived from the method and its settings (both part of the key): its method-specific entries would put methods
    # of one experiment on different rows
    "method_config", "schedule",
}) | frozenset(RunConfig.NOT_IDENTITY)  # whatever the run id ignores, a leaderboard cell ignores too
# Input files named by path: the path differs between machines while the content is the identity. Each is replaced
# by its content hash when the record has one (the key of the hash in `_HASHED_BY`), otherwise by its file name.
_INPUT_PATHS = ("data", "weights", "prune_config")
_HASHED_BY = {"data": "data_fingerprint", "weights": "weights_sha256"}


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists become JSON text so the result is hashable and comparable."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if str(key) in EXCLUDE or value is None:
            continue  # unset (None) is the same as absent: a knob added later with default None changes nothing
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, float) and not math.isfinite(value):
            out[name] = str(value)  # NaN != NaN would make a record differ from itself
        else:
            out[name] = value
    return out


def _data_fingerprint(task_info: dict[str, Any]) -> Any:
    """The task's data fingerprint, whatever the task calls it (`data_fingerprint`, `fingerprint`, `dataset_sha256`)."""
    for key, value in sorted(task_info.items()):
        if "fingerprint" in key or key.endswith("sha256"):
            return value
    return None


def experiment_key(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, described): `key` is equal for two records iff they ran the same experiment (seed aside); `described`
    is the flat dict the key is made of, for naming what differs (`differing_keys`)."""
    config = record.get("config") or {}
    described = _flatten(config)
    for name in ("task", "model", "method"):
        described.setdefault(name, record.get(name))
    if "rate" not in described and record.get("rate_requested") is not None:
        described["rate"] = record.get("rate_requested")
    hashes = {
        "data_fingerprint": _data_fingerprint(record.get("task_info") or {}),
        "weights_sha256": (record.get("provenance") or {}).get("weights_sha256"),
    }
    for name, value in hashes.items():
        if value is not None:
            described[name] = value
    for name in _INPUT_PATHS:
        value = described.get(name)
        if value is None:
            continue
        if _HASHED_BY.get(name) in described:
            del described[name]  # the content hash identifies it; the path is machine-specific
        else:
            described[name] = PurePath(str(value)).name
    key = json.dumps(described, sort_keys=True, default=str)
    return key, described


def differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two `described` dicts; a key set on one side only differs
    (`described` holds no None: unset and absent are the same)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# Sections that hold the method's knobs (the requested settings and the resolved method config): their keys are named
# by the knob alone ("rho", not "method_config.rho"); keys of any other nested dict keep their path ("schedule.kind").
_KNOB_SECTIONS = ("settings.", "method_config.")


def _short(key: str) -> str:
    for section in _KNOB_SECTIONS:
        if key.startswith(section):
            return key[len(section):]
    return key


def describe_difference(a: dict[str, Any], b: dict[str, Any], limit: int = 6) -> str:
    """One line naming what differs, e.g. "epochs 1 vs 4, rho 0.1 vs 1". A knob stored in both method sections
    (`settings.rho`, `method_config.rho`) with the same values is named once, by its name."""
    seen: set[tuple[str, str, str]] = set()
    parts = []
    for key in differing_keys(a, b):
        va, vb = _fmt_value(a.get(key)), _fmt_value(b.get(key))
        sig = (_short(key), va, vb)
        if sig in seen:
            continue
        seen.add(sig)
        parts.append(f"{_short(key)} {va} vs {vb}")
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f", … (+{more} more)" if more > 0 else "")


def _fmt_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def distinguishing_label(described: dict[str, Any], keys: list[str]) -> str:
    """"k=v, …" for the given keys (knob names; a knob in both method sections named once); "" for none."""
    seen: set[tuple[str, str]] = set()
    parts = []
    for key in sorted(keys, key=lambda k: (_short(k), k)):
        if key not in described:
            continue
        item = (_short(key), _fmt_value(described[key]))
        if item not in seen:
            seen.add(item)
            parts.append(f"{item[0]}={item[1]}")
    return ", ".join(parts)


# ---- cells: the records of one experiment per method, side by side ------------------------------------------------
def cell_rate(rec: dict[str, Any]) -> float | None:
    """The rate a record is filed under: requested, else achieved under the task's headline rule."""
    if rec.get("rate_requested") is not None:
        return float(rec["rate_requested"])
    comp = rec.get("compression") or {}
    return (comp.get("achieved") or {}).get(comp.get("headline_rule", "paper"))


@dataclass
class Cell:
    """One leaderboard row: the same (task, model, rate) and config apart from the method, one record per seed."""

    task: str
    model: str
    rate: float | None
    label: str  # what distinguishes this row's config from the other rows at the same (task, model, rate)
    methods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> `described`


def _started(rec: dict[str, Any]) -> str:
    return str((rec.get("provenance") or {}).get("started") or "")


def varying_keys(configs_by_method: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The keys that tell configs apart: those that differ between configs of one method, and settings two methods
    both have with other values (epochs, lr, ρ: a 4-epoch SLR beside a 1-epoch ADMM is no comparison). Keys only one
    method has are its own knobs and do not separate methods."""
    varying: set[str] = set()
    for configs in configs_by_method.values():
        for other in configs[1:]:
            varying.update(differing_keys(configs[0], other))
    flat = [c for configs in configs_by_method.values() for c in configs]
    for i, a in enumerate(flat):
        for b in flat[i + 1:]:
            varying.update(k for k in differing_keys(a, b) if k in a and k in b and _short(k) != "method")
    return varying


def cell_groups(records: list[dict[str, Any]]) -> list[Cell]:
    """Completed records grouped into cells. Within a (task, model, rate), a method run under several configs gets one
    row per config, labelled with the keys that differ between its configs (e.g. "epochs=1" / "epochs=4"), and so do
    methods whose shared settings differ from each other's; other methods join the row whose label their config
    matches, and a method with one config that has none of those keys (magnitude beside SLR runs that differ in s0)
    is shown in every row. A seed run twice counts once (latest)."""
    variants: dict[tuple, dict[str, Any]] = {}  # (task, model, rate, method, key) -> {"described", "by_seed"}
    for rec in records:
        if rec.get("status") != "completed":
            continue
        key, described = experiment_key(rec)
        rate = cell_rate(rec)
        rate = round(float(rate), 4) if rate is not None else None
        slot = variants.setdefault((rec.get("task"), rec.get("model"), rate, rec.get("method"), key),
                                   {"described": described, "by_seed": {}})
        seed = json.dumps((rec.get("config") or {}).get("seed"))
        prev = slot["by_seed"].get(seed)
        if prev is None or _started(rec) >= _started(prev):
            slot["by_seed"][seed] = rec
    per_group: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for (task, model, rate, method, _key), slot in variants.items():
        per_group.setdefault((task, model, rate), {}).setdefault(method, []).append(slot)
    cells: list[Cell] = []
    for (task, model, rate), methods in per_group.items():
        varying = varying_keys({m: [slot["described"] for slot in slots] for m, slots in methods.items()})
        rows: dict[str, Cell] = {}
        shared: list[tuple[str, dict[str, Any]]] = []
        for method, slots in sorted(methods.items()):
            for slot in slots:
                label = distinguishing_label(slot["described"], sorted(varying))
                if varying and not label and len(slots) == 1:
                    shared.append((method, slot))
                    continue
                cell = rows.setdefault(label, Cell(task, model, rate, label))
                cell.methods[method] = sorted(slot["by_seed"].values(), key=_started)
                cell.configs[method] = slot["described"]
        if shared and not rows:
            rows[""] = Cell(task, model, rate, "")
        for method, slot in shared:
            for cell in rows.values():
                cell.methods[method] = sorted(slot["by_seed"].values(), key=_started)
                cell.configs[method] = slot["described"]
        cells.extend(rows.values())
    cells.sort(key=lambda c: (str(c.task), str(c.model), c.rate is None, c.rate or 0.0, c.label))
    return cells
