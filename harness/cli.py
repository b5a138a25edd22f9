"""`benchmark` — the command line.

    benchmark run                                   # SLR vs ADMM vs magnitude on the embedded digits task (CPU, minutes)
    benchmark run --task cifar10 --model resnet18 --method slr --rate 8.71 --data ~/data/cifar10 --weights r18.pth
    benchmark eval --task tusimple --pred pred.json --gt test_label.json [--json]
    benchmark tasks                                 # what can be run

User mistakes print one line (`error: …`) and exit 2; a diverged run exits 3 with its record kept.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

# Keep Ultralytics / matplotlib offline and out of $HOME before anything imports them.
from harness import offline  # noqa: E402  (must run first)

offline.configure()

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from harness.errors import UserError  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    help="prunebench: compare weight-pruning optimizers (SLR, ADMM, magnitude) on real models and metrics.",
)
console = Console(stderr=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)

METHOD_HELP = "slr | admm | magnitude (one-shot) | iterative (Han et al.) | projected (per-step) | random"


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--opt expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("run")
def run_cmd(
    task: str = typer.Option("digits", help="Task: digits (embedded), cifar10, imagenet, tusimple, coco."),
    model: Optional[str] = typer.Option(None, help="Model name (default: the task's; see `benchmark tasks`)."),
    method: Optional[str] = typer.Option(None, help=f"Pruning method: {METHOD_HELP}. Default: compare slr, admm, magnitude."),
    rate: Optional[list[float]] = typer.Option(None, help="Target compression rate C = params / non-zeros (paper rule), e.g. 8.71. Repeat for several."),
    prune_config: Optional[Path] = typer.Option(None, help="YAML 'prune_ratios: {param_name: ratio}' instead of --rate."),
    prune_pattern: Optional[str] = typer.Option(None, help="Regex over parameter names replacing the default prune set."),
    data: Optional[Path] = typer.Option(None, help="Dataset folder (see the task's data script)."),
    weights: Optional[Path] = typer.Option(None, help="Dense weights (state dict) loaded strictly."),
    epochs: Optional[int] = typer.Option(None, help="SLR/ADMM (method) epochs. Default: the task's recipe (paper)."),
    retrain_epochs: Optional[int] = typer.Option(None, help="Masked-retrain epochs after the hard prune."),
    pretrain_epochs: Optional[int] = typer.Option(None, help="Without --weights: train the dense model first (cached)."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size."),
    optimizer: Optional[str] = typer.Option(None, help="adam | sgd | adamw."),
    lr: Optional[float] = typer.Option(None, help="Learning rate of the method phase."),
    retrain_lr: Optional[float] = typer.Option(None, help="Learning rate of masked retraining."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay."),
    scheduler: Optional[str] = typer.Option(None, help="LR schedule of each phase: constant | cosine (per epoch) | cosine-iter (per iteration with linear warm-up, UFLD's). Default: the task's recipe."),
    warmup_iters: Optional[int] = typer.Option(None, help="Linear warm-up iterations of cosine-iter (tusimple default 100)."),
    check_every: Optional[int] = typer.Option(None, help="Evaluate a hard-pruned copy every N epochs (paper Fig. 1-2)."),
    early_stop: Optional[float] = typer.Option(None, help="Stop the method phase when the hard-pruned metric reaches this."),
    mode: str = typer.Option("paper", help="SLR/ADMM: 'paper' (the equations) or 'reference' (the authors' code, bugs included)."),
    rho: float = typer.Option(0.1, help="Penalty rho (SLR and ADMM)."),
    s0: float = typer.Option(0.01, help="SLR initial stepsize s0."),
    M: float = typer.Option(300.0, "--M", help="SLR stepsize parameter M (eq. 11)."),
    r: float = typer.Option(0.1, "--r", help="SLR stepsize parameter r (eq. 11)."),
    update_every: int = typer.Option(1, help="Epochs between dual/Z updates (ADMM's T_admm)."),
    projection: str = typer.Option("topk", help="topk (exact, on device) | percentile (reference numpy compat)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    amp: Optional[str] = typer.Option(None, help="Autocast dtype for the forward pass: bf16 | fp16."),
    seed: int = typer.Option(0, help="Random seed."),
    workers: int = typer.Option(0, help="Data-loader worker processes."),
    opt: Optional[list[str]] = typer.Option(None, help="Task option key=value (repeatable), e.g. imgsz=320."),
    max_steps: Optional[int] = typer.Option(None, help="Cap steps per epoch (smoke runs)."),
    store: Path = typer.Option(Path("prunebench.sqlite"), help="SQLite results store."),
    out: Path = typer.Option(Path("prunebench_runs"), help="Folder for run records, checkpoints, pruned models."),
    resume: bool = typer.Option(False, help="Continue a killed run from its last epoch checkpoint."),
    checkpoint_every: int = typer.Option(1, help="Epochs between resume checkpoints (always at a phase's end; 0: none). Raise it for big models: a UFLD checkpoint is ~2 GB."),
    keep_checkpoint: bool = typer.Option(False, help="Keep checkpoint.pt after the run completes (deleted by default: only resuming needs it)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results record(s) as JSON."),
) -> None:
    """Prune a model with a method at a compression rate; evaluate dense, hard-pruned and retrained.

    With no arguments: SLR vs ADMM vs one-shot magnitude at 4x, 10x and 20x on scikit-learn's digits (offline, CPU).
    """
    from harness.methods import MethodSettings
    from harness.runner import RunConfig, run
    from harness.tasks import get_task_class

    task_cls = get_task_class(task)
    methods = [method] if method else ["slr", "admm", "magnitude"]
    rates: list[float | None] = list(rate) if rate else [None]
    if prune_config is None and not rate and not method and task_cls.default_rates:
        rates = list(task_cls.default_rates)  # the comparison: every default rate
    settings = MethodSettings(rho=rho, M=M, r=r, s0=s0, mode=mode, update_every=update_every, projection=projection)
    records = []
    for rt in rates:
        for m in methods:
            cfg = RunConfig(
                task=task, model=model, method=m, rate=rt, prune_config=str(prune_config) if prune_config else None,
                prune_pattern=prune_pattern, data=str(data) if data else None, weights=str(weights) if weights else None,
                epochs=epochs, retrain_epochs=retrain_epochs, pretrain_epochs=pretrain_epochs, batch_size=batch_size,
                optimizer=optimizer, lr=lr, retrain_lr=retrain_lr, weight_decay=weight_decay, scheduler=scheduler,
                warmup_iters=warmup_iters, check_every=check_every, early_stop=early_stop, settings=settings,
                device=device, amp=amp, seed=seed, workers=workers,
                options=_options(opt or []), max_steps=max_steps, store=str(store), out=str(out),
                checkpoint_every=checkpoint_every, keep_checkpoint=keep_checkpoint,
            )
            say = (lambda s: None) if json_out else (lambda s, _m=m, _r=rt: err.print(f"[{_m} {_r or ''}x] {s}", highlight=False))
            records.append(run(cfg, resume=resume, log=say))
    if json_out:
        console.print_json(json.dumps(records if len(records) > 1 else records[0], default=str))
    else:
        print_table(records)
        console.print(f"records: {store} (SQLite) and {out}/<run_id>/record.json")
    if any(r["status"] == "failed" for r in records):
        for r in records:
            if r["status"] == "failed":
                err.print(f"error: run {r['run_id']} failed: {r['error']} (record kept)", highlight=False)
        raise typer.Exit(3)


def _fmt(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "–"


def print_table(records: list[dict[str, Any]]) -> None:
    if not records:
        return
    metric = records[0]["metric"]
    table = Table(title=f"{records[0]['task']} / {records[0]['model']}: {metric}")
    for col in ("method", "rate req.", "rate (paper)", "rate (conv)", "dense", "hard-pruned", "retrained",
                "epochs", "status"):
        table.add_column(col, justify="right" if col not in ("method", "status") else "left")
    for r in records:
        ach = r.get("compression", {}).get("achieved", {})
        m = r.get("metrics", {})
        table.add_row(r["method"], _fmt(r.get("rate_requested")), _fmt(ach.get("paper")), _fmt(ach.get("conv")),
                      _fmt(m.get("dense")), _fmt(m.get("hardpruned")), _fmt(m.get("retrained")),
                      f"{r['epochs'].get('method', 0)}+{r['epochs'].get('retrain', 0)}", r["status"])
    console.print(table)


@app.command("eval")
def eval_cmd(
    task: str = typer.Option(..., help="tusimple (lane Accuracy/FP/FN) or coco (bbox AP50)."),
    pred: Path = typer.Option(..., help="Predictions: TuSimple JSON lines, or COCO detections JSON."),
    gt: Path = typer.Option(..., help="Ground truth: TuSimple test_label.json, or COCO instances_*.json."),
    backend: str = typer.Option("faster-coco-eval", help="COCO only: faster-coco-eval | pycocotools."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Score a prediction file with the task's official metric semantics."""
    if task == "tusimple":
        from harness.evaluators.tusimple import eval_files

        result = eval_files(pred, gt)
        if json_out:
            print(json.dumps({k: result[k] for k in ("Accuracy", "FP", "FN")}))
        else:
            for k in ("Accuracy", "FP", "FN"):
                console.print(f"{k}: {result[k]:.6f}")
    elif task == "coco":
        from harness.evaluators.coco import eval_files as coco_eval

        result = coco_eval(pred, gt, backend=backend)
        if json_out:
            print(json.dumps({"AP50": result["AP50"], "stats": result["stats"]}))
        else:
            console.print(f"AP50: {result['AP50']:.6f}  ({result['backend']}, {result['n_images']} images)")
    else:
        raise UserError(f"benchmark eval supports --task tusimple or coco, not {task!r}")


