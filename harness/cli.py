"""`benchmark` — the command line.

    benchmark run                                   # SLR vs ADMM vs magnitude on the embedded digits task (CPU, minutes)
    benchmark run --task cifar10 --model resnet18 --method slr --rate 8.71 --data ~/data/cifar10 --weights r18.pth
    benchmark sweep --task digits --methods slr,admm --rates 4,10 --seeds 0,1,2
    benchmark eval --task tusimple --pred pred.json --gt test_label.json [--json]
    benchmark regress --results prunebench.sqlite --against benchmarks/tables/paper_table1.csv
    benchmark export --results prunebench.sqlite --format html --out leaderboard.html
    benchmark tasks                                 # what can be run, with each task's options

Built on argparse (the standard library), so no CLI dependency can break usage errors. The options of `run` and
`sweep` are generated from the fields of `RunConfig` and `MethodSettings` (harness/config.py): one place for each
default, bound and help text. User mistakes print one line (`error: …`) and exit 2; a diverged run exits 3 with its
record kept; Ctrl-C exits 130 and keeps finished results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

# Keep Ultralytics / matplotlib offline and out of $HOME before anything imports them.
from harness import offline  # noqa: E402  (must run first)

offline.configure()

from harness.config import DEFAULT_OUT, DEFAULT_STORE, MethodSettings, RunConfig  # noqa: E402
from harness.errors import UserError  # noqa: E402
from harness.options import add_arguments, parse_pairs, values_from  # noqa: E402

DEFAULT_COMPARISON = ("slr", "admm", "magnitude")
# `benchmark run` with no arguments: the comparison above on 3 seeds (so it can print a paired verdict) with its own,
# shorter budget than the digits recipe (15 + 5 epochs), so all 27 runs finish in about 5 minutes on 2 CPU cores.
DEFAULT_RUN_ARGS = ("--seeds", "0,1,2", "--epochs", "8", "--retrain-epochs", "2")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: …` and exit 2, never a usage block or a traceback."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- run -------------------------------------------------------------------------------------------------------------
def add_run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="prune a model with a method at a compression rate (no arguments: the digits comparison)",
        description="Prune a model with a method at a compression rate; evaluate dense, hard-pruned and retrained. "
                    "With no arguments: SLR vs ADMM vs one-shot magnitude at 4x, 10x and 20x on scikit-learn's "
                    f"digits, 3 seeds each, with a shorter budget than the digits recipe ({' '.join(DEFAULT_RUN_ARGS)}"
                    "; offline, CPU, about 5 minutes on 2 cores), then each pair of methods compared on the shared "
                    "seeds. Defaults marked 'recipe' come from the task (`benchmark tasks`).")
    add_arguments(p, RunConfig, skip=("method", "rate"), group="run")
    g = p.add_argument_group("what to compare")
    g.add_argument("--method", action="append", default=None, metavar="NAME",
                   help="Pruning method (repeatable or comma-separated; default: compare slr, admm, magnitude). "
                        "Methods: slr, admm, magnitude (one-shot), iterative (Han et al.), projected, random, and "
                        "any installed plugin.")
    g.add_argument("--seeds", default=None, metavar="LIST",
                   help="Several seeds, e.g. 0,1,2 (overrides --seed): every method and rate runs once per seed, and "
                        "methods are compared pairwise on the shared seeds (mean difference, 95 %% CI, paired test).")
    g.add_argument("--rate", action="append", default=None, metavar="X",
                   help="Compression rate(s) C = counted params / non-zeros (repeatable or comma-separated; "
                        "default: the task's).")
    add_arguments(p, MethodSettings, group="method settings (SLR / ADMM / iterative)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="Task option (see `benchmark tasks`).")
    p.add_argument("--method-opt", action="append", metavar="KEY=VALUE", help="A plugin method's own option.")
    p.add_argument("--resume", action="store_true", help="Continue killed runs from their last checkpoint.")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="Data-parallel training on N local processes (torch.distributed: one GPU each with "
                        "--device cuda, gloo on CPU), as `torchrun --nproc_per_node N -m harness.cli run ...`. "
                        "--batch-size stays the global batch (N must divide it); rank 0 writes the results. Not for "
                        "coco (Ultralytics' trainer). Default 1.")
    p.add_argument("--dry-run", action="store_true", help="List the runs this command would launch, and stop.")
    p.add_argument("--json", dest="json_out", action="store_true", help="Print the results record(s) as JSON.")
    p.set_defaults(func=run_cmd)


def _comma_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def run_configs(ns: argparse.Namespace) -> list[RunConfig]:
    """One config per (rate, method) the user asked for, typed and validated."""
    from harness.runner import resolve, validate
    from harness.tasks import get_task_class

    base = values_from(ns, RunConfig)
    settings = values_from(ns, MethodSettings)
    task_cls = get_task_class(str(base.get("task", "digits")))
    methods = _comma_list(ns.method) or list(DEFAULT_COMPARISON)
    rates: list[Any] = _comma_list(ns.rate) or [None]
    if base.get("prune_config") is None and not ns.rate and not ns.method and task_cls.default_rates:
        rates = list(task_cls.default_rates)  # the comparison: every default rate
    seeds: list[Any] = _comma_list([ns.seeds]) if ns.seeds else [base.get("seed", 0)]
    configs = []
    for rate, method, seed in itertools.product(rates, methods, seeds):
        cfg = RunConfig.from_dict({**base, "method": method, "rate": rate, "seed": seed, "settings": settings,
                                   "options": parse_pairs(ns.opt, "--opt"),
                                   "method_options": parse_pairs(ns.method_opt, "--method-opt")},
                                  where="benchmark run", flags=True)
        resolve(cfg, validate(cfg))
        configs.append(cfg)
    return configs


def run_cmd(ns: argparse.Namespace) -> int:
    from harness import distributed
    from harness.db import describe
    from harness.runner import run

    configs = run_configs(ns)
    if ns.nproc != 1:
        return launch_run(ns, configs)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if not main_rank:  # rank 0 reports for the job; the other ranks only train and evaluate
        for cfg in configs:
            run(cfg, resume=ns.resume, log=lambda s: None)
        distributed.destroy()
        return 0
    if ns.dry_run:
        for i, cfg in enumerate(configs, 1):
            _out(f"{i}/{len(configs)}  {cfg.run_id()}  (epochs {cfg.epochs}+{cfg.retrain_epochs}, "
                 f"out {Path(cfg.out) / cfg.run_id()})")
        return 0
    records, t0 = [], time.perf_counter()
    for i, cfg in enumerate(configs, 1):
        label = f"[{i}/{len(configs)} {cfg.method} {cfg.rate or 'cfg'}x]"
        if not ns.json_out and i > 1:
            eta = (time.perf_counter() - t0) / (i - 1) * (len(configs) - i + 1)
            _err(f"{label} starting; about {eta / 60:.1f} min left for the remaining runs")
        say: Callable[[str], None] = (lambda s: None) if ns.json_out else (lambda s, _l=label: _err(f"{_l} {s}"))
        records.append(run(cfg, resume=ns.resume, log=say))
    if ns.json_out:
        print(json.dumps(records if len(records) > 1 else records[0], default=str, indent=1))
    else:
        print_table(records)
        print_verdicts(records)
        cfg = configs[0]
        _out(f"records: {describe(cfg.store)} and "
             + ", ".join(str(Path(r["artifacts"]["dir"]) / "record.json") for r in records[:3])
             + (f" (+{len(records) - 3} more)" if len(records) > 3 else ""))
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed:
        _err(f"error: run {r['run_id']} failed: {r['error']} (record kept)")
    distributed.destroy()
    return 3 if failed else 0


def launch_run(ns: argparse.Namespace, configs: list[RunConfig]) -> int:
    """`--nproc N`: check every run against N processes here, then start the N workers (harness/launch.py)."""
    from harness import distributed
    from harness.launch import launch, strip_nproc
    from harness.runner import check_world
    from harness.tasks import get_task_class

    if ns.nproc < 1:
        raise UserError(f"--nproc {ns.nproc}: give 1 or more processes")
    if distributed.launched_world_size() > 1:
        raise UserError("--nproc starts the processes itself; under torchrun leave it out")
    for cfg in configs:
        check_world(cfg, get_task_class(cfg.task), ns.nproc)
    if ns.dry_run:
        for i, cfg in enumerate(configs, 1):
            _out(f"{i}/{len(configs)}  {cfg.run_id()}  on {ns.nproc} processes")
        return 0
    return launch(strip_nproc(ns.argv), ns.nproc, _err)


def print_verdicts(records: list[dict[str, Any]]) -> None:
    """With several seeds: each pair of methods compared on the same seeds (hard-pruned and retrained)."""
    from harness.stats import paired_verdicts

    done = [r for r in records if r["status"] == "completed"]
    if len({r["config"]["seed"] for r in done}) < 2:
        return
    for phase in ("hardpruned", "retrained"):
        for verdict in paired_verdicts(done, metric_phase=phase):
            _out(verdict.line())


def _fmt(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "–"


def print_table(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not records:
        return
    metric = records[0]["metric"]
    table = Table(title=f"{records[0]['task']} / {records[0]['model']}: {metric}")
    cols = ("method", "rate req.", "rate (paper)", "rate (conv)", "seed", "dense", "before prune", "hard-pruned",
            "retrained", "epochs", "status")
    for col in cols:
        table.add_column(col, justify="left" if col in ("method", "status") else "right")
    for r in records:
        ach = r.get("compression", {}).get("achieved", {})
        m = r.get("metrics", {})
        table.add_row(r["method"], _fmt(r.get("rate_requested")), _fmt(ach.get("paper")), _fmt(ach.get("conv")),
                      str(r.get("config", {}).get("seed", "–")), _fmt(m.get("dense")), _fmt(m.get("before_hardprune")),
                      _fmt(m.get("hardpruned")), _fmt(m.get("retrained")),
                      f"{r['epochs'].get('method', 0)}+{r['epochs'].get('retrain', 0)}", r["status"])
    Console(width=None if sys.stdout.isatty() else 140, highlight=False).print(table)


# ---- eval / tasks ------------------------------------------------------------------------------------------------------
def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="score a prediction file with the task's official metric semantics",
                       description="Score a prediction file against ground truth: TuSimple lane Accuracy / FP / FN "
                                   "(the official benchmark's semantics) or COCO bbox AP50 (the COCO API's).")
    p.add_argument("--task", required=True, help="A task with a file scorer: tusimple or coco.")
    p.add_argument("--pred", required=True, type=Path, help="Predictions: TuSimple JSON lines or COCO detections.")
    p.add_argument("--gt", required=True, type=Path, help="Ground truth: test_label.json or instances_*.json.")
    p.add_argument("--backend", default=None, help="COCO only: faster-coco-eval (default) or pycocotools.")
    p.add_argument("--json", dest="json_out", action="store_true", help="Print one JSON object on stdout.")
    p.set_defaults(func=eval_cmd)


def eval_cmd(ns: argparse.Namespace) -> int:
    from harness.tasks import get_task_class

    options = {} if ns.backend is None else {"backend": ns.backend}
    result = get_task_class(ns.task).score_files(ns.pred, ns.gt, options)
    if ns.json_out:  # NaN (e.g. AP of a category without GT) as null: strict JSON readers choke on bare NaN
        print(json.dumps({k: (v if v == v else None) for k, v in result.items()}))
    else:
        for k, v in result.items():
            _out(f"{k}: {v:.0f}" if k.startswith("n_") else f"{k}: {v:.2f}")
    return 0


def add_tasks_parser(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list tasks, models, metrics, data and each task's --opt options")
    p.set_defaults(func=tasks_cmd)


def tasks_cmd(ns: argparse.Namespace) -> int:
    from harness.methods import METHODS
    from harness.tasks import get_task_class, task_names

    for name in task_names():
        try:
            info = get_task_class(name).describe_class()
        except UserError as exc:
            _out(f"{name}: {exc}")
            continue
        _out(f"{name}: metric {info['metric']}; models: {', '.join(info['models'])}")
        _out(f"    data: {info['data']}")
        for o in info["options"]:
            _out(f"    --opt {o['name']}=…  ({o['type']}, default {o['default']!r}) {o['help']}")
    _out(f"methods: {', '.join(METHODS.names())}")
    return 0


# ---- sweep ------------------------------------------------------------------------------------------------------------
def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid (methods x rates x seeds): resumable, shareable between processes",
        description="Run a grid of methods x rates x seeds. Finished cells are skipped; a killed sweep continues "
                    "where it stopped (each run resumes from its epoch checkpoint); a failing cell is recorded as "
                    "failed and the rest go on. Exit 3 if any cell of this shard failed. Flags override --config.")
    p.add_argument("--config", type=Path, help="Experiment YAML (benchmarks/configs/*.yaml).")
    p.add_argument("--task", help="Task (default digits, or the config's).")
    p.add_argument("--model", help="Model (default: the task's).")
    p.add_argument("--methods", help="Comma-separated methods, e.g. slr,admm,magnitude.")
    p.add_argument("--rates", help="Comma-separated compression rates, e.g. 1.82,2.54,4.21.")
    p.add_argument("--seeds", help="Comma-separated seeds, e.g. 0,1,2 (default 0).")
    # `--workers` counts sweep workers here; the runs' data-loader processes are `--loader-workers`.
    add_arguments(p, RunConfig, skip=RunConfig.GRID_FIELDS + ("store", "out", "workers"), no_defaults=True,
                  group="run")
    p.add_argument("--loader-workers", dest="RunConfig.workers", metavar="INT",
                   help="Data-loader worker processes of each run (`run --workers`).")
    add_arguments(p, MethodSettings, no_defaults=True, group="method settings")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="Task option (repeatable).")
    p.add_argument("--store", default=DEFAULT_STORE,
                   help="Results store, also the sweep's work queue: a SQLite file, or a database URL such as "
                        "postgresql://user@host:5432/prunebench for workers on several nodes.")
    p.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="Folder for run folders.")
    g = p.add_argument_group("workers (harness/executors.py)")
    g.add_argument("--executor", default="inline",
                   help="inline (this process, default) | local (K worker processes here, submitit) | slurm (K "
                        "SLURM jobs, submitit; returns once queued).")
    g.add_argument("--workers", type=int, default=1, help="Number of sweep workers for --executor local/slurm.")
    g.add_argument("--slurm-partition", help="SLURM partition for the workers.")
    g.add_argument("--gpus-per-task", type=int, help="GPUs per SLURM worker.")
    g.add_argument("--cpus-per-task", type=int, help="CPUs per SLURM worker.")
    g.add_argument("--timeout-min", type=int,
                   help="Wall-clock limit per worker in minutes (slurm default: a day; local: none).")
    p.add_argument("--shard", help="i/n: run only cells k with k %% n == i (0-based), e.g. 0/2 and 1/2.")
    p.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=True,
                   help="Re-run cells recorded as failed by an earlier sweep.")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="Wait for cells another live process is running (taking over if it dies).")
    p.add_argument("--stale-after", type=float, default=900.0,
                   help="Claim lease in seconds: a worker that stops heartbeating (killed, stopped, cut off) loses "
                        "its cell to another after this long (at once to workers on its own host if it died).")
    p.add_argument("--dry-run", action="store_true", help="List the cells (and whether they are done).")
    p.set_defaults(func=sweep_cmd)


def sweep_spec(ns: argparse.Namespace) -> Any:
    from harness import sweep as sw

    spec = sw.load_spec(ns.config) if ns.config else sw.SweepSpec()
    if ns.task:
        spec.task = ns.task
    if ns.model:
        spec.model = ns.model
    spec.methods = sw.parse_list(ns.methods, str, "methods") or spec.methods
    spec.rates = sw.parse_list(ns.rates, float, "rates") or spec.rates
    spec.seeds = sw.parse_list(ns.seeds, int, "seeds") or spec.seeds
    run_flags = values_from(ns, RunConfig)
    if run_flags.get("prune_config"):
        run_flags["prune_config"] = str(Path(run_flags["prune_config"]).resolve())
    if ns.opt:
        run_flags["options"] = parse_pairs(ns.opt, "--opt")
    spec.run.update(run_flags)
    spec.settings.update(values_from(ns, MethodSettings))
    return spec


def sweep_cmd(ns: argparse.Namespace) -> int:
    from harness import distributed
    from harness import sweep as sw
    from harness.db import describe
    from harness.sweep_view import SweepView

    if distributed.launched_world_size() > 1:
        raise UserError("a sweep's workers each run one cell on one device; for one run on several GPUs use "
                        "`benchmark run --nproc N` (or torchrun ... -m harness.cli run)")
    spec = sweep_spec(ns)
    shard_i, shard_n = sw.parse_shard(ns.shard)
    cells = spec.cells(str(ns.store), str(ns.out))
    if ns.dry_run:
        from harness.db import is_url
        from harness.results import ResultStore

        done = {}
        if is_url(ns.store) or Path(ns.store).is_file():  # a dry run creates no SQLite file
            db = ResultStore(ns.store)
            done = {c.run_id(): (db.get(c.run_id()) or {}).get("status") for c in cells}
        for k, c in enumerate(cells):
            mark = "" if k % shard_n == shard_i else "  (other shard)"
            _out(f"{done.get(c.run_id()) or 'todo':10} {c.run_id()}{mark}")
        return 0
    if ns.executor != "inline" or ns.workers != 1:
        return _sweep_workers(ns, spec, cells, (shard_i, shard_n))
    view = SweepView(spec.name, sum(1 for k in range(len(cells)) if k % shard_n == shard_i))
    with view:
        outcomes = sw.run_sweep(spec, store=ns.store, out=ns.out, shard=(shard_i, shard_n),
                                retry_failed=ns.retry_failed, stale_after=ns.stale_after, wait=ns.wait,
                                on_event=view.on_event, on_log=view.on_log)
    for o in outcomes:
        if o.outcome == "held":
            _out(f"held     {'-':10} {o.run_id}  (another live process is running it)")
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.status if o.status in ("completed", "failed") else o.outcome
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    _err(f"sweep {spec.name}: {len(outcomes)} cells ({summary}); store {describe(ns.store)}")
    return 3 if any(o.status == "failed" for o in outcomes) else 0


def _sweep_workers(ns: argparse.Namespace, spec: Any, cells: list[RunConfig], shard: tuple[int, int]) -> int:
    """`--executor local/slurm`: launch workers that pull this sweep's cells from the store (harness/executors.py)."""
    from harness import executors as ex

    slurm = ex.SlurmOptions(ns.slurm_partition, ns.gpus_per_task, ns.cpus_per_task, ns.timeout_min)
    return ex.sweep_with_workers(spec, cells, ns.store, ns.out, shard, ns.retry_failed, ns.stale_after, ns.executor,
                                 ns.workers, slurm, say=_out, warn=_err)


