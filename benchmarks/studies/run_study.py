"""Run a study (benchmarks/studies/<name>.yaml) through `benchmark sweep` and write <name>.md from its records.

    OMP_NUM_THREADS=1 python benchmarks/studies/run_study.py benchmarks/studies/slr_vs_admm_digits.yaml
    # a smaller budget than the YAML's (said so in the .md):
    OMP_NUM_THREADS=1 python benchmarks/studies/run_study.py benchmarks/studies/slr_vs_admm_digits.yaml \\
        --epochs 5 --retrain-epochs 1

Each combination of the study's `variants` runs as one `benchmark sweep` of the `variant_methods` (the settings as
flags), the `baselines` as one more; all share one store under --work, so an interrupted study resumes where it
stopped (finished cells are skipped). The .md holds: how it was made (command, threads, versions, git sha, date),
per-cell mean ± 95 % CI over seeds (harness.stats.summarize) of the accuracy before the hard prune, hard-pruned and
retrained, the paired SLR - ADMM differences on the shared seeds (harness.stats.paired: t-interval, paired t-test),
the baselines, and the leaderboard and figures of `benchmark export --format md`. Every number comes from the records;
a hand-written reading is included from <name>_reading.md when present.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.regress import load_checked  # noqa: E402
from harness.stats import paired, summarize  # noqa: E402

PHASES = (("before_hardprune", "before prune"), ("hardpruned", "hard-pruned"), ("retrained", "retrained"))


def benchmark(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def variant_flags(variant: dict[str, Any]) -> list[str]:
    return [x for k, v in variant.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def sweeps(study: dict[str, Any], config: Path, store: Path, out: Path, budget: list[str]) -> list[list[str]]:
    """The `benchmark sweep` command lines of the study, variants first, then the baselines."""
    axes = study.get("variants") or {}
    base = ["sweep", "--config", str(config), "--store", str(store), "--out", str(out), *budget]
    cmds = []
    for values in itertools.product(*axes.values()):
        variant = dict(zip(axes, values))
        cmds.append(benchmark(*base, "--methods", ",".join(study["variant_methods"]), *variant_flags(variant)))
    if study.get("baselines"):
        cmds.append(benchmark(*base, "--methods", ",".join(study["baselines"])))
    return cmds


def git_sha() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_shas(records: list[dict[str, Any]]) -> set[str]:
    """The commits the runs were made at, from their records' provenance (a dirty tree is marked)."""
    out = set()
    for r in records:
        git = (r.get("provenance") or {}).get("git") or {}
        out.add(str(git.get("sha", "unknown")) + (" (dirty)" if git.get("dirty") else ""))
    return out


