"""Regression checks: measured results against reported numbers (a paper table CSV) or against a previous run's records.

Cells are matched on (task, model, method, rate within `rate_tol` relative, phase, metric). The measured value of a
cell is the mean over the matching completed records, one per distinct seed; its rate is the requested rate, or the
achieved rate under the task's headline rule when the run was driven by a prune config.

Experiment identity (harness/identity.py): a reference made from previous records carries its config, and only
records of the same config (seed aside) are compared with it; when records match only loosely (same task, model,
method and rate, another config) the check is "not comparable" and names the keys that differ. A paper table has no
config: its cell is compared with the records only when they are all one config, never with a mix.

Nothing compared is an error, not a pass: when no check compared a measurement (an empty folder, `[]`, only
interrupted records, or no record matching any reference), `compare` raises `UserError` (exit 2, the CLI's
usage-error code), naming why.

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
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.errors import UserError
from harness.identity import cell_rate, describe_difference, differing_keys, experiment_key
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
    key: str | None = None  # experiment identity (harness.identity) when the reference came from records
    config: dict[str, Any] | None = None  # the `described` config behind `key`


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
            ref = Reference(
                task=row["task"], model=row["model"], method=row["method"], rate=_float(row["rate"]),
                phase=row["phase"], metric=row["metric"], value=float(row["value"]), table=row["table"],
                row=row["row"], source=row["source"], measured_scale=_float(row.get("measured_scale")) or 1.0,
            )
        except (TypeError, ValueError) as exc:
            raise UserError(f"table {path} line {i}: {exc}") from None
        for name in ("value", "rate", "measured_scale"):
            x = getattr(ref, name)
            if x is not None and not math.isfinite(x):
                raise UserError(f"table {path} line {i}: {name} {x} is not a finite number")
        refs.append(ref)
    return refs


def phase_value(rec: dict[str, Any], phase: str, metric: str) -> float | None:
    """The record's finite value of `metric` in `phase`, else None (a NaN is no measurement)."""
    full = (rec.get("metrics_full") or {}).get(phase) or {}
    if metric in full:
        v = full.get(metric)
    else:
        v = (rec.get("metrics") or {}).get(phase) if metric == rec.get("metric") else None
    return float(v) if _is_number(v) else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metric_unit(metric: str | None) -> str:
    """The unit a metric is reported in: accuracy-like metrics (top-k, TuSimple Accuracy/FP/FN, COCO AP) are in
    percent in every record and table; anything else is unitless."""
    name = (metric or "").lower()
    return "%" if re.fullmatch(r"top\d+|acc(uracy)?|fp|fn|ap\d*|map\d*|ap50(-95)?|map50(-95)?", name) else ""


def load_checked(source: str | Path) -> list[dict[str, Any]]:
    """Records from any source, refusing unknown schema versions (one clear line, exit 2)."""
    records = load_records(source)
    for rec in records:
        check_version(rec, f"{source} (run {rec.get('run_id', '?')})")
    return records