# ---- regress / export / reindex ---------------------------------------------------------------------------------------
def add_report_parsers(sub: Any) -> None:
    p = sub.add_parser("regress", help="compare measured cells with a reported table or a baseline; exit 1 on a drop",
                       description="Compare measured cells with reported (or baseline) ones; exit 1 on any "
                                   "regression beyond --tol. One-sided by default: only results worse than the "
                                   "reference by more than --tol fail.")
    p.add_argument("--results", required=True,
                   help="Measured: store (SQLite file or database URL), record JSON / list, or run folder.")
    p.add_argument("--against", required=True, type=Path, help="Reference: benchmarks/tables/*.csv or results.")
    p.add_argument("--tol", type=float, default=0.5, help="Allowed shortfall in the metric's units (points).")
    p.add_argument("--two-sided", action="store_true", help="Fail on |measured - reference| > tol.")
    p.add_argument("--rate-tol", type=float, default=0.01, help="Relative tolerance when matching rates.")
    p.add_argument("--junit", type=Path, help="Also write a JUnit XML report here.")
    p.add_argument("--json", dest="json_out", action="store_true", help="Print the checks as JSON.")
    p.set_defaults(func=regress_cmd)

    p = sub.add_parser("export", help="leaderboard as md, csv, json, html (with figures) or raw records")
    p.add_argument("--results", required=True, help="Store (file or database URL), record JSON / list, or run folder.")
    p.add_argument("--format", default="md", help="md | csv | json | html | records.")
    p.add_argument("--out", required=True, type=Path, help="Output file.")
    p.set_defaults(func=export_cmd)

    from harness.model_export import FORMATS

    p = sub.add_parser("export-model", help="the pruned model of a run as ONNX, TorchScript, Ultralytics or CSR",
                       description="Export a finished run's pruned model. Formats: " + "; ".join(
                           f"{k}: {v}" for k, v in FORMATS.items()) + ". Each export is checked against PyTorch's "
                       "outputs and the check is printed.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="A run folder (holding record.json).")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="Export format.")
    p.add_argument("--out", type=Path, help="Output file (default: next to the record).")
    p.set_defaults(func=export_model_cmd)

    p = sub.add_parser("reindex", help="rebuild results-store rows from the record.json files of run folders")
    p.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="Folder of run folders.")
    p.add_argument("--store", default=DEFAULT_STORE, help="Results store to update (SQLite file or database URL).")
    p.set_defaults(func=reindex_cmd)


