"""Figures from results records (matplotlib, Agg backend, PNG bytes), one function per paper figure.

Every function returns `Figure(title, png, note)`: `png` is None when the records lack what the figure needs (the note
says what is missing), so a report skips that figure with a note instead of failing.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import offline

offline.configure()  # matplotlib's config dir out of $HOME, before matplotlib is imported

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.regress import cell_rate  # noqa: E402


@dataclass
class Figure:
    name: str
    title: str
    png: bytes | None
    note: str = ""


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _completed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "completed"]


def _group(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in _completed(records):
        out[(r["task"], r["model"])].append(r)
    return out


def metric_vs_rate(records: list[dict[str, Any]]) -> list[Figure]:
    """Paper Fig. 3: hard-pruned (solid) and retrained (dashed) metric vs compression rate, one line per method."""
    figs = []
    for (task, model), recs in _group(records).items():
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        all_rates: set[float] = set()
        for k, method in enumerate(sorted({r["method"] for r in recs})):
            color = f"C{k}"  # one colour per method; the line style tells the phase
            for phase, style in (("hardpruned", "-o"), ("retrained", "--s")):
                pts: dict[float, list[float]] = defaultdict(list)
                for r in (x for x in recs if x["method"] == method):
                    v = r["metrics"].get(phase)
                    rate = (r.get("compression") or {}).get("achieved", {}).get(r["compression"].get("headline_rule", "paper")) or cell_rate(r)
                    if isinstance(v, (int, float)) and rate:
                        pts[round(float(rate), 3)].append(float(v))
                if pts:
                    xs = sorted(pts)
                    all_rates.update(xs)
                    ax.plot(xs, [np.mean(pts[x]) for x in xs], style, color=color, label=f"{method} {phase}")
        ax.set_xscale("log")
        if all_rates:  # ticks at the measured rates, written as 4x, 10x, ... rather than 4x10^0
            ax.set_xticks(sorted(all_rates), [f"{x:.3g}x" for x in sorted(all_rates)])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("achieved compression rate (x, log scale)")
        ax.set_ylabel(recs[0].get("metric") or "metric")
        ax.grid(alpha=0.3)
        # Outside the axes: with two lines per method the legend would cover the curves it explains.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.set_title(f"{task}/{model}: metric vs compression")
        figs.append(Figure(f"rate_{task}_{model}", f"{task}/{model}: metric vs compression rate (paper Fig. 3)", _png(fig)))
    return figs


def hardprune_curves(records: list[dict[str, Any]]) -> list[Figure]:
    """Paper Figs. 1-2: hard-pruned metric vs method epoch, per (task, model, rate), one line per method."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in _completed(records):
        if r.get("curves", {}).get("hardprune_checks"):
            groups[(r["task"], r["model"], cell_rate(r))].append(r)
    if not groups:
        return [Figure("hardprune", "hard-pruned metric vs epoch (paper Figs. 1-2)", None,
                       "no record has hard-prune checks (curves.hardprune_checks); run with --check-every N")]
    figs = []
    for (task, model, rate), recs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for r in recs:
            pts = r["curves"]["hardprune_checks"]
            ax.plot([p["epoch"] for p in pts], [p["metric"] for p in pts], "-o", ms=3,
                    label=f"{r['method']} s{r['config'].get('seed', 0)}")
        thr = recs[0].get("epochs", {}).get("threshold")
        if thr is not None:
            ax.axhline(thr, color="grey", ls=":", label="threshold")
        ax.set_xlabel("method epoch")
        ax.set_ylabel(f"hard-pruned {recs[0].get('metric')}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{task}/{model} at {rate:g}x" if rate else f"{task}/{model}")
        figs.append(Figure(f"curve_{task}_{model}_{rate}", f"{task}/{model} {rate:g}x: hard-pruned metric vs epoch (Figs. 1-2)", _png(fig)))
    return figs


def condition_satisfaction(records: list[dict[str, Any]]) -> Figure:
    """Paper Fig. 6: SLR surrogate conditions (stage 1 and 2) satisfied (1) or violated (0) at each multiplier update."""
    recs = [r for r in _completed(records) if r["method"] == "slr" and any("sat1" in u for u in r.get("updates", []))]
    if not recs:
        return Figure("conditions", "SLR surrogate-condition satisfaction (paper Fig. 6)", None,
                      "no SLR record with multiplier updates (updates[*].sat1/sat2)")
    fig, axes = plt.subplots(len(recs), 1, figsize=(6, 1.2 + 1.1 * len(recs)), squeeze=False, sharex=True)
    for ax, r in zip(axes[:, 0], recs):
        ups = r["updates"]
        k = np.arange(1, len(ups) + 1)
        ax.step(k, [1 if u.get("sat1") else 0 for u in ups], where="mid", label="stage 1 (sat1)")
        ax.step(k, [0.05 + (1 if u.get("sat2") else 0) for u in ups], where="mid", ls="--", label="stage 2 (sat2)")
        ax.set_yticks([0, 1], ["violated", "satisfied"])
        ax.set_title(f"{r['task']}/{r['model']} {cell_rate(r):g}x s{r['config'].get('seed', 0)}", fontsize=8)
    axes[-1, 0].set_xlabel("multiplier update")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    return Figure("conditions", "SLR surrogate-condition satisfaction per update (paper Fig. 6)", _png(fig))