def one_per_seed(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completed records, one per (experiment, seed): a seed run twice counts once (the later run)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        if rec.get("status") != "completed":
            continue
        slot = (experiment_key(rec)[0], json.dumps((rec.get("config") or {}).get("seed")))
        started = str((rec.get("provenance") or {}).get("started") or "")
        prev = latest.get(slot)
        if prev is None or started >= str((prev.get("provenance") or {}).get("started") or ""):
            latest[slot] = rec
    return list(latest.values())


def references_from_records(records: Iterable[dict[str, Any]]) -> list[Reference]:
    """A user's baseline: every metric of every phase of the completed records, averaged over the seeds of each
    experiment (config minus seed); each reference keeps its config so only the same experiment is compared."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    described: dict[str, dict[str, Any]] = {}
    for rec in one_per_seed(records):
        key, described[key] = experiment_key(rec)
        for phase in PHASES:
            for metric, value in ((rec.get("metrics_full") or {}).get(phase) or {}).items():
                if _is_number(value):
                    cell = (key, rec["task"], rec["model"], rec["method"], cell_rate(rec), phase, metric)
                    acc[cell].append(float(value))
    refs = []
    for (key, task, model, method, rate, phase, metric), values in acc.items():
        refs.append(Reference(task=task, model=model, method=method, rate=rate, phase=phase, metric=metric,
                              value=sum(values) / len(values), table="baseline", row=f"{task}/{model}",
                              source="baseline records", n=len(values), key=key, config=described[key]))
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


def validate_tolerances(tol: float, rate_tol: float) -> None:
    """Negative or NaN tolerances would make every drop pass (NaN compares false): refuse them."""
    for name, value in (("--tol", tol), ("--rate-tol", rate_tol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{name} must be a finite number >= 0, got {value}")


def _closest(ref_config: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    return min((experiment_key(r)[1] for r in records), key=lambda d: len(differing_keys(ref_config, d)))


def _configs_disagree(records: list[dict[str, Any]]) -> str | None:
    """For a reference without a config (a paper table): a reason when the records are several experiments."""
    configs = {experiment_key(r)[0]: experiment_key(r)[1] for r in records}
    if len(configs) < 2:
        return None
    first, second = list(configs.values())[:2]
    return (f"{len(configs)} different configs match this cell ({describe_difference(first, second)}); "
            "regress records of one config")


def _check_cell(ref: Reference, pool: list[dict[str, Any]], tol: float, two_sided: bool, rate_tol: float) -> Check:
    cands = [r for r in pool if rate_matches(cell_rate(r), ref.rate, rate_tol)]
    failed = [r for r in cands if r.get("status") == "failed"
              and (ref.key is None or experiment_key(r)[0] == ref.key)]  # another experiment's crash is not this one's
    done = one_per_seed(cands)
    if ref.key is not None:
        loose, done = done, [r for r in done if experiment_key(r)[0] == ref.key]
        if loose and not done and not failed:
            diff = describe_difference(ref.config or {}, _closest(ref.config or {}, loose))
            reason = f"config differs from the reference: {diff} (reference vs measured)"
            return Check(ref, None, 0, "not comparable", reason, [r["run_id"] for r in loose])
    if not done:
        if failed:
            return Check(ref, None, 0, "FAIL", f"run failed: {failed[0].get('error')}", [r["run_id"] for r in failed])
        return Check(ref, None, 0, "not run", "no matching completed record")
    mixed = _configs_disagree(done) if ref.key is None else None
    if mixed:
        return Check(ref, None, 0, "not comparable", mixed, [r["run_id"] for r in done])
    values = [v for v in (phase_value(r, ref.phase, ref.metric) for r in done) if v is not None]
    if not values:
        return Check(ref, None, 0, "not comparable", f"records lack a finite {ref.metric!r} in phase {ref.phase!r}",
                     [r["run_id"] for r in done])
    measured = ref.measured_scale * sum(values) / len(values)
    higher = done[0].get("higher_is_better", True) is not False
    delta = measured - ref.value
    ok = abs(delta) <= tol if two_sided else (delta >= -tol if higher else delta <= tol)
    reason = "" if ok else (f"|delta| {abs(delta):.3f} > tol {tol}" if two_sided else
                            f"{'below' if higher else 'above'} reference by {abs(delta):.3f} > tol {tol}")
    return Check(ref, measured, len(values), "pass" if ok else "FAIL", reason, [r["run_id"] for r in done])


def compare(refs: list[Reference], records: list[dict[str, Any]], tol: float = 0.5, two_sided: bool = False,
            rate_tol: float = 0.01, allow_empty: bool = False) -> list[Check]:
    """One Check per reference cell. Raises UserError for invalid tolerances and, unless `allow_empty`, when no
    check compared anything (a regression run that checked nothing must not pass)."""
    validate_tolerances(tol, rate_tol)
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
        checks.append(_check_cell(ref, pool, tol, two_sided, rate_tol))
    if not allow_empty:
        require_checks(checks, records)
    return checks


def require_checks(checks: list[Check], records: list[dict[str, Any]]) -> None:
    """UserError (one line) when no check compared a measurement or found a failed run."""
    if any(c.result in ("pass", "FAIL") for c in checks):
        return
    completed = sum(r.get("status") == "completed" for r in records)
    if not records:
        why = "the results hold no records"
    elif not completed:
        statuses = sorted({str(r.get("status")) for r in records})
        why = f"none of the {len(records)} records is completed (status: {', '.join(statuses)})"
    elif not checks:
        why = "the reference holds no cells"
    else:
        counts = {k: sum(c.result == k for c in checks) for k in ("not run", "not comparable")}
        why = f"no reference cell matched a completed record ({counts['not run']} not run, " \
              f"{counts['not comparable']} not comparable)"
        first = next((c for c in checks if c.result == "not comparable"), None)
        if first is not None:
            why += f"; e.g. {first.ref.method} {first.ref.rate:g}x: {first.reason}" if first.ref.rate is not None \
                else f"; e.g. {first.ref.method}: {first.reason}"
    raise UserError(f"nothing was checked: {why}")


def report_lines(checks: list[Check]) -> list[str]:
    """Plain-text lines for the checks a user must read: every FAIL and every "not comparable" with its reason (which
    config keys differ), then the counts."""
    lines = []
    for c in checks:
        if c.result in ("FAIL", "not comparable"):
            rate = f"{c.ref.rate:g}x" if c.ref.rate is not None else "cfg"
            lines.append(f"{c.result} {c.ref.method} {rate} {c.ref.phase} {c.ref.metric}: {c.reason}")
    n = {k: sum(c.result == k for c in checks) for k in ("pass", "FAIL", "not run", "not comparable")}
    lines.append(f"{n['pass']} passed, {n['FAIL']} failed, {n['not run']} not run (not failures), "
                 f"{n['not comparable']} not comparable")
    return lines


def check_to_dict(c: Check) -> dict[str, Any]:
    """A check as plain data; non-finite numbers become None (JSON has no NaN)."""
    doc = {"table": c.ref.table, "row": c.ref.row, "task": c.ref.task, "model": c.ref.model, "method": c.ref.method,
           "rate": c.ref.rate, "phase": c.ref.phase, "metric": c.ref.metric, "reported": c.ref.value,
           "measured": c.measured, "n": c.n, "delta": c.delta, "result": c.result, "reason": c.reason,
           "run_ids": c.run_ids}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in doc.items()}


def checks_json(checks: list[Check]) -> str:
    """The checks as strict JSON (allow_nan=False: a NaN left anywhere is a bug, not output)."""
    return json.dumps([check_to_dict(c) for c in checks], indent=1, allow_nan=False)


# XML 1.0 admits tab, LF, CR and the ranges below; ANSI colour/cursor sequences are stripped as whole sequences first.
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: Any) -> str:
    """Text safe for an XML attribute or element: no ANSI escapes, no characters XML 1.0 forbids (NUL, controls)."""
    return _NOT_XML.sub("", _ANSI.sub("", str(text)))


def check_junit_target(path: str | Path) -> None:
    """Refuse to overwrite anything but a previous JUnit report (or an empty file): `--junit prunebench.sqlite`
    must not destroy a results store."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise UserError(f"--junit {path} is a directory; give a file name such as regress.xml")
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"SQLite format 3\x00"):
        raise UserError(f"--junit {path} is a results store (SQLite); refusing to overwrite it, choose another file")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError):
        root = None
    if root is None or root.tag not in ("testsuite", "testsuites"):
        raise UserError(f"--junit {path} exists and is not a JUnit XML report; refusing to overwrite it")


