"""Figures from results records (matplotlib, Agg backend), one function per paper figure.

Every function returns `Figure(name, title, png, svg, note)`: PNG (FIG_DPI, for pages and slides) and SVG (for
papers) bytes, or both None when the records lack what the figure needs (the note says what is missing), so a report
skips that figure with a note instead of failing. `write_figures` puts them in a folder as files.

Conventions: axis labels carry units (accuracy-like metrics in %, harness.regress.metric_unit); seeds of one
experiment (harness.identity.cell_groups) are one line, drawn at their mean with 95 % CI error bars when n > 1; the
dense model's metric is a grey dashed line; rates are ordered as numbers.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import offline

offline.configure()  # matplotlib's config dir out of $HOME, before matplotlib is imported

import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.identity import Cell, cell_groups, cell_rate, distinguishing_label, varying_keys  # noqa: E402
from harness.regress import metric_unit  # noqa: E402
from harness.stats import summarize  # noqa: E402

FIG_DPI = 200
_RATE_KEYS = frozenset({"rate", "prune_config"})  # config keys that place a run on the rate axis, not on a line
_SVG_META = {"Date": None}  # no timestamp: the same records give byte-identical SVG files


@dataclass
class Figure:
    name: str
    title: str
    png: bytes | None
    svg: bytes | None = None
    note: str = ""


def _render(fig: Any) -> tuple[bytes, bytes]:
    out = []
    for fmt, extra in (("png", {"dpi": FIG_DPI}), ("svg", {"metadata": _SVG_META})):
        buf = io.BytesIO()
        # SVG text stays text (svg.fonttype "none"): editable and searchable in a paper's figure, and smaller.
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "prunebench"}):
            fig.savefig(buf, format=fmt, bbox_inches="tight", **extra)
        out.append(buf.getvalue())
    plt.close(fig)
    return out[0], out[1]


def _figure(name: str, title: str, fig: Any) -> Figure:
    png, svg = _render(fig)
    return Figure(name, title, png, svg)


def _skipped(name: str, title: str, note: str) -> Figure:
    return Figure(name, title, None, None, note)


def write_figures(figures: list[Figure], folder: str | Path) -> list[Path]:
    """Each drawn figure as `<name>.png` and `<name>.svg` in `folder`; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in figures:
        if f.png is None:
            continue
        for ext, data in (("png", f.png), ("svg", f.svg)):
            if data is not None:
                path = folder / f"{safe_name(f.name)}.{ext}"
                path.write_bytes(data)
                paths.append(path)
    return paths


def safe_name(name: str) -> str:
    """A file name from a figure name built out of user text (task/model names, rates, labels)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "figure"


def _completed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "completed"]


def metric_label(metric: str | None, phase: str = "") -> str:
    """Axis label with unit, e.g. "hard-pruned top1 (%)"."""
    unit = metric_unit(metric)
    return " ".join(x for x in (phase, metric or "metric") if x) + (f" ({unit})" if unit else "")


def _rate_text(rate: float | None) -> str:
    return f"{rate:g}x" if rate is not None else "cfg"


def _errorbar(ax: Any, xs: list[float], values: list[list[float]], fmt: str, **kw: Any) -> None:
    """Means with 95 % CI error bars (asymmetric for bootstrap intervals; none where n = 1)."""
    sums = [summarize(v) for v in values]
    keep = [(x, s) for x, s in zip(xs, sums) if s is not None]
    if not keep:
        return
    means = np.array([s.mean for _, s in keep])
    lo = np.array([s.mean - s.ci_low if s.ci_low is not None else 0.0 for _, s in keep])
    hi = np.array([s.ci_high - s.mean if s.ci_high is not None else 0.0 for _, s in keep])
    ax.errorbar([x for x, _ in keep], means, yerr=np.vstack([lo, hi]), fmt=fmt, capsize=3, ms=4, lw=1.2, **kw)


def _dense_line(ax: Any, records: list[dict[str, Any]]) -> None:
    """The dense model's metric (mean over the seeds' dense models) as a grey dashed line."""
    by_seed = {str((r.get("config") or {}).get("seed")): (r.get("metrics") or {}).get("dense") for r in records}
    s = summarize(list(by_seed.values()))
    if s is not None:
        ax.axhline(s.mean, color="0.4", ls="--", lw=1, label=f"dense {s.mean:.2f}" + (f" (n={s.n})" if s.n > 1 else ""))


def _percent_range(ax: Any, metric: str | None) -> None:
    """A percent axis never shows beyond [0, 100]: small-n t-intervals can reach past both ends, and a CI bar cut at
    the frame reads as "wider than the scale" while the means stay legible."""
    if metric_unit(metric) == "%":
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, -1.0), min(hi, 101.0))


def _integer_x(ax: Any, xs: list[float]) -> None:
    """Whole-number ticks (epochs, update counts), with room around a single point."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if xs and min(xs) == max(xs):
        ax.set_xlim(min(xs) - 1, max(xs) + 1)