def regress_cmd(ns: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness import regress as rg

    if ns.junit:
        rg.check_junit_target(ns.junit)  # before any work: never overwrite a store with a report
    checks = rg.compare(rg.load_references(ns.against), rg.load_checked(ns.results), tol=ns.tol,
                        two_sided=ns.two_sided, rate_tol=ns.rate_tol)
    if ns.junit:
        rg.write_junit(checks, ns.junit)
    lines = rg.report_lines(checks)
    if ns.json_out:
        print(rg.checks_json(checks))
    else:
        side = "two" if ns.two_sided else "one"
        table = Table(title=f"regress {ns.results} against {ns.against} (tol {ns.tol}, {side}-sided)")
        for col in ("row", "method", "rate", "phase", "metric", "reported", "measured", "delta", "result"):
            table.add_column(col, justify="right" if col in ("rate", "reported", "measured", "delta") else "left")
        for c in checks:
            r = c.ref
            measured = "–" if c.measured is None else f"{c.measured:.2f}" + (f" (n={c.n})" if c.n > 1 else "")
            table.add_row(r.row, r.method, f"{r.rate:g}" if r.rate is not None else "cfg", r.phase, r.metric,
                          f"{r.value:.2f}", measured, f"{c.delta:+.2f}" if c.delta is not None else "–", c.result)
        Console(width=None if sys.stdout.isatty() else 140, highlight=False).print(table, markup=False)
        for line in lines[:-1]:
            _out(line)
    _err(lines[-1])
    return 1 if any(c.result == "FAIL" for c in checks) else 0


def export_cmd(ns: argparse.Namespace) -> int:
    from harness.export import export

    _out(f"wrote {export(ns.results, ns.format, ns.out)}")
    return 0


def export_model_cmd(ns: argparse.Namespace) -> int:
    from harness.model_export import export_run_model
    from harness.results import load_records
    from harness.runner import Run

    records = load_records(ns.run_dir / "record.json")
    rec = records[0]
    if rec.get("status") != "completed" or not str(rec.get("artifacts", {}).get("model", "")).endswith(".safetensors"):
        raise UserError(f"{ns.run_dir} holds no completed run with a pruned_model.safetensors (status "
                        f"{rec.get('status')!r}); re-run it with this version of prunebench")
    cfg = RunConfig.from_dict({**rec["config"], "device": "cpu", "weights": None, "pretrain_epochs": 0,
                              "tensorboard": False, "mlflow": None})
    task = Run(cfg, log=lambda s: None).task  # the task (and its data, for detection) as the run had it
    suffix = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "ultralytics": ".pt", "sparse": ".csr.pt"}
    out = ns.out or ns.run_dir / f"pruned_model{suffix[ns.format]}"
    extra = {"ultralytics_args": {"data": str(task.data_yaml), "imgsz": task.imgsz}} if task.kind == "detection" else {}
    result = export_run_model(task.build_model(), ns.run_dir / "pruned_model.safetensors", task.example_input(1),
                              ns.format, out, task_kind=task.kind, **extra)
    print(json.dumps(result.to_record(), indent=1, default=str))
    return 0


