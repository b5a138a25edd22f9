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
                optimizer=optimizer, lr=lr, retrain_lr=retrain_lr, weight_decay=weight_decay, check_every=check_every,
                early_stop=early_stop, settings=settings, device=device, amp=amp, seed=seed, workers=workers,
                options=_options(opt or []), max_steps=max_steps, store=str(store), out=str(out),
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
