"""Leaderboard export: records -> one row per (task, model, rate), one column group per method.

Per method: hard-pruned and retrained metric (mean ± std over seeds, n), achieved compression rate (the task's headline
rule), and epochs to the hard-prune threshold (when `--early-stop` was used). The best method per row is marked for
the hard-pruned and the retrained metric (respecting higher/lower-is-better).

Formats: md (markdown table), csv (flat: one line per task/model/rate/method, the leaderboard convention of
ecosystem.md §2.6), json (the same rows), html (one self-contained page: table + figures inlined as base64 PNG),
records (the raw records as a JSON list: what `benchmark regress --against` and `load_records` read back).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.regress import cell_rate, load_checked
from harness.results import write_json_atomic

FORMATS = ("md", "csv", "json", "html", "records")
PHASES = ("hardpruned", "retrained")


def _stat(values: list[float]) -> dict[str, Any] | None:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def leaderboard(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows {task, model, rate, metric, higher_is_better, methods: {method: {...}}, best: {phase: method}}."""
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "completed":
            rate = cell_rate(r)
            cells[(r["task"], r["model"], round(rate, 4) if rate else None, r["method"])].append(r)
    rows: dict[tuple, dict[str, Any]] = {}
    for (task, model, rate, method), recs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3])):
        row = rows.setdefault((task, model, rate), {
            "task": task, "model": model, "rate": rate, "metric": recs[0].get("metric"),
            "higher_is_better": recs[0].get("higher_is_better", True), "methods": {}, "best": {}})
        rule = (recs[0].get("compression") or {}).get("headline_rule", "paper")
        to_thr = [r["epochs"]["to_threshold"] for r in recs if r.get("epochs", {}).get("to_threshold") is not None]
        row["methods"][method] = {
            "hardpruned": _stat([r["metrics"].get("hardpruned") for r in recs]),
            "retrained": _stat([r["metrics"].get("retrained") for r in recs]),
            "dense": _stat([r["metrics"].get("dense") for r in recs]),
            "rate_achieved": _stat([(r.get("compression") or {}).get("achieved", {}).get(rule) for r in recs]),
            "rate_rule": rule,
            "epochs_to_threshold": _stat([float(x) for x in to_thr]),
            "epochs": f"{recs[0]['epochs'].get('method', 0)}+{recs[0]['epochs'].get('retrain', 0)}",
            "run_ids": [r["run_id"] for r in recs],
        }
    for row in rows.values():
        sign = 1 if row["higher_is_better"] else -1
        for phase in PHASES:
            scored = [(sign * m[phase]["mean"], name) for name, m in row["methods"].items() if m[phase]]
            if len(scored) > 1:
                row["best"][phase] = max(scored)[1]
    return list(rows.values())


def _fmt(stat: dict[str, Any] | None, digits: int = 2) -> str:
    if not stat:
        return "–"
    s = f"{stat['mean']:.{digits}f}"
    if stat["n"] > 1:
        s += f" ± {stat['std']:.{digits}f} (n={stat['n']})"
    return s