def reindex_cmd(ns: argparse.Namespace) -> int:
    from harness.results import reindex

    n = reindex(ns.out, ns.store)
    _out(f"{n} records from {ns.out} indexed in {ns.store}")
    return 0


# ---- entry point ----------------------------------------------------------------------------------------------------
def build_parser() -> Parser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("prunebench")
    except PackageNotFoundError:
        ver = "unknown"
    parser = Parser(prog="benchmark", description="prunebench: compare weight-pruning optimizers (SLR, ADMM, "
                    "magnitude) on real models and metrics. `benchmark COMMAND --help` explains each command.")
    parser.add_argument("--version", action="version", version=f"prunebench {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_run_parser(sub)
    add_sweep_parser(sub)
    add_eval_parser(sub)
    add_report_parsers(sub)
    add_tasks_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point: parse, dispatch, and turn user mistakes into one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if argv in ([], ["run"]):  # no arguments: the embedded default comparison on 3 seeds
            argv = ["run", *DEFAULT_RUN_ARGS]
        ns = parser.parse_args(argv)
        ns.argv = argv
        if ns.command is None:
            parser.print_help()
            sys.exit(0)
        code = ns.func(ns)
    except UserError as exc:
        rank = os.environ.get("RANK", "0")  # under torchrun every rank may meet the same mistake: say whose line
        _err(("" if rank == "0" else f"[rank {rank}] ") + "error: " + " ".join(str(exc).split()))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted; finished results are kept (resume with --resume)")
        sys.exit(130)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
