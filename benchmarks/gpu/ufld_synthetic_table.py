#!/usr/bin/env python3
"""SLR vs ADMM on UFLD ResNet-18 trained on synthetic TuSimple (issue 3's GPU table), in one resumable command.

1. writes a synthetic TuSimple set in the real format (`make_synthetic_tusimple`, frames rendered on every core) and
   converts it as real data would be (`tusimple_convert`), unless the folder already holds a converted set;
2. runs `benchmark sweep`: dense UFLD training (cached), then SLR and ADMM at each rate with equal budgets (the same
   method epochs, hard-prune checks, hard prune, masked-retrain epochs), into one SQLite store;
3. writes a Markdown table (dense / hard-pruned / retrained Accuracy, the hard-prune curve, seconds per phase) with the
   exact command, device, package versions and date, read from the run records.

The sweep is resumable: a killed command (e.g. at a 10-minute limit) continues where it stopped when run again with
the same arguments. Full size is meant for one H100 (about 15-25 min); `--smoke` runs the same steps in about three
minutes on a CPU (small frames, one epoch each) to check the plumbing:

    python benchmarks/gpu/ufld_synthetic_table.py --work /tmp/ufld_table --out-md benchmarks/results/ufld_synthetic_table_h100.md
    python benchmarks/gpu/ufld_synthetic_table.py --work /tmp/ufld_smoke --smoke --out-md /tmp/ufld_smoke.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.results import load_records  # noqa: E402

SMOKE = dict(train=9, test=3, pretrain_epochs=1, epochs=1, retrain_epochs=1, check_every=1, batch_size=3,
             rates="4.21", opts=["input_size=[64,160]", "griding=9"], max_steps=2)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the data, the store and the run folders")
    ap.add_argument("--out-md", type=Path, required=True, help="Markdown table to write")
    ap.add_argument("--train", type=int, default=3000, help="synthetic training frames")
    ap.add_argument("--test", type=int, default=500, help="synthetic test frames")
    ap.add_argument("--rates", default="4.21,16.85,77.67", help="compression rates (Table 4 values)")
    ap.add_argument("--methods", default="slr,admm")
    ap.add_argument("--pretrain-epochs", type=int, default=30, help="dense UFLD training on the synthetic set")
    ap.add_argument("--epochs", type=int, default=10, help="SLR/ADMM epochs (the paper: 40 on real TuSimple)")
    ap.add_argument("--retrain-epochs", type=int, default=2, help="masked-retrain epochs (the paper: 5)")
    ap.add_argument("--check-every", type=int, default=2, help="hard-prune check period (epochs)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1), help="data-loader workers")
    ap.add_argument("--amp", default="bf16", help="bf16 | fp16 | none")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                    help="task option passed to the sweep, e.g. input_size=[64,160] for a reduced CPU run")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of every step (plumbing check)")
    return ap.parse_args()


def sh(cmd: list[str]) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def make_data(root: Path, train: int, test: int) -> None:
    if (root / "train_gt.txt").is_file() and (root / "test_label.json").is_file():
        print(f"data: reusing {root}")
        return
    py = sys.executable
    sh([py, "data_scripts/make_synthetic_tusimple.py", "--out", str(root), "--train", str(train), "--test", str(test),
        "--workers", str(os.cpu_count() or 1)])
    sh([py, "data_scripts/tusimple_convert.py", "--root", str(root)])


def sweep_command(a: argparse.Namespace, root: Path, store: Path, runs: Path) -> list[str]:
    cmd = [sys.executable, "-m", "harness.cli", "sweep", "--task", "tusimple", "--model", "ufld_resnet18",
           "--methods", a.methods, "--rates", a.rates, "--data", str(root), "--pretrain-epochs", str(a.pretrain_epochs),
           "--epochs", str(a.epochs), "--retrain-epochs", str(a.retrain_epochs), "--check-every", str(a.check_every),
           "--batch-size", str(a.batch_size), "--loader-workers", str(a.workers), "--store", str(store), "--out", str(runs),
           # a UFLD resume checkpoint is ~2 GB: one per hard-prune check period, not per epoch
           "--checkpoint-every", str(max(1, a.check_every))]
    if a.amp != "none":
        cmd += ["--amp", a.amp]
    for opt in a.opts:
        cmd += ["--opt", opt]
    if a.max_steps:
        cmd += ["--max-steps", str(a.max_steps)]
    return cmd


def table(records: list[dict], command: str) -> str:
    done = sorted((r for r in records if r.get("status") == "completed"),
                  key=lambda r: (r["rate_requested"] or 0, r["method"]))
    if not done:
        raise SystemExit("no completed runs in the store: run the command again to resume the sweep")
    first = done[0]
    prov, cfg = first["provenance"], first["config"]
    dev = prov.get("device", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(prov.get("packages", {}).items()) if v)
    lines = [
        "# UFLD ResNet-18 on synthetic TuSimple: SLR vs ADMM with equal budgets",
        "",
        f"- Command: `{command}`",
        f"- Date (UTC) of the first / last run: {min(r['provenance']['started'] for r in done)} / "
        f"{max(r['provenance']['started'] for r in done)}",
        f"- Device: {dev.get('gpu') or dev.get('cpu')} ({dev.get('device')}, CUDA {dev.get('cuda')}, "
        f"{dev.get('threads')} CPU threads); host {prov.get('host')}; Python {prov.get('python')}",
        f"- Software: {versions}",
        f"- git: {prov.get('git', {}).get('sha', '?')} (dirty: {prov.get('git', {}).get('dirty', '?')})",
        f"- Budget per run: {cfg.get('epochs')} method epochs (hard-prune check every {cfg.get('check_every')}), "
        f"{cfg.get('retrain_epochs')} masked-retrain epochs, batch {cfg.get('batch_size')}, amp {cfg.get('amp')}, "
        f"schedule {first['config'].get('schedule', {})}; dense model: {cfg.get('pretrain_epochs')} epochs on the "
        "synthetic training frames",
        "- Accuracy is TuSimple Accuracy (official semantics) x 100 on the synthetic test frames; synthetic data says "
        "nothing about the real benchmark",
        f"- Task options: {cfg.get('options') or 'none (official 288x800 input, griding 100)'}",
        "",
        "| rate (paper rule) | method | dense | hard-pruned | retrained | hard-prune checks (epoch: Acc) | method s | retrain s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        m = r["metrics"]
        checks = ", ".join(f"{c['epoch']}: {100 * c['metric']:.2f}" for c in r["curves"]["hardprune_checks"])
        lines.append(
            f"| {r['compression']['achieved']['paper']:.2f}x | {r['method']} | {100 * m['dense']:.2f} | "
            f"{100 * m['hardpruned']:.2f} | {100 * m['retrained']:.2f} | {checks} | "
            f"{r['timing'].get('method_seconds', 0):.0f} | {r['timing'].get('retrain_seconds', 0):.0f} |"
        )
    failed = [r for r in records if r.get("status") != "completed"]
    if failed:
        lines += ["", f"Not completed: {', '.join(r['run_id'] + ' (' + str(r.get('status')) + ')' for r in failed)}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    a = parse_args()
    a.opts, a.max_steps = list(a.opt), None
    if a.smoke:
        for k, v in SMOKE.items():
            setattr(a, k, v)
        a.amp = "none"
    work = a.work.expanduser().resolve()
    root, store, runs = work / "data", work / "store.sqlite", work / "runs"
    make_data(root, a.train, a.test)
    os.environ.setdefault("PRUNEBENCH_CACHE", str(work / "cache"))
    sh(sweep_command(a, root, store, runs))
    command = shlex.join([Path(sys.executable).name, *[str(x) for x in sys.argv]])
    a.out_md.parent.mkdir(parents=True, exist_ok=True)
    a.out_md.write_text(table(load_records(store), command))
    print(f"wrote {a.out_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
