"""Regression checks: measured results against reported numbers (a paper table CSV) or against a previous run's records.

Cells are matched on (task, model, method, rate within `rate_tol` relative, phase, metric). The measured value of a
cell is the mean over the matching completed records (seeds); its rate is the requested rate, or the achieved rate
under the task's headline rule when the run was driven by a prune config.

Tolerance semantics (`tol`, absolute, in the table's units, e.g. accuracy points):

* one-sided (default): a cell fails only if it is *worse* than the reference by more than `tol`
  (measured < reported - tol for higher-is-better metrics; measured > reported + tol for lower-is-better ones).
  Being better is never a regression.
* two-sided (`two_sided=True`): a cell fails if |measured - reported| > tol (use it to pin a deterministic baseline).

A reference cell with no matching record is "not run": listed, not a failure. A matching record whose run failed
is a failure ("run failed"): a crash is a regression.
"""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.errors import UserError
from harness.results import check_version, load_records

PHASES = ("dense", "hardpruned", "retrained")
TABLE_COLUMNS = ("table", "row", "task", "model", "method", "rate", "metric", "value", "phase", "source")


@dataclass
class Reference:
    """One reported number."""

    task: str
    model: str
    method: str
    rate: float | None
    phase: str
    metric: str
    value: float
    table: str = ""
    row: str = ""
    source: str = ""
    measured_scale: float = 1.0  # multiply the harness's value by this to get the table's unit (all tables: 1)
    n: int = 1


@dataclass
class Check:
    ref: Reference
    measured: float | None
    n: int
    result: str  # pass | FAIL | not run | not comparable
    reason: str = ""
    run_ids: list[str] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else self.measured - self.ref.value


