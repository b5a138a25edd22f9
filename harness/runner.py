"""One pruning run end to end: dense model -> method training (with hard-prune checks) -> hard prune -> masked
retrain -> results record. Every epoch is checkpointed so `--resume` continues a killed run where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from harness import provenance
from harness.errors import TrainingDiverged, UserError
from harness.methods import MaskedRetrain, MethodSettings, make_method
from harness.projection import hard_prune_
from harness.schedules import SCHEDULERS, iterations_per_epoch, make_schedule
from harness.results import SCHEMA_VERSION, DEFAULT_STORE, ResultStore, write_json_atomic
from harness.sparsity import SparsityPlan, measure_compression, weights_by_pattern
from harness.tasks import Task, TaskConfig, TrainRecipe, build_task, get_task_class
from harness.training import EpochStats, make_optimizer, train_epoch

DEFAULT_OUT = "prunebench_runs"


@dataclass
class RunConfig:
    """Everything that defines a run. Fields left None take the task's recipe defaults."""

    task: str = "digits"
    model: str | None = None
    method: str = "slr"
    rate: float | None = None
    prune_config: str | None = None  # YAML `prune_ratios: {name: ratio}` instead of --rate
    prune_pattern: str | None = None  # regex over parameter names replacing the task's default prune set
    data: str | None = None
    weights: str | None = None
    epochs: int | None = None
    retrain_epochs: int | None = None
    pretrain_epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    retrain_lr: float | None = None
    weight_decay: float | None = None
    check_every: int | None = None
    scheduler: str | None = None  # constant | cosine | cosine-iter (None: the task's recipe)
    warmup_iters: int | None = None  # linear warm-up iterations of cosine-iter (None: the recipe's)
    early_stop: float | None = None  # stop the method phase once the hard-prune metric reaches this
    settings: MethodSettings = field(default_factory=MethodSettings)
    device: str = "auto"
    amp: str | None = None  # None | bf16 | fp16
    seed: int = 0
    workers: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None  # cap on steps per epoch (smoke tests)
    # where things go and how often to checkpoint (not part of the run's identity: they do not change the result)
    store: str = DEFAULT_STORE
    out: str = DEFAULT_OUT
    checkpoint_every: int = 1  # epochs between resume checkpoints (and always at a phase's end); 0: none
    keep_checkpoint: bool = False  # keep checkpoint.pt after the run completes (it is only needed to resume)

    IDENTITY_EXCLUDES = ("store", "out", "workers", "device", "checkpoint_every", "keep_checkpoint")
    # Fields added after runs were stored: left out of the identity while unset, so those runs keep their ids and a
    # sweep started by an older version resumes instead of starting over.
    IDENTITY_OMIT_WHEN_NONE = ("scheduler", "warmup_iters")

    def identity(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in self.IDENTITY_EXCLUDES:
            d.pop(k, None)
        for k in self.IDENTITY_OMIT_WHEN_NONE:
            if d.get(k) is None:
                d.pop(k, None)
        return d

    def run_id(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        rate = f"{self.rate:g}x" if self.rate is not None else "cfg"
        return f"{self.task}-{self.model}-{self.method}-{rate}-s{self.seed}-{digest}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
    return dev


def validate_method(cfg: RunConfig) -> None:
    """Fail on a bad method setting before any (possibly long) pretraining starts."""
    from harness.methods import METHODS
    from harness.projection import PROJECTIONS

    if cfg.method not in METHODS:
        raise UserError(f"unknown method {cfg.method!r}; choose one of: {', '.join(METHODS)}")
    if cfg.settings.mode not in ("paper", "reference"):
        raise UserError(f"unknown mode {cfg.settings.mode!r}; choose paper or reference")
    if cfg.settings.projection not in PROJECTIONS:
        raise UserError(f"unknown projection {cfg.settings.projection!r}; choose one of: {', '.join(PROJECTIONS)}")
    if cfg.rate is not None and not (math.isfinite(cfg.rate) and cfg.rate > 1.0):
        raise UserError(f"compression rate must be > 1 (e.g. 8.71), got {cfg.rate}")
    if cfg.scheduler is not None and cfg.scheduler not in SCHEDULERS:
        raise UserError(f"unknown --scheduler {cfg.scheduler!r}; choose one of: {', '.join(SCHEDULERS)}")
    if cfg.warmup_iters is not None and cfg.warmup_iters < 0:
        raise UserError(f"--warmup-iters must be >= 0, got {cfg.warmup_iters}")
    if cfg.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every must be >= 0 (0: no resume checkpoints), got {cfg.checkpoint_every}")
    if cfg.amp not in (None, "bf16", "fp16"):
        raise UserError(f"unknown --amp {cfg.amp!r}; choose bf16 or fp16")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def hard_pruned_copy(model: nn.Module, plan: SparsityPlan, projection: str) -> nn.Module:
    """A deep copy with every planned tensor projected (the live model is untouched; spec §5.6)."""
    clone = copy.deepcopy(model)
    hard_prune_(dict(clone.named_parameters()), plan.ratios, projection)
    return clone


class Run:
    """State of one run; `execute()` does the work and returns the results record."""

    def __init__(self, cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.resume = resume
        self.log = log
        self.device = resolve_device(cfg.device)
        validate_method(cfg)
        if cfg.model is None:
            cfg.model = get_task_class(cfg.task).default_model
        self.task: Task = build_task(cfg.task, TaskConfig(
            model=cfg.model, data=Path(cfg.data) if cfg.data else None,
            weights=Path(cfg.weights) if cfg.weights else None, batch_size=cfg.batch_size, device=self.device,
            workers=cfg.workers, seed=cfg.seed, options=dict(cfg.options),
        ))
        self.recipe: TrainRecipe = self.task.recipe()
        self.run_id = cfg.run_id()
        # Absolute, so records name their files wherever `benchmark export` later runs from.
        self.dir = (Path(cfg.out) / self.run_id).resolve()
        self.record: dict[str, Any] = {}

    # ---- settings with recipe fallbacks --------------------------------------------------------------------------
    def _opt(self, name: str) -> Any:
        value = getattr(self.cfg, name)
        return getattr(self.recipe, name) if value is None else value

    def schedule_for(self, opt: torch.optim.Optimizer, epochs: int, loader, kind: str | None = None):
        """The lr schedule of one phase of `epochs` epochs over `loader` (kind: --scheduler or the recipe's)."""
        return make_schedule(opt, kind or self._opt("scheduler"), epochs,
                             iterations_per_epoch(loader, self.cfg.max_steps), int(self._opt("warmup_iters") or 0))

    # ---- dense model -------------------------------------------------------------------------------------------------
    def dense_model(self, model: nn.Module) -> nn.Module:
        """Pretrain `model` in place when no weights were given (cached by config)."""
        if self.cfg.weights:
            return model
        epochs = self._opt("pretrain_epochs")
        if not epochs:
            self.log("warning: no --weights and no --pretrain-epochs: pruning a randomly initialised model")
            return model
        # Dense training anneals per epoch unless the task trains per iteration (UFLD's warm-up + cosine).
        kind = "cosine-iter" if self._opt("scheduler") == "cosine-iter" else "cosine"
        key = json.dumps({"task": self.cfg.task, "model": self.cfg.model, "epochs": epochs, "seed": self.cfg.seed,
                          "lr": self.recipe.pretrain_lr or self.recipe.lr, "options": self.cfg.options,
                          "data": self.cfg.data, "max_steps": self.cfg.max_steps,
                          **({"scheduler": kind} if kind != "cosine" else {})}, sort_keys=True)
        cache_dir = Path(os.environ.get("PRUNEBENCH_CACHE") or Path(self.cfg.out) / "cache").resolve()
        cache = cache_dir / f"dense-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
        # Where the dense weights live: `benchmark export` draws before/after weight histograms from them.
        self.record.setdefault("artifacts", {})["dense_weights"] = str(cache)
        if cache.is_file():
            model.load_state_dict(torch.load(cache, map_location=self.device, weights_only=True))
            self.log(f"dense model: cached pretraining {cache}")
            return model
        self.log(f"dense model: pretraining {epochs} epochs (cached as {cache})")
        opt = make_optimizer(model, self.recipe.optimizer, self.recipe.pretrain_lr or self.recipe.lr,
                             self.recipe.momentum, self.recipe.weight_decay)
        loader = self.task.train_loader()
        sched = self.schedule_for(opt, epochs, loader, kind)
        for epoch in range(1, epochs + 1):
            stats = train_epoch(model, loader, self.task.loss, opt, None, epoch, self.device, self.cfg.amp,
                                desc="pretrain", max_steps=self.cfg.max_steps, schedule=sched)
            sched.after_epoch()
            self.log(f"pretrain epoch {epoch}/{epochs}: loss {stats.train_loss:.4f} ({stats.seconds:.0f} s)")
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(cache)
        return model

    def plan_for(self, model: nn.Module) -> SparsityPlan:
        if self.cfg.prune_config:
            return SparsityPlan.from_yaml(self.cfg.prune_config, model)
        if self.cfg.prune_pattern:
            names = weights_by_pattern(model, self.cfg.prune_pattern)
            if not names:
                raise UserError(f"--prune-pattern {self.cfg.prune_pattern!r} matches no parameter of the model")
        else:
            names = self.task.default_prune_set(model)
        rate = self.cfg.rate
        if rate is None:
            if not self.task.default_rates:
                raise UserError("give --rate (compression rate, e.g. 8.71) or --prune-config FILE.yaml")
            rate = self.task.default_rates[0]
            self.cfg.rate = rate
        return SparsityPlan.for_rate(model, names, rate, rule=self.task.headline_rule)

    # ---- evaluation helpers ----------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, desc: str) -> dict[str, float]:
        return self.task.evaluate(model, desc=desc)

    def primary(self, metrics: dict[str, float]) -> float:
        return float(metrics[self.task.primary_metric])

    def reached(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.task.higher_is_better else value <= threshold

    # ---- checkpoints -----------------------------------------------------------------------------------------------
    def checkpoint_due(self, epoch: int, last: int) -> bool:
        """Whether to write the resume checkpoint after `epoch` of a phase of `last` epochs (--checkpoint-every)."""
        every = self.cfg.checkpoint_every
        return every > 0 and (epoch % every == 0 or epoch >= last)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        path = self.dir / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.dir / "checkpoint.pt"
        if not (self.resume and path.is_file()):
            return None
        try:
            return torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # a torn file from a kill during save: say so, start over explicitly
            raise UserError(f"cannot resume: {path} is unreadable ({type(exc).__name__}); delete it to start over") from None

    # ---- the pipeline ----------------------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.dir.mkdir(parents=True, exist_ok=True)
        store = ResultStore(cfg.store)
        rec = self.record = self._new_record()
        t0 = time.perf_counter()
        try:
            self._pipeline(rec)
            rec["status"] = "completed"
            if not cfg.keep_checkpoint:
                # Everything a finished run leaves (record, masks, pruned model) is written; the resume state is
                # the largest file by far (model + method state + optimizer: ~2 GB for UFLD).
                (self.dir / "checkpoint.pt").unlink(missing_ok=True)
        except TrainingDiverged as exc:
            rec["status"] = "failed"
            rec["error"] = f"diverged: {exc}"
        except KeyboardInterrupt:
            rec["status"] = "interrupted"
            rec["error"] = "interrupted by the user; continue with --resume"
            self._finish(rec, store, t0)
            raise
        self._finish(rec, store, t0)
        return rec

    def _finish(self, rec: dict[str, Any], store: ResultStore, t0: float) -> None:
        rec["provenance"]["finished"] = provenance.now()
        rec["timing"]["total_seconds"] = time.perf_counter() - t0
        write_json_atomic(self.dir / "record.json", rec)
        store.put(rec)

    def _new_record(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": "running",
            "error": None,
            "task": cfg.task,
            "model": cfg.model,
            "method": cfg.method,
            "metric": self.task.primary_metric,
            "higher_is_better": self.task.higher_is_better,
            "rate_requested": cfg.rate,
            "metrics": {},
            "metrics_full": {},
            "compression": {},
            "epochs": {},
            "curves": {"train": [], "hardprune_checks": [], "retrain": []},
            "updates": [],
            "config": dataclasses.asdict(cfg),
            "task_info": self.task.describe(),
            "provenance": provenance.collect(self.device, cfg.seed),
            "timing": {},
            "artifacts": {"dir": str(self.dir)},
        }

    def _pipeline(self, rec: dict[str, Any]) -> None:
        cfg = self.cfg
        model = self.task.build_model()
        plan = self.plan_for(model)  # before pretraining: a bad rate fails in a second, not after an hour
        model = self.dense_model(model)
        rec["rate_requested"] = cfg.rate
        rec["config"]["rate"] = cfg.rate
        plan.to_yaml(self.dir / "prune_config.yaml")
        rec["artifacts"]["prune_config"] = str(self.dir / "prune_config.yaml")

        epochs = int(self._opt("epochs"))
        retrain_epochs = int(self._opt("retrain_epochs"))
        method = make_method(cfg.method, cfg.settings, epochs=epochs)
        if not method.trains:  # same budget for every method: one-shot methods retrain for the method epochs too
            retrain_epochs += epochs
            epochs = 0
        check_every = int(self._opt("check_every") or 0)
        # None: the shared loop below; else the task's own training driver (detection: Ultralytics' trainer), called
        # once per phase with the same per-epoch bookkeeping as a callback (see CocoTask.fit for the signature).
        fit = self.task.fit_epochs()
        if fit is not None and (cfg.scheduler is not None or cfg.warmup_iters is not None):
            raise UserError(f"--scheduler/--warmup-iters do not apply to {cfg.task}: it trains in its own driver "
                            "(Ultralytics' trainer) with that trainer's warm-up and schedule")

        ckpt = self.load_checkpoint()
        if ckpt is None:
            dense = self.evaluate(model, "dense eval")
            rec["metrics_full"]["dense"] = dense
            rec["metrics"]["dense"] = self.primary(dense)
            self.log(f"dense {self.task.primary_metric}: {rec['metrics']['dense']:.3f}")
        method.attach(model, plan)
        opt = make_optimizer(model, self._opt("optimizer"), self._opt("lr"), self.recipe.momentum,
                             self._opt("weight_decay"))
        sched = self.schedule_for(opt, epochs, self.task.train_loader()) if fit is None else None
        if sched is not None:
            rec["config"]["schedule"] = sched.describe()
        start_epoch, phase = 1, "method"
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            method.load_state_dict(ckpt["method"])
            if fit is None:  # a task driver keeps its own optimizer; it gets the saved state as optimizer_state
                opt.load_state_dict(ckpt["optimizer"])
            for key in ("metrics", "metrics_full", "curves", "updates", "epochs"):
                rec[key] = ckpt["record"][key]
            start_epoch, phase = ckpt["epoch"] + 1, ckpt["phase"]
            if sched is not None and phase == "method":
                sched.resume_at(ckpt["epoch"])
            self.log(f"resuming {self.run_id} at {phase} epoch {start_epoch}")
        rec["config"]["method_config"] = method.config()
        rec["epochs"].update(method_budget=epochs, threshold=cfg.early_stop)

        # ---- method phase ----
        t_method = time.perf_counter()
        if phase == "method":
            def method_epoch_done(stats: EpochStats, view: nn.Module, optim: torch.optim.Optimizer) -> bool:
                """Record one method epoch, hard-prune-check a copy of `view`, checkpoint; True: stop early."""
                epoch = stats.epoch
                point = {"phase": "method", "epoch": epoch, "loss": stats.train_loss, "seconds": stats.seconds,
                         "lr": stats.lr, **stats.method_log}
                rec["curves"]["train"].append(point)
                if sched is not None:
                    sched.after_epoch()
                rec["updates"] = list(method.updates)
                rec["epochs"]["method"] = epoch
                stop = False
                if (check_every and epoch % check_every == 0) or epoch == epochs:
                    checked = self.evaluate(hard_pruned_copy(view, plan, method.projection), f"hard-prune check {epoch}")
                    value = self.primary(checked)
                    rec["curves"]["hardprune_checks"].append({"epoch": epoch, "metric": value, **checked})
                    self.log(f"epoch {epoch}: loss {stats.train_loss:.4f}, hard-pruned {self.task.primary_metric} {value:.3f}")
                    if cfg.early_stop is not None and self.reached(value, cfg.early_stop):
                        rec["epochs"].setdefault("to_threshold", epoch)
                        stop = True
                if stop or self.checkpoint_due(epoch, epochs):
                    self.save_checkpoint({"model": model.state_dict(), "method": method.state_dict(),
                                          "optimizer": optim.state_dict(), "epoch": epoch if not stop else epochs,
                                          "phase": "method", "record": rec})
                if stop:
                    self.log(f"early stop: hard-pruned metric reached {cfg.early_stop} at epoch {epoch}")
                return stop

            if fit is None:
                for epoch in range(start_epoch, epochs + 1):
                    stats = train_epoch(model, self.task.train_loader(), self.task.loss, opt, method, epoch,
                                        self.device, cfg.amp, desc=cfg.method, max_steps=cfg.max_steps,
                                        schedule=sched)
                    if method_epoch_done(stats, model, opt):
                        break
            else:  # the driver evaluates its own view of the model (detection: the EMA) via the same callback
                fit(model, method, phase="method", epochs=epochs, start_epoch=start_epoch, lr=self._opt("lr"),
                    optimizer=self._opt("optimizer"), momentum=self.recipe.momentum,
                    weight_decay=self._opt("weight_decay"), amp=cfg.amp, max_steps=cfg.max_steps,
                    optimizer_state=ckpt["optimizer"] if ckpt is not None else None, on_epoch_end=method_epoch_done)
            rec["epochs"].setdefault("method", 0)
            start_epoch = 1
        rec["timing"]["method_seconds"] = time.perf_counter() - t_method

        # ---- hard prune (idempotent on resume: projecting a pruned model changes nothing) ----
        masks = hard_prune_(dict(model.named_parameters()), plan.ratios, method.projection)
        if phase == "method" or "hardpruned" not in rec["metrics"]:
            pruned = self.evaluate(model, "hard-pruned eval")
            rec["metrics_full"]["hardpruned"] = pruned
            rec["metrics"]["hardpruned"] = self.primary(pruned)
            self.log(f"hard-pruned {self.task.primary_metric}: {rec['metrics']['hardpruned']:.3f}")
        report = measure_compression(model, plan.ratios)
        rec["compression"] = {
            "achieved": report.rates, "totals": report.totals, "headline_rule": self.task.headline_rule,
            "predicted": plan.predicted_compression(model), "layers": report.layer_sparsity,
            "prune_ratios": plan.ratios,
        }

        # ---- masked retrain (fresh optimizer, gradient masks + re-mask after each step) ----
        t_retrain = time.perf_counter()
        if retrain_epochs > 0:
            keeper = MaskedRetrain(masks)
            keeper.attach(model, plan)
            ropt = make_optimizer(model, self._opt("optimizer"), self._opt("retrain_lr") or self._opt("lr"),
                                  self.recipe.momentum, self._opt("weight_decay"))
            rsched = self.schedule_for(ropt, retrain_epochs, self.task.train_loader()) if fit is None else None
            if ckpt is not None and phase == "retrain":
                if fit is None:
                    ropt.load_state_dict(ckpt["optimizer"])
                    rsched.resume_at(ckpt["epoch"])
            else:
                start_epoch = 1

            def retrain_epoch_done(stats: EpochStats, view: nn.Module, optim: torch.optim.Optimizer) -> bool:
                """Evaluate `view` after one retrain epoch, record it, checkpoint."""
                epoch = stats.epoch
                metrics = self.evaluate(view, f"retrain eval {epoch}")
                rec["curves"]["retrain"].append({"epoch": epoch, "loss": stats.train_loss, "seconds": stats.seconds,
                                                 "metric": self.primary(metrics), **metrics})
                rec["epochs"]["retrain"] = epoch
                if rsched is not None:
                    rsched.after_epoch()
                if self.checkpoint_due(epoch, retrain_epochs):
                    self.save_checkpoint({"model": model.state_dict(), "method": method.state_dict(),
                                          "optimizer": optim.state_dict(), "epoch": epoch, "phase": "retrain",
                                          "record": rec})
                return False

            if fit is None:
                for epoch in range(start_epoch, retrain_epochs + 1):
                    stats = train_epoch(model, self.task.train_loader(), self.task.loss, ropt, keeper, epoch,
                                        self.device, cfg.amp, desc="retrain", max_steps=cfg.max_steps,
                                        schedule=rsched)
                    retrain_epoch_done(stats, model, ropt)
            else:
                fit(model, keeper, phase="retrain", epochs=retrain_epochs, start_epoch=start_epoch,
                    lr=self._opt("retrain_lr") or self._opt("lr"), optimizer=self._opt("optimizer"),
                    momentum=self.recipe.momentum, weight_decay=self._opt("weight_decay"), amp=cfg.amp,
                    max_steps=cfg.max_steps, on_epoch_end=retrain_epoch_done,
                    optimizer_state=ckpt["optimizer"] if ckpt is not None and phase == "retrain" else None)
            last = rec["curves"]["retrain"][-1]
            rec["metrics_full"]["retrained"] = {k: v for k, v in last.items() if k not in ("epoch", "loss", "seconds", "metric")}
            rec["metrics"]["retrained"] = last["metric"]
            values = [p["metric"] for p in rec["curves"]["retrain"]]
            rec["metrics"]["retrained_best"] = max(values) if self.task.higher_is_better else min(values)
            self.log(f"retrained {self.task.primary_metric}: {rec['metrics']['retrained']:.3f}")
        rec["epochs"].setdefault("retrain", 0)
        rec["timing"]["retrain_seconds"] = time.perf_counter() - t_retrain
        torch.save({n: m.cpu() for n, m in masks.items()}, self.dir / "masks.pt")
        torch.save(model.state_dict(), self.dir / "pruned_model.pt")
        rec["artifacts"]["model"] = str(self.dir / "pruned_model.pt")
        written = self.task.write_predictions(model, self.dir / "predictions.json")
        if written is not None:
            rec["artifacts"]["predictions"] = str(written[0])


def run(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return Run(cfg, resume=resume, log=log).execute()

