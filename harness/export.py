"""Leaderboard export: records -> one row per experiment cell, one column group per method.

A row is one (task, model, rate) and one config apart from the method (harness.identity.cell_groups): runs that
differ in anything but the seed (epochs, lr, ρ, data, dense weights, …) are separate rows, and a `config` column
names what distinguishes them. Per method: hard-pruned and retrained metric as mean ± 95 % CI over distinct seeds
with n (harness.stats.summarize: t-interval, bootstrap from n = 10), achieved compression rate (the headline rule)
and epochs to the hard-prune threshold (when `--early-stop` was used); per row the dense model's metric. Accuracy-like
metrics are in percent, as the records hold them, shown with two decimals.

The best method of a row is marked for the hard-pruned and the retrained metric only when it beats the runner-up
significantly (p < 0.05): a paired t-test on the seeds both ran (same seed, same dense model), else Welch's t-test.
One seed each is never enough to name a winner.

Formats: md (markdown tables; user text escaped), csv (flat: one line per row and method), json (the same rows),
html (one self-contained page: tables + figures inlined), records (the raw records as a JSON list: what
`benchmark regress --against` and `load_records` read back). md and html also write every figure as PNG and SVG
into `<out stem>_figures/` beside the output.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import struct
from pathlib import Path
from typing import Any

from harness.costs import record_columns
from harness.errors import UserError
from harness.identity import Cell, cell_groups
from harness.regress import load_checked, metric_unit
from harness.results import write_json_atomic
from harness.stats import ALPHA, compare_records, summarize, welch_p

FORMATS = ("md", "csv", "json", "html", "records")
PHASES = ("hardpruned", "retrained")
PHASE_NAMES = {"hardpruned": "hard-pruned", "retrained": "retrained"}
FIGURE_FORMATS = ("md", "html")


def _stat(values: list[Any]) -> dict[str, Any] | None:
    s = summarize(values)
    return s.as_dict() if s is not None else None


def _dense(cell: Cell) -> dict[str, Any] | None:
    """The dense model's metric of the row, one value per seed (every method of a seed starts from the same model)."""
    by_seed = {}
    for recs in cell.methods.values():
        for r in recs:
            by_seed.setdefault(json.dumps((r.get("config") or {}).get("seed")), (r.get("metrics") or {}).get("dense"))
    return _stat(list(by_seed.values()))


def _best(cell: Cell, phase: str, higher: bool) -> tuple[str | None, float | None]:
    """(best method, p-value against the runner-up): the method is None unless the lead is significant."""
    sign = 1 if higher else -1
    ranked = []
    for name, recs in cell.methods.items():
        s = summarize([(r.get("metrics") or {}).get(phase) for r in recs])
        if s is not None:
            ranked.append((sign * s.mean, name))
    if len(ranked) < 2:
        return None, None
    ranked.sort(reverse=True)
    (top, first), (second_val, second) = ranked[0], ranked[1]
    if top == second_val:
        return None, 1.0
    cmp = compare_records(cell.methods[first], cell.methods[second], phase, first, second)
    if cmp is not None:
        p = cmp.p_t
    else:
        p = welch_p([(r.get("metrics") or {}).get(phase) for r in cell.methods[first]],
                    [(r.get("metrics") or {}).get(phase) for r in cell.methods[second]])
    return (first if p is not None and p < ALPHA else None), p