def _float(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def read_table(path: str | Path) -> list[Reference]:
    """A reported-results CSV (benchmarks/tables/*.csv)."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise UserError(f"table {path} does not exist") from None
    if not rows:
        raise UserError(f"table {path} has no rows")
    missing = [c for c in TABLE_COLUMNS if c not in rows[0]]
    if missing:
        raise UserError(f"table {path} lacks column(s) {', '.join(missing)}; expected {', '.join(TABLE_COLUMNS)}")
    refs = []
    for i, row in enumerate(rows, start=2):
        try:
            refs.append(Reference(
                task=row["task"], model=row["model"], method=row["method"], rate=_float(row["rate"]),
                phase=row["phase"], metric=row["metric"], value=float(row["value"]), table=row["table"],
                row=row["row"], source=row["source"], measured_scale=_float(row.get("measured_scale")) or 1.0,
            ))
        except (TypeError, ValueError) as exc:
            raise UserError(f"table {path} line {i}: {exc}") from None
    return refs


def cell_rate(rec: dict[str, Any]) -> float | None:
    """The rate a record is filed under: requested, else achieved under the task's headline rule."""
    if rec.get("rate_requested") is not None:
        return float(rec["rate_requested"])
    comp = rec.get("compression") or {}
    return (comp.get("achieved") or {}).get(comp.get("headline_rule", "paper"))


def phase_value(rec: dict[str, Any], phase: str, metric: str) -> float | None:
    full = (rec.get("metrics_full") or {}).get(phase) or {}
    if metric in full and isinstance(full[metric], (int, float)):
        return float(full[metric])
    if metric == rec.get("metric"):
        v = (rec.get("metrics") or {}).get(phase)
        return float(v) if isinstance(v, (int, float)) else None
    return None


def load_checked(source: str | Path) -> list[dict[str, Any]]:
    """Records from any source, refusing unknown schema versions (one clear line, exit 2)."""
    records = load_records(source)
    for rec in records:
        check_version(rec, f"{source} (run {rec.get('run_id', '?')})")
    return records


def references_from_records(records: Iterable[dict[str, Any]]) -> list[Reference]:
    """A user's baseline: every metric of every phase of the completed records, averaged over seeds."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    for rec in records:
        if rec.get("status") != "completed":
            continue
        rate = cell_rate(rec)
        for phase in PHASES:
            for metric, value in ((rec.get("metrics_full") or {}).get(phase) or {}).items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    acc[(rec["task"], rec["model"], rec["method"], rate, phase, metric)].append(float(value))
    refs = []
    for (task, model, method, rate, phase, metric), values in acc.items():
        refs.append(Reference(task=task, model=model, method=method, rate=rate, phase=phase, metric=metric,
                              value=sum(values) / len(values), table="baseline", row=f"{task}/{model}",
                              source="baseline records", n=len(values)))
    return refs


def load_references(against: str | Path) -> list[Reference]:
    """A CSV table of reported numbers, or a previous results store / JSON / run folder."""
    path = Path(against)
    if path.suffix == ".csv":
        return read_table(path)
    return references_from_records(load_checked(path))


def rate_matches(a: float | None, b: float | None, rel: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * abs(b)


def compare(refs: list[Reference], records: list[dict[str, Any]], tol: float = 0.5, two_sided: bool = False,
            rate_tol: float = 0.01) -> list[Check]:
    """One Check per reference cell."""
    by_key: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_key[(rec.get("task"), rec.get("model"), rec.get("method"))].append(rec)
    checks = []
    for ref in refs:
        if ref.phase not in PHASES:
            checks.append(Check(ref, None, 0, "not comparable", f"phase {ref.phase!r} is not one the harness measures"))
            continue
        # method "*" (dense baselines) matches every method: all of them start from the same dense model.
        pool = ([r for (t, m, _), recs in by_key.items() if (t, m) == (ref.task, ref.model) for r in recs]
                if ref.method == "*" else by_key.get((ref.task, ref.model, ref.method), []))
        cands = [r for r in pool if rate_matches(cell_rate(r), ref.rate, rate_tol)]
        done = [r for r in cands if r.get("status") == "completed"]
        failed = [r for r in cands if r.get("status") == "failed"]
        if not done:
            if failed:
                checks.append(Check(ref, None, 0, "FAIL", f"run failed: {failed[0].get('error')}",
                                    [r["run_id"] for r in failed]))
            else:
                checks.append(Check(ref, None, 0, "not run", "no matching completed record"))
            continue
        values = [v for v in (phase_value(r, ref.phase, ref.metric) for r in done) if v is not None]
        if not values:
            checks.append(Check(ref, None, 0, "not comparable",
                                f"records lack metric {ref.metric!r} in phase {ref.phase!r}", [r["run_id"] for r in done]))
            continue
        measured = ref.measured_scale * sum(values) / len(values)
        higher = done[0].get("higher_is_better", True) is not False
        delta = measured - ref.value
        if two_sided:
            ok = abs(delta) <= tol
        else:
            ok = delta >= -tol if higher else delta <= tol
        reason = "" if ok else (f"|delta| {abs(delta):.3f} > tol {tol}" if two_sided else
                                f"{'below' if higher else 'above'} reference by {abs(delta):.3f} > tol {tol}")
        checks.append(Check(ref, measured, len(values), "pass" if ok else "FAIL", reason, [r["run_id"] for r in done]))
    return checks


def write_junit(checks: list[Check], path: str | Path, name: str = "prunebench.regress") -> None:
    """JUnit XML: one testcase per reference cell; FAIL -> <failure>, not run / not comparable -> <skipped>."""
    suite = ET.Element("testsuite", name=name, tests=str(len(checks)),
                       failures=str(sum(c.result == "FAIL" for c in checks)),
                       skipped=str(sum(c.result in ("not run", "not comparable") for c in checks)))
    for c in checks:
        r = c.ref
        rate = f"{r.rate:g}x" if r.rate is not None else "cfg"
        case = ET.SubElement(suite, "testcase", classname=f"{r.table or 'table'}.{r.task}.{r.model}",
                             name=f"{r.method} {rate} {r.phase} {r.metric}")
        detail = (f"reported {r.value:.3f}; measured {c.measured:.3f} (n={c.n}); delta {c.delta:+.3f}"
                  if c.measured is not None else f"reported {r.value:.3f}; no measurement")
        if c.result == "FAIL":
            ET.SubElement(case, "failure", message=c.reason).text = f"{detail}; source: {r.source}"
        elif c.result in ("not run", "not comparable"):
            ET.SubElement(case, "skipped", message=f"{c.result}: {c.reason}")
        else:
            ET.SubElement(case, "system-out").text = f"{detail}; source: {r.source}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