def _records_of(cells: list[Cell]) -> list[dict[str, Any]]:
    return [r for c in cells for recs in c.methods.values() for r in recs]


def metric_vs_rate(records: list[dict[str, Any]]) -> list[Figure]:
    """Paper Fig. 3: hard-pruned (solid) and retrained (dashed) metric vs compression rate, one line per method and
    config, mean ± 95 % CI over seeds, dense baseline dashed grey."""
    by_tm: dict[tuple, list[Cell]] = {}
    for cell in cell_groups(records):
        by_tm.setdefault((cell.task, cell.model), []).append(cell)
    figs = []
    for (task, model), cells in by_tm.items():
        recs = _records_of(cells)
        metric = recs[0].get("metric")
        fig, ax = plt.subplots(figsize=(7.5, 4.0), layout="constrained")
        # One line per method and config across rates: the config without its rate keys identifies the line.
        lines: dict[tuple[str, str], dict[str, Any]] = {}
        for cell in cells:
            for method, mrecs in cell.methods.items():
                config = {k: v for k, v in cell.configs[method].items() if k.rsplit(".", 1)[-1] not in _RATE_KEYS}
                line = lines.setdefault((method, json.dumps(config, sort_keys=True, default=str)),
                                        {"method": method, "config": config, "pts": {}})
                # x: the achieved rate under the headline rule (what the paper plots), averaged over seeds
                achieved = [((r.get("compression") or {}).get("achieved") or {}).get(
                    (r.get("compression") or {}).get("headline_rule", "paper")) for r in mrecs]
                s = summarize(achieved)
                x = s.mean if s is not None else cell.rate
                if x is None:
                    continue
                pts = line["pts"].setdefault(float(x), {})
                for phase in ("hardpruned", "retrained"):
                    pts.setdefault(phase, []).extend((r.get("metrics") or {}).get(phase) for r in mrecs)
        by_method: dict[str, list[dict[str, Any]]] = {}
        for line in lines.values():
            by_method.setdefault(line["method"], []).append(line["config"])
        varying = sorted(varying_keys(by_method))
        series = {}
        for line in lines.values():
            label = distinguishing_label(line["config"], varying)
            series[line["method"] + (f" [{label}]" if label else "")] = line["pts"]
        all_rates = sorted({x for pts in series.values() for x in pts})
        for k, (name, pts) in enumerate(sorted(series.items())):
            xs = sorted(pts)  # numeric order
            # A small per-series shift (log axis: a factor) keeps error bars at the same rate from hiding each other.
            dodge = 1.0 + 0.012 * (k - (len(series) - 1) / 2)
            for phase, style in (("hardpruned", "-o"), ("retrained", "--s")):
                _errorbar(ax, [x * dodge for x in xs], [pts[x].get(phase, []) for x in xs], style, color=f"C{k % 10}",
                          label=f"{name} {'hard-pruned' if phase == 'hardpruned' else 'retrained'}")
        _dense_line(ax, recs)
        ax.set_xscale("log")
        if all_rates:  # ticks at the measured rates, written as 4x, 10x, ... rather than 4x10^0
            ax.set_xticks(all_rates, [f"{x:.3g}x" for x in all_rates])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("achieved compression rate (x, log scale)")
        ax.set_ylabel(metric_label(metric))
        _percent_range(ax, metric)
        ax.grid(alpha=0.3)
        # Outside the axes: with two lines per method the legend would cover the curves it explains.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        n_max = max(len(v) for c in cells for v in c.methods.values())
        ci_note = f" (mean ± 95% CI, up to {n_max} seeds)" if n_max > 1 else ""
        ax.set_title(f"{task}/{model}: metric vs compression{ci_note}", fontsize=10)
        figs.append(_figure(f"rate_{task}_{model}", f"{task}/{model}: metric vs compression rate (paper Fig. 3)", fig))
    return figs