def versions() -> str:
    import numpy
    import scipy
    import torch
    from importlib.metadata import PackageNotFoundError, version

    try:
        pb = version("prunebench")
    except PackageNotFoundError:
        pb = "unknown"
    return (f"Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
            f"scipy {scipy.__version__}, prunebench {pb}; {platform.machine()} {platform.system()}; "
            f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


# ---- tables from records ----------------------------------------------------------------------------------------
def variant_of(rec: dict[str, Any], axes: list[str]) -> tuple:
    settings = rec["config"].get("settings") or {}
    defaults = {"updates_per_epoch": 1}
    return tuple(settings.get(a, defaults.get(a)) for a in axes)


def cell(values: list[float]) -> str:
    s = summarize(values)
    if s is None:
        return "–"
    if s.half_width is None:
        return f"{s.mean:.2f} (n={s.n})"
    return f"{s.mean:.2f} ± {s.half_width:.2f} (n={s.n})"


def by_seed(recs: list[dict[str, Any]], phase: str) -> dict[int, float]:
    return {r["config"]["seed"]: r["metrics"][phase] for r in recs if phase in (r.get("metrics") or {})}


def diff_cell(a: dict[int, float], b: dict[int, float], names: tuple[str, str]) -> tuple[str, Any]:
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return "–", None
    c = paired([a[s] for s in seeds], [b[s] for s in seeds], *names)
    return (f"{c.mean_diff:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}], p={c.p_t:.2g} (n={c.n})", c)


def tables(records: list[dict[str, Any]], study: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    axes = list(study.get("variants") or {})
    methods = list(study["variant_methods"])
    rates = [float(r) for r in study["sweep"]["rates"]]
    done = [r for r in records if r.get("status") == "completed"]
    lines: list[str] = []
    tally = {"slr": 0, "admm": 0, "none": 0}
    variants = sorted({variant_of(r, axes) for r in done if r["method"] in methods}, key=str)

    lines += ["## Paired differences SLR − ADMM (hard-pruned top-1, same seeds and dense models)", "",
              "Mean difference in points with its 95 % t-interval and the paired t-test p-value; **bold**: p < 0.05.",
              "", "| " + " | ".join(axes) + " | " + " | ".join(f"{r:g}×" for r in rates) + " |",
              "|" + "---|" * (len(axes) + len(rates))]
    for v in variants:
        row = []
        for rate in rates:
            recs = {m: [r for r in done if r["method"] == m and variant_of(r, axes) == v
                        and float(r["rate_requested"]) == rate] for m in methods}
            text, c = diff_cell(by_seed(recs["slr"], "hardpruned"), by_seed(recs["admm"], "hardpruned"), ("slr", "admm"))
            if c is not None:
                tally[c.winner or "none"] += 1
                text = f"**{text}**" if c.significant else text
            row.append(text)
        lines.append("| " + " | ".join(map(str, v)) + " | " + " | ".join(row) + " |")
    lines += ["", f"Cells where SLR is significantly better: {tally['slr']}; ADMM significantly better: "
              f"{tally['admm']}; no significant difference: {tally['none']}.", ""]

    lines += ["## Every cell: mean ± 95 % CI over seeds", "",
              "before prune: the live weights at the end of the method phase; hard-pruned: after the projection, "
              "no retraining; retrained: after the masked retrain.", "",
              "| " + " | ".join(axes) + " | rate | method | " + " | ".join(n for _, n in PHASES) + " |",
              "|" + "---|" * (len(axes) + 2 + len(PHASES))]
    for v in variants:
        for rate in rates:
            for m in methods:
                recs = [r for r in done if r["method"] == m and variant_of(r, axes) == v
                        and float(r["rate_requested"]) == rate]
                vals = [cell(list(by_seed(recs, p).values())) for p, _ in PHASES]
                lines.append("| " + " | ".join(map(str, v)) + f" | {rate:g}× | {m} | " + " | ".join(vals) + " |")
    lines.append("")

    base = list(study.get("baselines") or [])
    if base:
        lines += ["## Baselines", "",
                  "iterative (Han et al.) prunes in rounds during its training and retrains between them, so its "
                  "'hard-pruned' number is its model at the end of that schedule, not a one-shot projection of a "
                  "dense-trained model; projected magnitude keeps W on the sparse set every step, so its "
                  "'before prune' and 'hard-pruned' coincide.", "",
                  "| rate | method | " + " | ".join(n for _, n in PHASES) + " |", "|---|---|" + "---|" * len(PHASES)]
        for rate in rates:
            for m in base:
                recs = [r for r in done if r["method"] == m and float(r["rate_requested"]) == rate]
                vals = [cell(list(by_seed(recs, p).values())) for p, _ in PHASES]
                lines.append(f"| {rate:g}× | {m} | " + " | ".join(vals) + " |")
        lines.append("")
    return lines, tally


def trim_figures(board: Path) -> None:
    """Keep the figures worth committing: the per-cell hard-prune curves have one point each (the study checks only
    at the end) and every figure also comes as SVG; those go, with the leaderboard's links to them."""
    folder = board.with_name(board.stem + "_figures")
    dropped = {f.name for f in folder.iterdir() if f.name.startswith("curve_") or f.suffix == ".svg"}
    for name in dropped:
        (folder / name).unlink()
    lines = board.read_text().split("\n")
    board.write_text("\n".join(l for l in lines if not any(f"/{name})" in l for name in dropped)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", type=Path, help="Study YAML (benchmarks/studies/*.yaml).")
    ap.add_argument("--work", type=Path, default=Path("prunebench_study"), help="Folder for the store and run folders.")
    ap.add_argument("--epochs", type=int, help="Method epochs instead of the YAML's (a smaller budget).")
    ap.add_argument("--retrain-epochs", type=int, help="Masked-retrain epochs instead of the YAML's.")
    ap.add_argument("--report-only", action="store_true", help="Write the .md from the store without running.")
    ns = ap.parse_args()

    study = yaml.safe_load(ns.study.read_text())
    work = ns.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"{study['sweep']['name']}.sweep.yaml"  # the `sweep:` section as a plain experiment config
    config.write_text(yaml.safe_dump(study["sweep"], sort_keys=False))
    store, out = work / "study.sqlite", work / "runs"
    budget = []
    if ns.epochs is not None:
        budget += ["--epochs", str(ns.epochs)]
    if ns.retrain_epochs is not None:
        budget += ["--retrain-epochs", str(ns.retrain_epochs)]
    cmds = sweeps(study, config, store, out, budget)
    if not ns.report_only:
        for k, cmd in enumerate(cmds, 1):
            print(f"[{k}/{len(cmds)}] {shlex.join(cmd[2:])}", flush=True)
            subprocess.run(cmd, cwd=ROOT, check=False)

    records = load_checked(store)
    md = ns.study.with_suffix(".md")
    board = md.with_name(md.stem + "_leaderboard.md")
    subprocess.run(benchmark("export", "--results", str(store), "--format", "md", "--out", str(board)), cwd=ROOT,
                   check=True)
    trim_figures(board)
    body, _ = tables(records, study)
    run_cfg = study["sweep"]["run"]
    epochs = ns.epochs if ns.epochs is not None else run_cfg.get("epochs")
    retrain = ns.retrain_epochs if ns.retrain_epochs is not None else run_cfg.get("retrain_epochs")
    reduced = bool(budget)
    cmd = "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "") + " python " + shlex.join(
        [str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *[a for a in sys.argv[1:] if a != "--report-only"]])
    head = [f"# Study: {study['sweep'].get('description', study['sweep']['name'])}", "",
            f"- Command: `{cmd}` (from the repository root; it runs {len(cmds)} `benchmark sweep`s into one store)",
            f"- Budget: {epochs} method epochs + {retrain} masked-retrain epochs per run"
            + (f" — **smaller than the study's recipe ({run_cfg.get('epochs')} + {run_cfg.get('retrain_epochs')})**,"
               " so it finishes on the loaded 2-core machine it ran on; the full study is the same command without "
               "--epochs/--retrain-epochs" if reduced else ""),
            f"- Records: {sum(r.get('status') == 'completed' for r in records)} completed, "
            f"{sum(r.get('status') == 'failed' for r in records)} failed",
            f"- Versions: {versions()}",
            f"- Git: runs made at {', '.join(sorted(run_shas(records)))}; this report at {git_sha()}",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- Leaderboard (mean ± CI per cell, significance marks) and figures: [{board.name}]({board.name})", ""]
    reading = md.with_name(md.stem + "_reading.md")
    tail = ["## Reading", "", reading.read_text().strip(), ""] if reading.is_file() else []
    md.write_text("\n".join(head + tail + body))
    print(f"wrote {md} and {board}")


if __name__ == "__main__":
    main()