def _methods(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({m for row in rows for m in row["methods"]})


def _by_task_model(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Leaderboard rows grouped per (task, model), in first-seen order: one table each."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["model"])].append(row)
    return groups


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """One table per (task, model); **bold** = best method of the row for that phase."""
    out = []
    for (task, model), grp in _by_task_model(rows).items():
        methods = _methods(grp)
        out.append(f"### {task} / {model} ({grp[0]['metric']}, {'higher' if grp[0]['higher_is_better'] else 'lower'} is better)\n")
        head = ["rate"] + [f"{m} {h}" for m in methods for h in ("hard-pruned", "retrained", "achieved x", "ep. to thr.")]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for row in grp:
            cells = [f"{row['rate']:g}x" if row["rate"] else "cfg"]
            for m in methods:
                d = row["methods"].get(m)
                if d is None:
                    cells += ["–"] * 4
                    continue
                for phase in PHASES:
                    txt = _fmt(d[phase])
                    cells.append(f"**{txt}**" if row["best"].get(phase) == m else txt)
                cells += [_fmt(d["rate_achieved"]), _fmt(d["epochs_to_threshold"], 0)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append("Bold: best method of the row for that phase. Mean ± std over seeds where n > 1.")
    return "\n".join(out) + "\n"


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for row in rows:
        for m, d in row["methods"].items():
            def g(k: str, f: str = "mean") -> Any:
                return d[k][f] if d[k] else None
            flat.append({
                "task": row["task"], "model": row["model"], "rate": row["rate"], "method": m, "metric": row["metric"],
                "dense": g("dense"), "hardpruned": g("hardpruned"), "hardpruned_std": g("hardpruned", "std"),
                "retrained": g("retrained"), "retrained_std": g("retrained", "std"), "n": (d["hardpruned"] or {}).get("n", 0),
                "rate_achieved": g("rate_achieved"), "rate_rule": d["rate_rule"],
                "epochs_to_threshold": g("epochs_to_threshold"), "epochs": d["epochs"],
                "best_hardpruned": row["best"].get("hardpruned") == m, "best_retrained": row["best"].get("retrained") == m,
            })
    return flat


def to_csv(rows: list[dict[str, Any]]) -> str:
    flat = flat_rows(rows)
    buf = io.StringIO()
    if flat:
        w = csv.DictWriter(buf, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    return buf.getvalue()


def to_html(rows: list[dict[str, Any]], records: list[dict[str, Any]], title: str = "prunebench leaderboard") -> str:
    """One self-contained page: leaderboard tables, then every figure as an inline PNG (or a note why it is absent)."""
    from harness import plots

    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}"
             "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f0f0f0}td.l{text-align:left}td.best{font-weight:bold;background:#e6f4e6}"
             "figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}p.note{color:#a60;font-size:.9em}"
             f"</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(records)} records, {sum(r.get('status') == 'completed' for r in records)} completed. "
             "Green bold: best method of the row for that phase. Mean ± std over seeds where n &gt; 1.</p>"]
    for (task, model), grp in _by_task_model(rows).items():
        methods = _methods(grp)
        parts.append(f"<h2>{html.escape(task)} / {html.escape(model)}: {html.escape(str(grp[0]['metric']))}</h2>")
        parts.append("<table class='leaderboard'><thead><tr><th rowspan='2'>rate</th>"
                     + "".join(f"<th colspan='4'>{html.escape(m)}</th>" for m in methods) + "</tr><tr>"
                     + "<th>hard-pruned</th><th>retrained</th><th>achieved ×</th><th>ep. to thr.</th>" * len(methods)
                     + "</tr></thead><tbody>")
        for row in grp:
            cells = [f"<td class='l'>{row['rate']:g}×</td>" if row["rate"] else "<td class='l'>cfg</td>"]
            for m in methods:
                d = row["methods"].get(m)
                if d is None:
                    cells.append("<td>–</td>" * 4)
                    continue
                for phase in PHASES:
                    cls = " class='best'" if row["best"].get(phase) == m else ""
                    cells.append(f"<td{cls}>{html.escape(_fmt(d[phase]))}</td>")
                cells.append(f"<td>{html.escape(_fmt(d['rate_achieved']))}</td><td>{html.escape(_fmt(d['epochs_to_threshold'], 0))}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Figures</h2>")
    for fig in plots.all_figures(records):
        if fig.png is None:
            parts.append(f"<p class='note' data-figure='{html.escape(fig.name)}'>{html.escape(fig.title)}: {html.escape(fig.note)}</p>")
            continue
        b64 = base64.b64encode(fig.png).decode()
        parts.append(f"<figure data-figure='{html.escape(fig.name)}'><img alt='{html.escape(fig.title)}' "
                     f"src='data:image/png;base64,{b64}'><figcaption>{html.escape(fig.title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def export(source: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the leaderboard (or the raw records) of `source` to `out` in format `fmt`."""
    from harness.errors import UserError

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    records = load_checked(source)
    if not records:
        raise UserError(f"{source} holds no results records")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "records":
        write_json_atomic(out, records)
        return out
    rows = leaderboard(records)
    if fmt == "md":
        out.write_text(to_markdown(rows))
    elif fmt == "csv":
        out.write_text(to_csv(rows))
    elif fmt == "json":
        write_json_atomic(out, {"rows": flat_rows(rows), "leaderboard": rows})
    else:
        out.write_text(to_html(rows, records, title=f"prunebench: {Path(source).name}"))
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