def write_junit(checks: list[Check], path: str | Path, name: str = "prunebench.regress") -> None:
    """JUnit XML: one testcase per reference cell; FAIL -> <failure>, not run / not comparable -> <skipped>.
    Every text is passed through `xml_text`, so error messages with ANSI codes or control characters stay valid XML."""
    check_junit_target(path)
    suite = ET.Element("testsuite", name=xml_text(name), tests=str(len(checks)),
                       failures=str(sum(c.result == "FAIL" for c in checks)),
                       skipped=str(sum(c.result in ("not run", "not comparable") for c in checks)))
    for c in checks:
        r = c.ref
        rate = f"{r.rate:g}x" if r.rate is not None else "cfg"
        case = ET.SubElement(suite, "testcase", classname=xml_text(f"{r.table or 'table'}.{r.task}.{r.model}"),
                             name=xml_text(f"{r.method} {rate} {r.phase} {r.metric}"))
        detail = (f"reported {r.value:.3f}; measured {c.measured:.3f} (n={c.n}); delta {c.delta:+.3f}"
                  if c.measured is not None else f"reported {r.value:.3f}; no measurement")
        if c.result == "FAIL":
            ET.SubElement(case, "failure", message=xml_text(c.reason)).text = xml_text(f"{detail}; source: {r.source}")
        elif c.result in ("not run", "not comparable"):
            ET.SubElement(case, "skipped", message=xml_text(f"{c.result}: {c.reason}"))
        else:
            ET.SubElement(case, "system-out").text = xml_text(f"{detail}; source: {r.source}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