def _load_state(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — an unreadable artefact only costs the figure
        return None
    return state.get("model", state) if isinstance(state, dict) else None


def _pick_layer(rec: dict[str, Any], pruned: dict[str, Any]) -> str | None:
    """The largest pruned tensor present in the saved model (the layer that dominates the compression)."""
    names = [n for n in (rec.get("compression") or {}).get("prune_ratios", {}) if n in pruned]
    return max(names, key=lambda n: pruned[n].numel()) if names else None


def weight_histograms(records: list[dict[str, Any]], max_runs: int = 3) -> Figure:
    """Seed 003 Figs. 2-3: weight distribution of one layer, dense vs after pruning (non-zeros), per method."""
    rows = []
    missing = []
    for r in _completed(records):
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
        if len(rows) >= max_runs:
            break
    if not rows:
        return Figure("histograms", "weight histograms before/after pruning (seed 003 Figs. 2-3)", None,
                      "skipped: no run has both its pruned model (pruned_model.pt) and its dense weights "
                      f"(artifacts.dense_weights or --weights) on disk ({len(missing)} runs checked)")
    fig, axes = plt.subplots(1, len(rows), figsize=(3.4 * len(rows), 3), squeeze=False)
    for ax, (r, layer, dense, pruned) in zip(axes[0], rows):
        bins = np.linspace(float(dense.min()), float(dense.max()), 60)
        ax.hist(dense, bins=bins, alpha=0.55, label="dense")
        nz = pruned[pruned != 0]
        ax.hist(nz, bins=bins, alpha=0.55, label=f"pruned (non-zero {nz.size}/{pruned.size})")
        ax.set_title(f"{r['method']} {cell_rate(r):g}x: {layer}", fontsize=8)
        ax.legend(fontsize=6)
    return Figure("histograms", "weight histograms of one layer before/after pruning (seed 003 Figs. 2-3)", _png(fig))


def weight_heatmaps(records: list[dict[str, Any]], max_side: int = 256) -> Figure:
    """Paper Fig. 4: |W| of one layer after pruning, one panel per method at the same rate (block-max downsampled)."""
    by_rate: dict[tuple, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for r in _completed(records):
        pruned = _load_state((r.get("artifacts") or {}).get("model"))
        if pruned is not None:
            by_rate[(r["task"], r["model"], cell_rate(r))].append((r, pruned))
    if not by_rate:
        return Figure("heatmaps", "weight heat-maps (paper Fig. 4)", None,
                      "skipped: no pruned_model.pt found next to the records")
    key = max(by_rate, key=lambda k: (len(by_rate[k]), k[2] or 0))  # the rate with the most methods
    runs = by_rate[key]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), squeeze=False)
    for ax, (r, pruned) in zip(axes[0], runs):
        layer = _pick_layer(r, pruned)
        if layer is None:
            ax.set_axis_off()
            continue
        w = pruned[layer].float().abs().reshape(pruned[layer].shape[0], -1).numpy()
        # Block-max pooling keeps every surviving weight visible when a large layer is shrunk to screen size.
        fy, fx = max(1, -(-w.shape[0] // max_side)), max(1, -(-w.shape[1] // max_side))
        h, wd = -(-w.shape[0] // fy) * fy, -(-w.shape[1] // fx) * fx
        padded = np.zeros((h, wd), dtype=w.dtype)
        padded[: w.shape[0], : w.shape[1]] = w
        img = padded.reshape(h // fy, fy, wd // fx, fx).max(axis=(1, 3))
        ax.imshow(img, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_title(f"{r['method']}: {layer}\n(|w|, rows = output units)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return Figure("heatmaps", f"{key[0]}/{key[1]} at {key[2]:g}x: |W| heat-maps of one pruned layer (paper Fig. 4)", _png(fig))


def all_figures(records: list[dict[str, Any]]) -> list[Figure]:
    return [*metric_vs_rate(records), *hardprune_curves(records), condition_satisfaction(records),
            weight_histograms(records), weight_heatmaps(records)]