@app.command("tasks")
def tasks_cmd() -> None:
    """List tasks, their models, metrics and where their data comes from."""
    from harness.tasks import get_task_class, task_names

    table = Table(title="tasks")
    for col in ("task", "models", "metric", "data"):
        table.add_column(col)
    for name in task_names():
        try:
            cls = get_task_class(name)
        except UserError as exc:
            table.add_row(name, str(exc), "", "")
            continue
        table.add_row(name, ", ".join(cls.models), cls.primary_metric, cls.data_hint)
    console.print(table)


# ---- sweep / regress / export ------------------------------------------------------------------------------------
@app.command("sweep")
def sweep_cmd(
    config: Optional[Path] = typer.Option(None, help="Experiment YAML (benchmarks/configs/*.yaml); flags below override it."),
    task: Optional[str] = typer.Option(None, help="Task (default digits, or the config's)."),
    model: Optional[str] = typer.Option(None, help="Model (default: the task's)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods, e.g. slr,admm,magnitude."),
    rates: Optional[str] = typer.Option(None, help="Comma-separated compression rates, e.g. 1.82,2.54,4.21."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, e.g. 0,1,2 (default 0)."),
    prune_config: Optional[Path] = typer.Option(None, help="YAML 'prune_ratios: {param_name: ratio}' instead of a rate."),
    prune_pattern: Optional[str] = typer.Option(None, help="Regex over parameter names replacing the default prune set."),
    data: Optional[Path] = typer.Option(None, help="Dataset folder."),
    weights: Optional[Path] = typer.Option(None, help="Dense weights (state dict)."),
    epochs: Optional[int] = typer.Option(None, help="Method epochs."),
    retrain_epochs: Optional[int] = typer.Option(None, help="Masked-retrain epochs."),
    pretrain_epochs: Optional[int] = typer.Option(None, help="Dense pretraining epochs without --weights (cached)."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size."),
    optimizer: Optional[str] = typer.Option(None, help="adam | sgd | adamw."),
    lr: Optional[float] = typer.Option(None, help="Method-phase learning rate."),
    retrain_lr: Optional[float] = typer.Option(None, help="Masked-retrain learning rate."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay."),
    scheduler: Optional[str] = typer.Option(None, help="constant | cosine | cosine-iter (default: the task's)."),
    warmup_iters: Optional[int] = typer.Option(None, help="Warm-up iterations of cosine-iter."),
    check_every: Optional[int] = typer.Option(None, help="Hard-prune check every N epochs."),
    early_stop: Optional[float] = typer.Option(None, help="Stop the method phase at this hard-pruned metric."),
    mode: Optional[str] = typer.Option(None, help="paper | reference."),
    rho: Optional[float] = typer.Option(None, help="Penalty rho."),
    s0: Optional[float] = typer.Option(None, help="SLR s0."),
    M: Optional[float] = typer.Option(None, "--M", help="SLR M."),
    r: Optional[float] = typer.Option(None, "--r", help="SLR r."),
    update_every: Optional[int] = typer.Option(None, help="Epochs between dual updates."),
    projection: Optional[str] = typer.Option(None, help="topk | percentile."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N."),
    amp: Optional[str] = typer.Option(None, help="bf16 | fp16."),
    workers: Optional[int] = typer.Option(None, help="Data-loader workers."),
    opt: Optional[list[str]] = typer.Option(None, help="Task option key=value (repeatable)."),
    max_steps: Optional[int] = typer.Option(None, help="Cap steps per epoch (smoke runs)."),
    store: Path = typer.Option(Path("prunebench.sqlite"), help="SQLite results store (may be shared by several sweeps)."),
    out: Path = typer.Option(Path("prunebench_runs"), help="Folder for run folders."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Epochs between resume checkpoints (default 1; 0: none)."),
    keep_checkpoint: Optional[bool] = typer.Option(None, help="Keep checkpoint.pt after a run completes."),
    shard: Optional[str] = typer.Option(None, help="i/n: run only cells k with k % n == i (0-based), e.g. 0/2 and 1/2."),
    retry_failed: bool = typer.Option(True, help="Re-run cells recorded as failed by an earlier sweep."),
    wait: bool = typer.Option(True, help="Wait for cells another live process is running (taking over if it dies)."),
    stale_after: float = typer.Option(900.0, help="Seconds without heartbeat after which another host's claim is stale."),
    dry_run: bool = typer.Option(False, help="List the cells (and whether they are done) without running."),
) -> None:
    """Run a grid (methods x rates x seeds): resumable, one progress view, shareable between processes.

    Finished cells are skipped; a killed sweep continues where it stopped (each run resumes from its epoch checkpoint);
    a failing cell is recorded as failed and the rest go on. Exit 3 if any cell of this shard failed.
    """

    from harness import sweep as sw
    from harness.results import ResultStore

    spec = sw.load_spec(config) if config else sw.SweepSpec()
    if task:
        spec.task = task
    if model:
        spec.model = model
    spec.methods = sw.parse_list(methods, str, "methods") or spec.methods
    spec.rates = sw.parse_list(rates, float, "rates") or spec.rates
    spec.seeds = sw.parse_list(seeds, int, "seeds") or spec.seeds
    run_flags = dict(prune_config=str(prune_config.resolve()) if prune_config else None, prune_pattern=prune_pattern,
                     data=str(data) if data else None, weights=str(weights) if weights else None, epochs=epochs,
                     retrain_epochs=retrain_epochs, pretrain_epochs=pretrain_epochs, batch_size=batch_size,
                     optimizer=optimizer, lr=lr, retrain_lr=retrain_lr, weight_decay=weight_decay,
                     scheduler=scheduler, warmup_iters=warmup_iters, check_every=check_every,
                     early_stop=early_stop, device=device, amp=amp, workers=workers,
                     options=_options(opt) if opt else None, max_steps=max_steps,
                     checkpoint_every=checkpoint_every, keep_checkpoint=keep_checkpoint)
    spec.run.update({k: v for k, v in run_flags.items() if v is not None})
    setting_flags = dict(mode=mode, rho=rho, s0=s0, M=M, r=r, update_every=update_every, projection=projection)
    spec.settings.update({k: v for k, v in setting_flags.items() if v is not None})
    if spec.rates == [None] and not spec.run.get("prune_config"):
        from harness.tasks import get_task_class

        spec.rates = list(get_task_class(spec.task).default_rates) or [None]
    shard_i, shard_n = sw.parse_shard(shard)
    cells = spec.cells(str(store), str(out))
    if dry_run:
        db = ResultStore(store)
        for k, c in enumerate(cells):
            rec = db.get(c.run_id())
            mark = "" if k % shard_n == shard_i else "  (other shard)"
            console.print(f"{(rec or {}).get('status', 'todo'):10} {c.run_id()}{mark}", highlight=False)
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    prev = os.environ.get("PRUNEBENCH_PROGRESS")
    os.environ["PRUNEBENCH_PROGRESS"] = "0"  # one progress view: the runner's per-epoch bars would fight with it
    n_mine = sum(1 for k in range(len(cells)) if k % shard_n == shard_i)
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=err, transient=False)
    bar = progress.add_task(f"sweep {spec.name}", total=n_mine, last="")

    def on_event(kind: str, o: Any, done: int, total: int) -> None:
        if kind == "start":
            progress.update(bar, description=f"{o.method} {o.rate or ''}x s{o.seed}", last="starting")
            return
        progress.update(bar, completed=done)
        m = o.metrics or {}
        extra = " ".join(f"{k}={m[k]:.2f}" for k in ("hardpruned", "retrained") if isinstance(m.get(k), (int, float)))
        line = f"{o.outcome:8} {o.status or '-':10} {o.run_id} {extra}".rstrip()
        if o.error and o.status != "completed":
            line += f"  ({o.error.splitlines()[0][:160]})"
        progress.console.print(line, highlight=False, markup=False) if err.is_terminal else print(line, flush=True)

    def on_log(run_id: str, line: str) -> None:
        progress.update(bar, last=line.strip().splitlines()[0][:70] if line.strip() else "")

    try:
        with progress:
            outcomes = sw.run_sweep(spec, store=store, out=out, shard=(shard_i, shard_n), retry_failed=retry_failed,
                                    stale_after=stale_after, wait=wait, on_event=on_event, on_log=on_log)
    finally:
        if prev is None:
            os.environ.pop("PRUNEBENCH_PROGRESS", None)
        else:
            os.environ["PRUNEBENCH_PROGRESS"] = prev
    for o in outcomes:
        if o.outcome == "held":
            print(f"held     {'-':10} {o.run_id}  (another live process is running it)", flush=True)
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.status if o.status in ("completed", "failed") else o.outcome
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    err.print(f"sweep {spec.name}: {len(outcomes)} cells ({summary}); store {store}", highlight=False)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(3)


@app.command("regress")
def regress_cmd(
    results: Path = typer.Option(..., help="Measured results: SQLite store, record JSON / JSON list, or run folder."),
    against: Path = typer.Option(..., help="Reference: benchmarks/tables/*.csv, or a previous results store/JSON/folder."),
    tol: float = typer.Option(0.5, help="Allowed shortfall in the metric's table units (e.g. accuracy points)."),
    two_sided: bool = typer.Option(False, help="Fail on |measured - reference| > tol (default: only on a drop)."),
    rate_tol: float = typer.Option(0.01, help="Relative tolerance when matching compression rates (0.01 = 1 %)."),
    junit: Optional[Path] = typer.Option(None, help="Also write a JUnit XML report here."),
    json_out: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Compare measured cells with reported (or baseline) ones; exit 1 on any regression beyond --tol.

    One-sided by default: only results worse than the reference by more than --tol fail (higher-is-better metrics:
    measured < reported - tol). Cells without a measurement are listed as "not run" and do not fail; a matching run
    that failed does.
    """
    from harness import regress as rg

    refs = rg.load_references(against)
    records = rg.load_checked(results)
    checks = rg.compare(refs, records, tol=tol, two_sided=two_sided, rate_tol=rate_tol)
    if junit:
        rg.write_junit(checks, junit)
    if json_out:
        print(json.dumps([{"table": c.ref.table, "row": c.ref.row, "task": c.ref.task, "model": c.ref.model,
                           "method": c.ref.method, "rate": c.ref.rate, "phase": c.ref.phase, "metric": c.ref.metric,
                           "reported": c.ref.value, "measured": c.measured, "n": c.n, "delta": c.delta,
                           "result": c.result, "reason": c.reason} for c in checks], indent=1))
    else:
        table = Table(title=f"regress {results} against {against} (tol {tol}, {'two' if two_sided else 'one'}-sided)")
        for col in ("row", "method", "rate", "phase", "metric", "reported", "measured", "delta", "result"):
            table.add_column(col, justify="right" if col in ("rate", "reported", "measured", "delta") else "left")
        for c in checks:
            r = c.ref
            style = {"FAIL": "bold red", "pass": "green"}.get(c.result, "dim")
            table.add_row(r.row, r.method, f"{r.rate:g}" if r.rate is not None else "cfg", r.phase, r.metric,
                          f"{r.value:.2f}", f"{c.measured:.2f}" + (f" (n={c.n})" if c.n > 1 else "") if c.measured is not None else "–",
                          f"{c.delta:+.2f}" if c.delta is not None else "–", f"[{style}]{c.result}[/]")
        console.print(table)
        for c in checks:
            if c.result == "FAIL":
                console.print(f"FAIL {c.ref.method} {c.ref.rate}x {c.ref.phase} {c.ref.metric}: {c.reason}",
                              highlight=False, markup=False)
    n = {k: sum(c.result == k for c in checks) for k in ("pass", "FAIL", "not run", "not comparable")}
    err.print(f"{n['pass']} passed, {n['FAIL']} failed, {n['not run']} not run (not failures), "
              f"{n['not comparable']} not comparable", highlight=False)
    if n["FAIL"]:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    results: Path = typer.Option(..., help="Results: SQLite store, record JSON / JSON list, or run folder."),
    format: str = typer.Option("md", "--format", help="md | csv | json | html (self-contained, with figures) | records (raw JSON list)."),
    out: Path = typer.Option(..., help="Output file."),
) -> None:
    """Leaderboard: rows task/model/rate, columns per method (hard-pruned, retrained, achieved rate, epochs to threshold)."""
    from harness.export import export

    path = export(results, format, out)
    console.print(f"wrote {path}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning UserError into one line on stderr."""
    try:
        code = app(args=argv, standalone_mode=False)  # without standalone mode click returns Exit codes
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; finished results are kept (resume with --resume)")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive as ClickException subclasses
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