def hardprune_curves(records: list[dict[str, Any]]) -> list[Figure]:
    """Paper Figs. 1-2: hard-pruned metric vs method epoch, one panel per (task, model, rate, config), one line per
    method (mean ± 95 % CI over seeds), dense baseline dashed grey."""
    cells = [c for c in cell_groups(records)
             if any((r.get("curves") or {}).get("hardprune_checks") for recs in c.methods.values() for r in recs)]
    if not cells:
        return [_skipped("hardprune", "hard-pruned metric vs epoch (paper Figs. 1-2)",
                         "no record has hard-prune checks (curves.hardprune_checks); run with --check-every N")]
    figs = []
    for cell in cells:  # cell_groups orders rates numerically
        recs = _records_of([cell])
        fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
        epochs: list[float] = []
        for k, (method, mrecs) in enumerate(sorted(cell.methods.items())):
            per_epoch: dict[float, list[float]] = {}
            for r in mrecs:
                for p in (r.get("curves") or {}).get("hardprune_checks") or []:
                    per_epoch.setdefault(float(p["epoch"]), []).append(p.get("metric"))
            if per_epoch:
                xs = sorted(per_epoch)
                epochs += xs
                shift = 0.04 * (k - (len(cell.methods) - 1) / 2)  # keeps the methods' error bars apart
                _errorbar(ax, [x + shift for x in xs], [per_epoch[x] for x in xs], "-o", color=f"C{k % 10}",
                          label=f"{method} (n={len(mrecs)})")
        thr = (recs[0].get("epochs") or {}).get("threshold")
        if thr is not None:
            ax.axhline(thr, color="C3", ls=":", label=f"threshold {thr:g}")
        _dense_line(ax, recs)
        ax.set_xlabel("method epoch")
        ax.set_ylabel(metric_label(recs[0].get("metric"), "hard-pruned"))
        _percent_range(ax, recs[0].get("metric"))
        _integer_x(ax, epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        where = f"{cell.task}/{cell.model} at {_rate_text(cell.rate)}" + (f" [{cell.label}]" if cell.label else "")
        n_max = max(len(v) for v in cell.methods.values())
        ax.set_title(where + (" (mean ± 95% CI over seeds)" if n_max > 1 else ""), fontsize=10)
        name = f"curve_{cell.task}_{cell.model}_{_rate_text(cell.rate)}" + (f"_{cell.label}" if cell.label else "")
        figs.append(_figure(name, f"{where}: hard-pruned metric vs epoch (Figs. 1-2)", fig))
    return figs


def condition_satisfaction(records: list[dict[str, Any]], max_runs: int = 8) -> Figure:
    """Paper Fig. 6: at every SLR multiplier update, whether the surrogate condition of stage 1 (the first
    multiplier step, `sat1`) and of stage 2 (`sat2`) held, with the stepsize s after the update on a log axis."""
    recs = [r for r in _completed(records) if r.get("method") == "slr"
            and any("sat1" in u or "sat2" in u for u in r.get("updates") or [])]
    if not recs:
        return _skipped("conditions", "SLR surrogate-condition satisfaction (paper Fig. 6)",
                        "no SLR record with multiplier updates (updates[*].sat1/sat2)")
    recs = sorted(recs, key=lambda r: (cell_rate(r) or 0.0, str((r.get("config") or {}).get("seed"))))[:max_runs]
    fig, axes = plt.subplots(len(recs), 1, figsize=(6.5, 0.9 + 1.45 * len(recs)), squeeze=False, sharex=True,
                             layout="constrained")
    twin = None
    for ax, r in zip(axes[:, 0], recs):
        ups = r["updates"]
        k = np.arange(1, len(ups) + 1)
        for row, (stage, key) in enumerate((("stage 1", "sat1"), ("stage 2", "sat2"))):
            y = 1 - row
            ok = np.array([bool(u.get(key)) for u in ups])
            known = np.array([key in u for u in ups])
            ax.scatter(k[ok & known], np.full(int((ok & known).sum()), y), marker="o", color="C2", s=22,
                       label="satisfied" if row == 0 else None, zorder=3)
            ax.scatter(k[~ok & known], np.full(int((~ok & known).sum()), y), marker="x", color="C3", s=26,
                       label="violated" if row == 0 else None, zorder=3)
        ax.set_yticks([1, 0], ["stage 1", "stage 2"])
        ax.set_ylim(-0.6, 1.6)
        steps = [u.get("s") for u in ups]
        if any(isinstance(v, (int, float)) and v > 0 for v in steps):
            twin = ax.twinx()
            twin.plot(k, [v if isinstance(v, (int, float)) and v > 0 else np.nan for v in steps], "-^", color="C0",
                      lw=1, ms=4, alpha=0.7, label="stepsize s after the update")
            twin.set_yscale("log")
            twin.set_ylabel("s (log)", fontsize=7)
            twin.tick_params(labelsize=6)
        ax.set_title(f"{r['task']}/{r['model']} {_rate_text(cell_rate(r))} seed {(r.get('config') or {}).get('seed')}",
                     fontsize=8)
        ax.grid(alpha=0.2, axis="x")
    axes[-1, 0].set_xlabel("multiplier update k (one per dual update)")
    _integer_x(axes[-1, 0], [1.0, float(max(len(r["updates"]) for r in recs))])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if twin is not None:
        extra = twin.get_legend_handles_labels()
        handles, labels = handles + extra[0], labels + extra[1]
    fig.legend(handles, labels, fontsize=7, loc="outside upper center", ncol=3)
    return _figure("conditions", "SLR surrogate conditions per multiplier update, both stages (paper Fig. 6)", fig)


def _load_state(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    import torch

    try:
        if str(path).endswith(".safetensors"):  # the pruned-model file (harness/artifacts.py)
            from harness.artifacts import load_pruned

            return load_pruned(path)[0]
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — an unreadable artefact only costs the figure
        return None
    return state.get("model", state) if isinstance(state, dict) else None


def _pick_layer(rec: dict[str, Any], pruned: dict[str, Any]) -> str | None:
    """The largest pruned tensor present in the saved model (the layer that dominates the compression)."""
    names = [n for n in (rec.get("compression") or {}).get("prune_ratios", {}) if n in pruned]
    return max(names, key=lambda n: pruned[n].numel()) if names else None


def weight_histograms(records: list[dict[str, Any]], max_runs: int = 3) -> Figure:
    """Tran, ADMM pruning (Figs. 2-3): weights of one layer, dense vs after pruning (non-zeros), per method."""
    rows = []
    missing = []
    shown: set[str] = set()
    # One run per method (the highest rate, lowest seed): side by side they show what each method leaves behind.
    order = sorted(_completed(records),
                   key=lambda r: (-(cell_rate(r) or 0.0), str((r.get("config") or {}).get("seed"))))
    for r in order:
        if r.get("method") in shown:
            continue
        pruned = _load_state((r.get("artifacts") or {}).get("model"))
        dense = _load_state((r.get("artifacts") or {}).get("dense_weights") or (r.get("config") or {}).get("weights"))
        if pruned is None or dense is None:
            missing.append(r["run_id"])
            continue
        layer = _pick_layer(r, pruned)
        if layer is None or layer not in dense:
            missing.append(r["run_id"])
            continue
        rows.append((r, layer, dense[layer].flatten().float().numpy(), pruned[layer].flatten().float().numpy()))
        shown.add(r.get("method"))
        if len(rows) >= max_runs:
            break
    if not rows:
        return _skipped("histograms", "weight histograms before/after pruning (Tran, ADMM pruning, Figs. 2-3)",
                        "skipped: no run has both its pruned model (pruned_model.safetensors) and its dense weights "
                      f"(artifacts.dense_weights or --weights) on disk ({len(missing)} runs checked)")
    fig, axes = plt.subplots(1, len(rows), figsize=(3.8 * len(rows), 3.3), squeeze=False, layout="constrained")
    for ax, (r, layer, dense, pruned) in zip(axes[0], rows):
        lo, hi = float(min(dense.min(), pruned.min())), float(max(dense.max(), pruned.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 60)
        ax.hist(dense, bins=bins, alpha=0.55, label="dense")
        nz = pruned[pruned != 0]
        ax.hist(nz, bins=bins, alpha=0.55, label="after pruning (non-zero weights)")
        ax.set_yscale("log")  # the surviving tails are orders of magnitude below the dense peak
        ax.set_xlabel("weight value")
        ax.set_ylabel("count (log scale)")
        ax.set_title(f"{r['method']} {_rate_text(cell_rate(r))} seed {(r.get('config') or {}).get('seed')}: {layer}\n"
                     f"{nz.size} of {pruned.size} weights kept", fontsize=8)
    # One legend under the panels: inside, it would cover the tails the figure is about.
    fig.legend(*axes[0, 0].get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncol=2)
    return _figure("histograms", "weight histograms of one layer before/after pruning (Tran, ADMM pruning, Figs. 2-3)",
                   fig)


def weight_heatmaps(records: list[dict[str, Any]], max_side: int = 256) -> Figure:
    """Paper Fig. 4: |W| of one layer after pruning, one panel per method at the same rate (block-max downsampled),
    one shared colour scale. The rate shown is the one with the most methods whose pruned model is on disk; only one
    run per method is loaded (the lowest seed), so memory does not grow with the number of records."""
    by_rate: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in sorted(_completed(records), key=lambda r: str((r.get("config") or {}).get("seed"))):
        path = (r.get("artifacts") or {}).get("model")
        if path and Path(path).is_file():
            by_rate.setdefault((r["task"], r["model"], cell_rate(r)), {}).setdefault(r["method"], r)
    if not by_rate:
        return _skipped("heatmaps", "weight heat-maps (paper Fig. 4)",
                        "skipped: no pruned model file found next to the records")
    key = max(by_rate, key=lambda k: (len(by_rate[k]), k[2] or 0))  # the rate with the most methods
    panels = []
    for method, r in sorted(by_rate[key].items()):
        pruned = _load_state(r["artifacts"]["model"])
        layer = _pick_layer(r, pruned) if pruned is not None else None
        if layer is not None:
            panels.append((r, layer, _block_max(pruned[layer].float().abs().reshape(pruned[layer].shape[0], -1).numpy(),
                                                max_side)))
        del pruned
    if not panels:
        return _skipped("heatmaps", "weight heat-maps (paper Fig. 4)",
                        "skipped: no pruned layer found in the saved models")
    vmax = max(float(img.max()) for _, _, img in panels) or 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 0.8, 3.6), squeeze=False,
                             layout="constrained")
    for ax, (r, layer, img) in zip(axes[0], panels):
        im = ax.imshow(img, cmap="viridis", aspect="auto", interpolation="nearest", vmin=0.0, vmax=vmax)
        ax.set_title(f"{r['method']}: {layer}", fontsize=8)
        ax.set_xlabel("input weights (flattened)", fontsize=7)
        ax.set_ylabel("output unit", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=list(axes[0]), fraction=0.05)
    bar.set_label("|w| (0 = pruned)")
    where = f"{key[0]}/{key[1]} at {_rate_text(key[2])}"
    fig.suptitle(f"{where}: |w| after pruning (block max)", fontsize=9)
    return _figure("heatmaps", f"{where}: |W| heat-maps of one pruned layer (paper Fig. 4)", fig)


def _block_max(w: np.ndarray, max_side: int) -> np.ndarray:
    """Block-max pooling: keeps every surviving weight visible when a large layer is shrunk to screen size."""
    fy, fx = max(1, -(-w.shape[0] // max_side)), max(1, -(-w.shape[1] // max_side))
    h, wd = -(-w.shape[0] // fy) * fy, -(-w.shape[1] // fx) * fx
    padded = np.zeros((h, wd), dtype=w.dtype)
    padded[: w.shape[0], : w.shape[1]] = w
    return padded.reshape(h // fy, fy, wd // fx, fx).max(axis=(1, 3))


def all_figures(records: list[dict[str, Any]]) -> list[Figure]:
    return [*metric_vs_rate(records), *hardprune_curves(records), condition_satisfaction(records),
            weight_histograms(records), weight_heatmaps(records)]
