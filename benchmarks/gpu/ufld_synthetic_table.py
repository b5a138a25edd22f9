#!/usr/bin/env python3
"""SLR vs ADMM on UFLD ResNet-18 trained on synthetic TuSimple, in one resumable command.

1. writes a synthetic TuSimple set in the real format (`make_synthetic_tusimple`, frames rendered on every core) and
   converts it as real data would be (`tusimple_convert`), unless the folder already holds a converted set;
2. runs `benchmark sweep` (once per `--modes` entry): dense UFLD training (cached), then SLR and ADMM at each rate with
   equal budgets (the same method epochs, hard-prune checks, hard prune, masked-retrain epochs), into one SQLite store;
3. writes a Markdown table (dense / hard-pruned / retrained Accuracy, the hard-prune curve, seconds per phase) with the
   exact command, device, package versions and date, read from the run records.

The sweep is resumable: a killed command continues where it stopped when run again with the same arguments.
`benchmarks/gpu/h200_proof.py` calls these functions with a size measured to fit its time budget; `--smoke` runs
the same steps in a few minutes on a CPU (small frames, one epoch each) to check the plumbing:

    python benchmarks/gpu/ufld_synthetic_table.py --work /tmp/ufld_table --out-md /tmp/ufld_table.md
    python benchmarks/gpu/ufld_synthetic_table.py --work /tmp/ufld_smoke --smoke --out-md /tmp/ufld_smoke.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.results import load_records  # noqa: E402


@dataclass
class TablePlan:
    """What one lane table runs: data size, the sweep grid and the equal per-run budget."""

    train: int = 3000  # synthetic training frames
    test: int = 500  # synthetic test frames
    rates: str = "4.21,16.85,77.67"  # Table 4's compression rates
    methods: str = "slr,admm"
    modes: str = "paper"  # comma-separated: paper, reference (one sweep each)
    pretrain_epochs: int = 30
    epochs: int = 10
    retrain_epochs: int = 2
    check_every: int = 2
    batch_size: int = 32
    workers: int = field(default_factory=lambda: min(12, os.cpu_count() or 1))
    amp: str = "bf16"  # bf16 | fp16 | none
    opts: list[str] = field(default_factory=list)  # task options, e.g. input_size=[64,160]
    max_steps: int | None = None
    # A UFLD resume checkpoint is ~2 GB: by default one per hard-prune check period, not per epoch; 0 writes none.
    checkpoint_every: int | None = None

    def cells(self) -> int:
        """Runs in the grid (the dense pretraining is shared and cached)."""
        return len(self.rates.split(",")) * len(self.methods.split(",")) * len(self.modes.split(","))


SMOKE = TablePlan(train=9, test=3, pretrain_epochs=1, epochs=1, retrain_epochs=1, check_every=1, batch_size=3,
                  rates="4.21", workers=0, amp="none", opts=["input_size=[64,160]", "griding=9"], max_steps=2)


def sh(cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, timeout=timeout)


def data_ready(root: Path) -> bool:
    return (root / "train_gt.txt").is_file() and (root / "test_label.json").is_file()


def make_data(root: Path, train: int, test: int, timeout: float | None = None) -> None:
    """Write and convert the synthetic set unless `root` already holds a converted one."""
    if data_ready(root):
        print(f"data: reusing {root}")
        return
    py = sys.executable
    sh([py, "data_scripts/make_synthetic_tusimple.py", "--out", str(root), "--train", str(train), "--test", str(test),
        "--workers", str(os.cpu_count() or 1)], timeout=timeout)
    sh([py, "data_scripts/tusimple_convert.py", "--root", str(root)], timeout=timeout)


def sweep_command(plan: TablePlan, mode: str, root: Path, store: Path, runs: Path) -> list[str]:
    cmd = [sys.executable, "-m", "harness.cli", "sweep", "--task", "tusimple", "--model", "ufld_resnet18",
           "--methods", plan.methods, "--rates", plan.rates, "--mode", mode, "--data", str(root),
           "--pretrain-epochs", str(plan.pretrain_epochs), "--epochs", str(plan.epochs),
           "--retrain-epochs", str(plan.retrain_epochs), "--check-every", str(plan.check_every),
           "--batch-size", str(plan.batch_size), "--loader-workers", str(plan.workers), "--store", str(store),
           "--out", str(runs), "--checkpoint-every",
           str(plan.checkpoint_every if plan.checkpoint_every is not None else max(1, plan.check_every))]
    if plan.amp != "none":
        cmd += ["--amp", plan.amp]
    for opt in plan.opts:
        cmd += ["--opt", opt]
    if plan.max_steps:
        cmd += ["--max-steps", str(plan.max_steps)]
    return cmd


def plan_command(plan: TablePlan, work: Path, out_md: str) -> str:
    """The standalone command of this script that runs `plan` (what a table records as its command)."""
    cmd = ["python", "benchmarks/gpu/ufld_synthetic_table.py", "--work", str(work), "--out-md", out_md]
    for f in dataclasses.fields(TablePlan):
        value = getattr(plan, f.name)
        if f.name == "opts":
            cmd += [x for opt in value for x in ("--opt", opt)]
        elif f.name == "max_steps":
            continue  # smoke runs only; not a flag of this script
        elif value is not None:
            cmd += [f"--{f.name.replace('_', '-')}", str(value)]
    return shlex.join(cmd)


def work_paths(work: Path) -> tuple[Path, Path, Path, Path]:
    """(data root, store, run folders, dense-model cache) under one work folder."""
    return work / "data", work / "store.sqlite", work / "runs", work / "cache"


def cache_env(work: Path) -> dict[str, str]:
    """Where the dense UFLD model is cached: $PRUNEBENCH_CACHE if set, else the work folder's cache."""
    return {"PRUNEBENCH_CACHE": os.environ.get("PRUNEBENCH_CACHE", str(work_paths(work)[3]))}