def leaderboard(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows {task, model, rate, label, metric, unit, higher_is_better, dense, methods: {method: {...}}, best: {phase:
    method}, best_p: {phase: p}}. Stats are dicts of harness.stats.Summary (mean, sd, n, ci_low, ci_high, ci_method)."""
    rows = []
    for cell in cell_groups(records):
        first = next(iter(cell.methods.values()))[0]
        higher = first.get("higher_is_better", True) is not False
        row: dict[str, Any] = {
            "task": cell.task, "model": cell.model, "rate": cell.rate, "label": cell.label,
            "metric": first.get("metric"), "unit": metric_unit(first.get("metric")), "higher_is_better": higher,
            "dense": _dense(cell), "methods": {}, "best": {}, "best_p": {}}
        for method, recs in sorted(cell.methods.items()):
            rule = (recs[0].get("compression") or {}).get("headline_rule", "paper")
            to_thr = [(r.get("epochs") or {}).get("to_threshold") for r in recs]
            ep = recs[0].get("epochs") or {}
            row["methods"][method] = {
                "hardpruned": _stat([(r.get("metrics") or {}).get("hardpruned") for r in recs]),
                # the live weights at the end of the method phase (records from before it was measured have none)
                "before_hardprune": _stat([(r.get("metrics") or {}).get("before_hardprune") for r in recs]),
                "steps_to_threshold": _stat([float(x) for x in ((r.get("epochs") or {}).get("steps_to_threshold")
                                                                for r in recs) if x is not None]),
                "retrained": _stat([(r.get("metrics") or {}).get("retrained") for r in recs]),
                "rate_achieved": _stat([((r.get("compression") or {}).get("achieved") or {}).get(rule) for r in recs]),
                "rate_rule": rule,
                "epochs_to_threshold": _stat([float(x) for x in to_thr if x is not None]),
                "epochs": f"{ep.get('method', 0)}+{ep.get('retrain', 0)}",
                "seeds": [(r.get("config") or {}).get("seed") for r in recs],
                "run_ids": [r.get("run_id") for r in recs],
                # the pruned model's file size, effective MACs and measured latency (harness/costs.py)
                "costs": {col: _stat([record_columns(r)[col] for r in recs]) for col in COST_COLUMNS},
            }
        for phase in PHASES:
            best, p = _best(cell, phase, higher)
            row["best_p"][phase] = p
            if best is not None:
                row["best"][phase] = best
        rows.append(row)
    return rows


COST_COLUMNS = ("MB", "GMACs (eff.)", "ms/img")


def _cost_cells(d: dict[str, Any]) -> list[str]:
    """Means only: bytes and MACs do not vary over seeds, and latency spread is the machine's, not the method's."""
    return ["–" if not d["costs"][c] else f"{d['costs'][c]['mean']:.3g}" for c in COST_COLUMNS]


def fmt_stat(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """"mean ± half-width (n=k)" for a t-interval, "mean [low, high] (n=k)" for a bootstrap one, "mean (n=1)"."""
    if not stat:
        return "–"
    s = f"{stat['mean']:.{digits}f}"
    if stat.get("ci_method") == "t":
        s += f" ± {stat['ci_high'] - stat['mean']:.{digits}f}"
    elif stat.get("ci_method") == "bootstrap":
        s += f" [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"
    return s + f" (n={stat['n']})"


def _methods(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({m for row in rows for m in row["methods"]})


def _by_task_model(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Leaderboard rows grouped per (task, model), in first-seen order: one table each."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"]), []).append(row)
    return groups


def _rate(row: dict[str, Any]) -> str:
    return f"{row['rate']:g}x" if row["rate"] is not None else "cfg"


def _metric_title(row: dict[str, Any]) -> str:
    unit = f" in {row['unit']}" if row["unit"] else ""
    return f"{row['metric']}{unit}, {'higher' if row['higher_is_better'] else 'lower'} is better"


def md_escape(text: Any) -> str:
    """User text in a markdown table cell: HTML escaped (markdown renders raw HTML), pipes and newlines neutralised."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


LEGEND = ("Cells: mean ± 95 % CI half-width over seeds (t-interval; [low, high] bootstrap interval from n = 10) and "
          "n, the number of distinct seeds. Best: better than the runner-up at p < 0.05 (paired t-test on shared "
          "seeds, else Welch), in bold; no mark where the difference is not significant. Rows with a config label "
          "differ in the named settings.")


def to_markdown(rows: list[dict[str, Any]], figures: list[tuple[str, str]] = ()) -> str:
    """One table per (task, model); **bold** = significantly best method of the row for that phase. `figures`:
    (title, relative path) pairs linked below the tables."""
    out = []
    for (task, model), grp in _by_task_model(rows).items():
        methods = _methods(grp)
        out.append(f"### {md_escape(task)} / {md_escape(model)} ({md_escape(_metric_title(grp[0]))})\n")
        head = ["rate", "config", "dense"] + [f"{md_escape(m)} {h}" for m in methods
                                              for h in ("hard-pruned", "retrained", "achieved x", "ep. to thr.",
                                                        *COST_COLUMNS)]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for row in grp:
            cells = [_rate(row), md_escape(row["label"] or "–"), fmt_stat(row["dense"])]
            for m in methods:
                d = row["methods"].get(m)
                if d is None:
                    cells += ["–"] * (4 + len(COST_COLUMNS))
                    continue
                for phase in PHASES:
                    txt = fmt_stat(d[phase])
                    cells.append(f"**{txt}**" if row["best"].get(phase) == m else txt)
                cells += [fmt_stat(d["rate_achieved"]), fmt_stat(d["epochs_to_threshold"], 0), *_cost_cells(d)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append(LEGEND)
    if figures:
        out.append("\n## Figures\n")
        out.extend(f"![{md_escape(title)}]({path})\n" for title, path in figures)
    return "\n".join(out) + "\n"


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per (row, method): the CSV/JSON leaderboard."""
    flat = []
    for row in rows:
        dense = row["dense"] or {}
        for m, d in row["methods"].items():
            item: dict[str, Any] = {
                "task": row["task"], "model": row["model"], "rate": row["rate"], "method": m, "config": row["label"],
                "metric": row["metric"], "unit": row["unit"], "dense": dense.get("mean"), "dense_n": dense.get("n")}
            for phase in PHASES:
                st = d[phase] or {}
                for field in ("mean", "ci_low", "ci_high", "sd"):
                    item[phase if field == "mean" else f"{phase}_{field}"] = st.get(field)
            item.update({
                "n": (d["hardpruned"] or {}).get("n", 0), "ci_method": (d["hardpruned"] or {}).get("ci_method"),
                "rate_achieved": (d["rate_achieved"] or {}).get("mean"), "rate_rule": d["rate_rule"],
                "before_hardprune": (d["before_hardprune"] or {}).get("mean"),
                "before_hardprune_ci_low": (d["before_hardprune"] or {}).get("ci_low"),
                "before_hardprune_ci_high": (d["before_hardprune"] or {}).get("ci_high"),
                "epochs_to_threshold": (d["epochs_to_threshold"] or {}).get("mean"),
                "steps_to_threshold": (d["steps_to_threshold"] or {}).get("mean"), "epochs": d["epochs"],
                "seeds": " ".join(str(s) for s in d["seeds"]),
                **{col: (d["costs"][col] or {}).get("mean") for col in COST_COLUMNS},
            })
            for phase in PHASES:
                item[f"best_{phase}"] = row["best"].get(phase) == m
                item[f"p_best_{phase}"] = row["best_p"].get(phase)
            flat.append(item)
    return flat


def to_csv(rows: list[dict[str, Any]]) -> str:
    flat = flat_rows(rows)
    buf = io.StringIO()
    if flat:
        w = csv.DictWriter(buf, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    return buf.getvalue()


def _png_width(png: bytes) -> int:
    """Pixel width from the PNG header (IHDR), to show a FIG_DPI image at its intended size."""
    return struct.unpack(">I", png[16:20])[0]


def to_html(rows: list[dict[str, Any]], records: list[dict[str, Any]], title: str = "prunebench leaderboard",
            figures: list[Any] | None = None) -> str:
    """One self-contained page: leaderboard tables, then every figure as an inline PNG (or a note why it is absent)."""
    from harness import plots

    esc = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}"
             "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f0f0f0;text-align:center}td.l{text-align:left}td.best{font-weight:bold;background:#e6f4e6}"
             "td.dense{color:#555}img{max-width:100%;height:auto}"
             "figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}p.note{color:#a60;font-size:.9em}"
             f"</style></head><body><h1>{esc(title)}</h1>",
             f"<p>{len(records)} records, {sum(r.get('status') == 'completed' for r in records)} completed. "
             f"{esc(LEGEND)}</p>"]
    for (task, model), grp in _by_task_model(rows).items():
        methods = _methods(grp)
        parts.append(f"<h2>{esc(task)} / {esc(model)}: {esc(_metric_title(grp[0]))}</h2>")
        parts.append("<table class=\"leaderboard\"><thead><tr><th rowspan='2'>rate</th><th rowspan='2'>config</th>"
                     "<th rowspan='2'>dense</th>"
                     + "".join(f"<th colspan='{4 + len(COST_COLUMNS)}'>{esc(m)}</th>" for m in methods) + "</tr><tr>"
                     + ("<th>hard-pruned</th><th>retrained</th><th>achieved ×</th><th>ep. to thr.</th>"
                        + "".join(f"<th>{esc(c)}</th>" for c in COST_COLUMNS)) * len(methods)
                     + "</tr></thead><tbody>")
        for row in grp:
            cells = [f"<td class='l'>{esc(_rate(row))}</td><td class='l'>{esc(row['label'] or '–')}</td>"
                     f"<td class='dense'>{esc(fmt_stat(row['dense']))}</td>"]
            for m in methods:
                d = row["methods"].get(m)
                if d is None:
                    cells.append("<td>–</td>" * (4 + len(COST_COLUMNS)))
                    continue
                for phase in PHASES:
                    cls = " class='best'" if row["best"].get(phase) == m else ""
                    cells.append(f"<td{cls}>{esc(fmt_stat(d[phase]))}</td>")
                cells.append(f"<td>{esc(fmt_stat(d['rate_achieved']))}</td>"
                             f"<td>{esc(fmt_stat(d['epochs_to_threshold'], 0))}</td>"
                             + "".join(f"<td>{esc(c)}</td>" for c in _cost_cells(d)))
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Figures</h2>")
    for fig in plots.all_figures(records) if figures is None else figures:
        if fig.png is None:
            parts.append(f"<p class='note' data-figure='{esc(fig.name)}'>{esc(fig.title)}: {esc(fig.note)}</p>")
            continue
        b64 = base64.b64encode(fig.png).decode()
        width = _png_width(fig.png) * 100 // plots.FIG_DPI  # CSS pixels at 100 dpi: sharp on high-density screens
        parts.append(f"<figure data-figure='{esc(fig.name)}'><img alt='{esc(fig.title)}' width='{width}' "
                     f"src='data:image/png;base64,{b64}'><figcaption>{esc(fig.title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def check_export_target(out: Path, source: str | Path, fmt: str) -> None:
    """Refuse to overwrite results: a SQLite store, a run's record.json, the export's own source, or a JSON list of
    records with anything but a new records export (re-exporting a baseline is how baselines are refreshed)."""
    if not out.exists():
        return
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name")
    if Path(source).exists() and out.resolve() == Path(source).resolve():
        raise UserError(f"--out {out} is the results source itself; refusing to overwrite it")
    with open(out, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3\x00"):
        raise UserError(f"--out {out} is a results store (SQLite); refusing to overwrite it, choose another file")
    kind = _record_json_kind(out)
    if kind == "record" or (kind == "records" and fmt != "records"):
        raise UserError(f"--out {out} holds results {kind} (JSON); refusing to overwrite it, choose another file")


def _record_json_kind(path: Path) -> str | None:
    """"record" for a results record, "records" for a JSON list of them, None for anything else. Only the first
    64 KiB are read (a records list can be large): records are written with `schema_version` and `run_id` first."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024).lstrip()
    if b'"schema_version"' not in head or b'"run_id"' not in head:
        return None
    if head.startswith(b"{"):
        return "record"
    return "records" if head.startswith(b"[") else None


def figures_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}_figures")


def export(source: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the leaderboard (or the raw records) of `source` to `out` in format `fmt`; md and html also write the
    figures as PNG + SVG files into `<out stem>_figures/`."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    check_export_target(out, source, fmt)
    records = load_checked(source)
    if not records:
        raise UserError(f"{source} holds no results records")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "records":
        write_json_atomic(out, records)
        return out
    rows = leaderboard(records)
    figs = None
    if fmt in FIGURE_FORMATS:
        from harness import plots

        figs = plots.all_figures(records)
        folder = figures_dir(out)
        plots.write_figures(figs, folder)
    if fmt == "md":
        links = [(f.title, f"{figures_dir(out).name}/{plots.safe_name(f.name)}.png") for f in figs if f.png is not None]
        out.write_text(to_markdown(rows, links))
    elif fmt == "csv":
        out.write_text(to_csv(rows))
    elif fmt == "json":
        write_json_atomic(out, _finite({"rows": flat_rows(rows), "leaderboard": rows}))
    else:
        out.write_text(to_html(rows, records, title=f"prunebench: {Path(source).name}", figures=figs))
    return out


def _finite(obj: Any) -> Any:
    """Non-finite floats -> None: JSON has no NaN/Infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