def run_sweeps(plan: TablePlan, work: Path, timeout: float | None = None) -> None:
    """One `benchmark sweep` per mode into the work folder's store (finished cells are skipped on a rerun)."""
    root, store, runs, _ = work_paths(work)
    env = {**os.environ, **cache_env(work)}
    for mode in plan.modes.split(","):
        sh(sweep_command(plan, mode, root, store, runs), env=env, timeout=timeout)


def _mode(record: dict) -> str:
    return str((record["config"].get("settings") or {}).get("mode", "paper"))


def table(records: list[dict], command: str) -> str:
    done = sorted((r for r in records if r.get("status") == "completed"),
                  key=lambda r: (r["rate_requested"] or 0, _mode(r), r["method"]))
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
        "- Accuracy is TuSimple Accuracy (official semantics, percent) on the synthetic test frames; synthetic data says "
        "nothing about the real benchmark",
        f"- Task options: {cfg.get('options') or 'none (official 288x800 input, griding 100)'}",
        "",
        "| rate (paper rule) | method | mode | dense | hard-pruned | retrained | hard-prune checks (epoch: Acc) "
        "| method s | retrain s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        m = r["metrics"]
        checks = ", ".join(f"{c['epoch']}: {c['metric']:.2f}" for c in r["curves"]["hardprune_checks"])
        lines.append(
            f"| {r['compression']['achieved']['paper']:.2f}x | {r['method']} | {_mode(r)} | {m['dense']:.2f} | "
            f"{m['hardpruned']:.2f} | {m['retrained']:.2f} | {checks} | "
            f"{r['timing'].get('method_seconds', 0):.0f} | {r['timing'].get('retrain_seconds', 0):.0f} |"
        )
    failed = [r for r in records if r.get("status") != "completed"]
    if failed:
        lines += ["", f"Not completed: {', '.join(r['run_id'] + ' (' + str(r.get('status')) + ')' for r in failed)}"]
    return "\n".join(lines) + "\n"


def write_table(work: Path, out_md: Path, command: str) -> None:
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(table(load_records(work_paths(work)[1]), command))
    print(f"wrote {out_md}")


def parse_args() -> tuple[argparse.Namespace, TablePlan]:
    d = TablePlan()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the data, the store and the run folders")
    ap.add_argument("--out-md", type=Path, required=True, help="Markdown table to write")
    ap.add_argument("--train", type=int, default=d.train, help="synthetic training frames")
    ap.add_argument("--test", type=int, default=d.test, help="synthetic test frames")
    ap.add_argument("--rates", default=d.rates, help="compression rates (Table 4 values)")
    ap.add_argument("--methods", default=d.methods)
    ap.add_argument("--modes", default=d.modes, help="SLR/ADMM modes, comma-separated: paper, reference")
    ap.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs, help="dense UFLD training epochs")
    ap.add_argument("--epochs", type=int, default=d.epochs, help="SLR/ADMM epochs (the paper: 40 on real TuSimple)")
    ap.add_argument("--retrain-epochs", type=int, default=d.retrain_epochs, help="masked-retrain epochs (the paper: 5)")
    ap.add_argument("--check-every", type=int, default=d.check_every, help="hard-prune check period (epochs)")
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--workers", type=int, default=d.workers, help="data-loader workers")
    ap.add_argument("--amp", default=d.amp, help="bf16 | fp16 | none")
    ap.add_argument("--checkpoint-every", type=int, default=None,
                    help="epochs between resume checkpoints (default: the check period; 0: none)")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                    help="task option passed to the sweep, e.g. input_size=[64,160] for a reduced CPU run")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of every step (plumbing check)")
    a = ap.parse_args()
    if a.smoke:
        return a, SMOKE
    names = {f.name for f in dataclasses.fields(TablePlan)} - {"opts", "max_steps"}
    plan = TablePlan(**{k: getattr(a, k) for k in names}, opts=list(a.opt))
    return a, plan


def main() -> int:
    a, plan = parse_args()
    work = a.work.expanduser().resolve()
    make_data(work_paths(work)[0], plan.train, plan.test)
    run_sweeps(plan, work)
    write_table(work, a.out_md, shlex.join([Path(sys.executable).name, *[str(x) for x in sys.argv]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
