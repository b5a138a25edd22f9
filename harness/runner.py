"""One pruning run end to end, as phases (harness/phases.py) with per-epoch hooks (harness/hooks.py):

    resolve config -> build model -> sparsity plan -> dense model (weights, or cached pretraining phase)
    -> dense eval -> method phase (hard-prune checks, early stop) -> hard prune -> hard-pruned eval
    -> masked-retrain phase -> artifacts -> finish (record, store row, checkpoint removal)

Every epoch can be checkpointed, so `--resume` continues a killed run where it stopped and produces the same record
as an uninterrupted run (per-epoch data seeds, resumed optimizer, schedule and method state).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from harness import distributed, hub, provenance, resume
from harness.config import DEFAULT_OUT, RunConfig, TrainRecipe
from harness.errors import JobInterrupted, TrainingDiverged, UserError
from harness.hooks import Checkpoint, CurveLog, EpochLog, HardPruneCheck, PhaseTimer, RetrainEval, StepBudget
from harness.methods import METHODS, MaskedRetrain, PruningMethod, make_method
from harness.options import check_all
from harness.phases import EpochHook, PhaseContext, PhaseSpec, run_phase
from harness.artifacts import save_pruned
from harness.costs import model_costs
from harness.projection import hard_prune_, nm_plan, nm_ratio
from harness.record import RunRecord
from harness.results import ResultStore
from harness.sparsity import SparsityPlan, measure_compression, weights_by_pattern
from harness.tasks import Task, TaskConfig, build_task, get_task_class
from harness.tracking import Tracker
from harness.training import seed_everything

__all__ = ["DEFAULT_OUT", "Run", "RunConfig", "resolve", "run"]

# Recipe values a run config may leave None (filled in by `resolve`).
RECIPE_FIELDS = ("epochs", "retrain_epochs", "pretrain_epochs", "batch_size", "optimizer", "lr", "weight_decay",
                 "check_every", "scheduler", "warmup_iters")


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


def validate(cfg: RunConfig) -> type[Task]:
    """Every name against its registry, every value against its bounds: before any (possibly long) work."""
    task_cls = get_task_class(cfg.task)
    METHODS.get(cfg.method)
    if cfg.model is not None and cfg.model not in task_cls.models:
        raise UserError(f"unknown model {cfg.model!r} for task {cfg.task!r}; choose one of: "
                        f"{', '.join(task_cls.models)}")
    check_all(cfg)
    check_all(cfg.settings)
    cfg.settings.check_cadence()
    if cfg.prune_pattern is not None:
        try:
            re.compile(cfg.prune_pattern)
        except re.error as exc:
            raise UserError(f"--prune-pattern {cfg.prune_pattern!r} is not a valid regular expression ({exc})") from None
    if nm_ratio(cfg.settings.projection) is not None and cfg.method == "iterative":
        raise UserError("--projection nm:N:M fixes each tensor's sparsity; iterative magnitude pruning needs growing "
                        "ratios: use --method magnitude (or slr / admm) with N:M")
    if getattr(task_cls, "own_schedule", False) and (cfg.scheduler is not None or cfg.warmup_iters is not None):
        raise UserError(f"--scheduler/--warmup-iters do not apply to {cfg.task}: it trains in its own driver "
                        "(Ultralytics' trainer) with that trainer's warm-up and schedule")
    if getattr(task_cls, "own_schedule", False) and cfg.max_method_steps is not None:
        raise UserError(f"--max-method-steps applies to our training loop; {cfg.task} trains in Ultralytics' "
                        "trainer: give the budget in --epochs")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the run folders")
    check_world(cfg, task_cls, distributed.launched_world_size())
    return task_cls


def check_world(cfg: RunConfig, task_cls: type[Task], size: int) -> None:
    """What data-parallel training over `size` processes cannot do, refused in one line before any work."""
    if size <= 1:
        return
    if getattr(task_cls, "own_schedule", False):
        raise UserError(f"{cfg.task} trains in Ultralytics' trainer, whose multi-GPU mode relaunches the trainer "
                        "without the pruning method's state; data-parallel runs support our loop's tasks "
                        "(digits, cifar10, imagenet, tusimple): use --nproc 1 here")
    if cfg.device.startswith("cuda:"):
        raise UserError(f"--device {cfg.device} names one GPU, but each of the {size} processes uses its own GPU "
                        "(LOCAL_RANK): pass --device cuda")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", size))  # processes on this node (torchrun --nnodes: fewer)
    if cfg.device in ("cuda", "auto") and torch.cuda.is_available() and local > torch.cuda.device_count():
        raise UserError(f"{local} processes need {local} GPUs; this machine has {torch.cuda.device_count()}: lower "
                        "--nproc (several nodes: torchrun --nnodes)")
    batch = cfg.batch_size if cfg.batch_size is not None else task_cls.recipe(cfg.model or task_cls.default_model).batch_size
    if batch is not None and int(batch) % size:
        raise UserError(f"--batch-size {batch} is the global batch and must be divisible by the {size} processes "
                        f"(each takes batch/{size}); pick a multiple of {size}")


def resolve(cfg: RunConfig, task_cls: type[Task]) -> TrainRecipe:
    """Fill the task's defaults into `cfg` in place (model, rate, recipe values), so the run id is the id of the
    experiment that actually runs, however it was asked for. Returns the recipe."""
    if cfg.model is None:
        cfg.model = task_cls.default_model
    if cfg.rate is None and cfg.prune_config is None and nm_ratio(cfg.settings.projection) is None:
        if not task_cls.default_rates:
            raise UserError("give --rate (compression rate, e.g. 8.71) or --prune-config FILE.yaml")
        cfg.rate = float(task_cls.default_rates[0])
    recipe = task_cls.recipe(cfg.model)
    own_schedule = getattr(task_cls, "own_schedule", False)
    for name in RECIPE_FIELDS:
        if getattr(cfg, name) is None and not (own_schedule and name in ("scheduler", "warmup_iters")):
            setattr(cfg, name, getattr(recipe, name))
    if cfg.retrain_lr is None:
        cfg.retrain_lr = recipe.retrain_lr if recipe.retrain_lr is not None else cfg.lr
    if isinstance(cfg.options, dict):  # typed, so `--opt aux=1` and `aux=true` are one experiment
        import dataclasses

        cfg.options = dataclasses.asdict(task_cls.parse_options(cfg.options))
    return recipe


def run_dir_for(cfg: RunConfig) -> Path:
    out = Path(cfg.out).resolve()
    path = (out / cfg.run_id()).resolve()
    if path.parent != out:  # run ids are [A-Za-z0-9._-]; this guards the invariant
        raise UserError(f"run folder {path} would leave --out {out}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Run:
    """One run; `execute()` does the work and returns the results record (a dict)."""

    def __init__(self, cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print,
                 claim: bool = True):
        self.cfg, self.resume, self.log, self.take_claim = cfg, resume, log, claim
        task_cls = validate(cfg)
        self.recipe = resolve(cfg, task_cls)
        self.device = distributed.rank_device(resolve_device(cfg.device))
        self.world = distributed.init_from_env(self.device)
        self.main = self.world.is_main  # only rank 0 writes and logs
        if not self.main:
            self.log = log = lambda s: None
        # A weights name (yolov3-tinyu.pt, torchvision:<Enum>.<WEIGHT>, tusimple_18.pth) becomes its cached file.
        self.weights = hub.resolve(cfg.weights, log=log)
        self.task: Task = build_task(cfg.task, TaskConfig(
            model=cfg.model, data=Path(cfg.data) if cfg.data else None,  # type: ignore[arg-type]
            weights=self.weights, batch_size=cfg.batch_size, device=self.device,
            workers=cfg.workers, seed=cfg.seed, options=dict(cfg.options), trust_weights=cfg.trust_weights,
        ))
        self.run_id = cfg.run_id()
        # Absolute, so records name their files wherever `benchmark export` later runs from.
        self.dir = run_dir_for(cfg)
        self.record: RunRecord | None = None
        self.model: nn.Module | None = None  # the live model and method of the run, once built (for inspection)
        self.method: PruningMethod | None = None
        self.tracker = Tracker(cfg, self.dir, resume=resume, log=log, active=self.main)

    # ---- the run -----------------------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        cfg = self.cfg
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the run folder {self.dir} ({exc.strerror}); check --out") from None
        with self._claimed():
            previous = _read_json(self.dir / "record.json")
            distributed.same_everywhere(previous.get("status"), "the run's record.json")
            if self.resume and previous.get("status") == "completed":
                self.log(f"{self.run_id} is already completed; its record is {self.dir / 'record.json'}")
                self._store_and_clean(previous)  # a kill may have come between the record and the store row
                return previous
            seed_everything(cfg.seed)
            rec = self.record = RunRecord.start(cfg, self.dir, self._provenance(), self.task)
            ckpt = resume.load(self.dir / "checkpoint.pt", self.run_id, self.device) if self.resume else None
            distributed.same_everywhere(None if ckpt is None else (ckpt["phase"], ckpt["epoch"]), "the checkpoint")
            self._t0 = time.perf_counter()
            self._total_before = float((ckpt or {}).get("record", {}).get("timing", {}).get("total_seconds", 0.0))
            try:
                self._pipeline(rec, ckpt)
                rec.status = "completed"
            except TrainingDiverged as exc:
                rec.status, rec.error = "failed", f"diverged: {exc}"
            except KeyboardInterrupt:
                rec.status, rec.error = "interrupted", "interrupted by the user; continue with --resume"
                self._finish(rec)
                raise
            except UserError:
                raise  # a mistake in the request, found before any result: nothing to keep
            except Exception as exc:  # a crash still leaves its record (and closes the trackers), then propagates
                if distributed.lost_peer(exc):
                    rec.status, rec.error = "interrupted", ("another process of the data-parallel job stopped; "
                                                            "continue with --resume")
                    self._finish(rec)
                    raise JobInterrupted(f"run {self.run_id}: {rec.error} (last checkpoint in {self.dir})") from None
                rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
                self._finish(rec)
                raise
            self._finish(rec)
            return rec.to_dict()

    @contextlib.contextmanager
    def _claimed(self) -> Iterator[None]:
        """The same claim a sweep cell takes: two processes never run one run id at once."""
        if not self.take_claim:
            yield
            return
        from harness.sweep import Claim

        claim = Claim(self.cfg.store, self.run_id) if self.main else None
        if not distributed.agree(claim is None or claim.acquire()):
            who = (claim.holder() if claim is not None else None) or {}
            raise UserError(f"run {self.run_id} is being run by another process (pid {who.get('pid')} on "
                            f"{who.get('host')}); wait for it, or resume it with --resume once it has stopped")
        if claim is None:  # ranks > 0: rank 0 holds the claim for the whole job
            yield
            return
        try:
            with claim.beating(log=self.log):
                yield
        finally:
            claim.release()

    def _provenance(self) -> dict[str, Any]:
        info = provenance.collect(self.device, self.cfg.seed)
        info["torch_threads"] = torch.get_num_threads()
        info["distributed"] = self.world.describe()
        if self.weights is not None and self.weights.is_file():
            info["weights_sha256"] = file_sha256(self.weights)
        info["ground_truth"] = [{"path": str(p), "sha256": file_sha256(p)}
                                for p in self.task.ground_truth_files() if Path(p).is_file()]
        info["evaluator"] = self.task.evaluator_identity()
        return info

    def _finish(self, rec: RunRecord) -> None:
        """Record first (atomic), store row second, checkpoint removed last: a kill at any point loses nothing."""
        if not self.main:
            return
        rec.provenance["finished"] = provenance.now()
        rec.timing["total_seconds"] = self._elapsed()
        try:
            rec.write(self.dir / "record.json")
        except UserError as exc:  # a completed record is already there: keep it
            self.log(f"note: {exc}")
            return
        self.tracker.finish(rec)  # after the record is safe: trackers hold a copy, never the only one
        self._store_and_clean(rec.to_dict())

    def _store_and_clean(self, doc: dict[str, Any]) -> None:
        """The store row, then (for a completed run) the checkpoint's removal: the steps after the record."""
        if not self.main:
            return
        try:
            ResultStore(self.cfg.store).put(doc)
        except (sqlite3.Error, OSError, UserError) as exc:
            self.log(f"warning: the results store {self.cfg.store} was not updated ({exc}); the record is safe in "
                     f"{self.dir / 'record.json'}: `benchmark reindex --out {self.cfg.out} --store {self.cfg.store}` "
                     "adds it later")
            return
        if doc.get("status") == "completed" and not self.cfg.keep_checkpoint:
            # The resume state is the largest file a run leaves (model + method state + optimizer: ~2 GB for UFLD).
            (self.dir / "checkpoint.pt").unlink(missing_ok=True)

    def _elapsed(self) -> float:
        return self._total_before + time.perf_counter() - self._t0

    # ---- pipeline steps ---------------------------------------------------------------------------------------------
    def _pipeline(self, rec: RunRecord, ckpt: dict[str, Any] | None) -> None:
        cfg = self.cfg
        model = self.model = self.task.build_model()
        plan = self.plan_for(model)  # before pretraining: a bad rate fails in a second, not after an hour
        model = self.dense_model(model, rec)
        plan.to_yaml(self.dir / "prune_config.yaml")
        rec.artifacts["prune_config"] = str(self.dir / "prune_config.yaml")
        method = self.method = make_method(cfg.method, cfg.settings, epochs=int(cfg.epochs or 0), seed=cfg.seed,
                                           options=cfg.method_options)
        epochs, retrain_epochs = int(cfg.epochs or 0), int(cfg.retrain_epochs or 0)
        if not method.trains:  # same budget for every method: one-shot methods retrain for the method epochs too
            epochs, retrain_epochs = 0, retrain_epochs + epochs
        if ckpt is None:
            self.evaluate_into(rec, "dense", model, "dense eval")
        else:
            rec.restore_progress(ckpt["record"])
        method.attach(model, plan)
        method.step_budget = cfg.max_method_steps
        phase, start = ("method", 1) if ckpt is None else (ckpt["phase"], int(ckpt["epoch"]) + 1)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            if phase == "method":
                method.load_state_dict(ckpt["hooks"])
            self.log(f"resuming {self.run_id} at {phase} epoch {start}")
        rec.config["method_config"] = method.config()
        rec.epochs.update(method_budget=epochs, threshold=cfg.early_stop)
        driver = self.task.driver()

        if phase == "method":
            spec = self.spec("method", epochs, method, float(cfg.lr), start, ckpt)  # type: ignore[arg-type]
            hooks = [PhaseTimer(), CurveLog("train"),
                     HardPruneCheck(plan, method.projection, int(cfg.check_every or 0), cfg.early_stop,
                                    self.task.higher_is_better), StepBudget(), self.tracker.hook(),
                     EpochLog(self.task.primary_metric), Checkpoint(cfg.checkpoint_every)]
            facts = run_phase(driver, self.context(model, spec, rec), hooks)
            if facts.get("schedule"):
                rec.config["schedule"] = facts["schedule"]
            if epochs > 0:  # the live (soft-sparse) weights: Tran, ADMM pruning's "before pruning", the code's "before hardpruning"
                self.evaluate_into(rec, "before_hardprune", model, "before-hard-prune eval")

        masks = hard_prune_(dict(model.named_parameters()), plan.ratios, method.projection)  # idempotent on resume
        if phase == "method" or "hardpruned" not in rec.metrics:
            self.evaluate_into(rec, "hardpruned", model, "hard-pruned eval")
        self.record_compression(rec, model, plan)

        if retrain_epochs > 0:
            keeper = MaskedRetrain(masks)
            keeper.attach(model, plan)
            spec = self.spec("retrain", retrain_epochs, keeper, float(cfg.retrain_lr or cfg.lr),  # type: ignore[arg-type]
                             start if phase == "retrain" else 1, ckpt if phase == "retrain" else None)
            hooks = [PhaseTimer(), CurveLog("retrain"), RetrainEval(), self.tracker.hook(),
                     EpochLog(self.task.primary_metric), Checkpoint(cfg.checkpoint_every)]
            run_phase(driver, self.context(model, spec, rec), hooks)
            self.summarize_retrain(rec)
        rec.epochs.setdefault("retrain", 0)
        rec.timing.setdefault("retrain_seconds", 0.0)
        if self.main:  # the other ranks are done: only rank 0 writes, evaluating without them
            with distributed.local_only():
                self.save_artifacts(rec, model, masks)

    def spec(self, name: str, epochs: int, hooks: PruningMethod, lr: float, start: int,
             ckpt: dict[str, Any] | None) -> PhaseSpec:
        cfg = self.cfg
        return PhaseSpec(name=name, epochs=epochs, hooks=hooks, optimizer=str(cfg.optimizer), lr=lr,
                         momentum=self.recipe.momentum, weight_decay=float(cfg.weight_decay or 0.0),
                         scheduler=cfg.scheduler or "constant", warmup_iters=int(cfg.warmup_iters or 0), amp=cfg.amp,
                         max_steps=cfg.max_steps, seed=cfg.seed, start_epoch=start,
                         optimizer_state=ckpt["optimizer"] if ckpt is not None else None)

    def context(self, model: nn.Module, spec: PhaseSpec, rec: RunRecord) -> PhaseContext:
        def save(state: dict[str, Any]) -> None:
            if not self.main:
                return
            rec.timing["total_seconds"] = self._elapsed()
            state["record"] = rec.to_dict()
            resume.save(self.dir / "checkpoint.pt", {"run_id": self.run_id, **state})

        return PhaseContext(model=model, spec=spec, record=rec, evaluate=self.task.evaluate, primary=self.primary,
                            log=self.log, save_checkpoint=save)

    def primary(self, metrics: dict[str, float]) -> float:
        return float(metrics[self.task.primary_metric])

    def evaluate_into(self, rec: RunRecord, stage: str, model: nn.Module, desc: str) -> None:
        metrics = self.task.evaluate(model, desc)
        rec.metrics_full[stage], rec.metrics[stage] = metrics, self.primary(metrics)
        self.log(f"{stage} {self.task.primary_metric}: {rec.metrics[stage]:.2f}")

    def plan_for(self, model: nn.Module) -> SparsityPlan:
        cfg = self.cfg
        if cfg.prune_config:
            return SparsityPlan.from_yaml(cfg.prune_config, model)
        if cfg.prune_pattern:
            names = weights_by_pattern(model, cfg.prune_pattern)
            if not names:
                raise UserError(f"--prune-pattern {cfg.prune_pattern!r} matches no parameter of the model")
        else:
            names = self.task.default_prune_set(model)
        if nm_ratio(cfg.settings.projection) is not None:  # the pattern fixes every ratio; a rate is only checked
            return nm_plan(model, names, cfg.settings.projection, rate=cfg.rate, rule=self.task.headline_rule)
        return SparsityPlan.for_rate(model, names, float(cfg.rate), rule=self.task.headline_rule)  # type: ignore[arg-type]

    def record_compression(self, rec: RunRecord, model: nn.Module, plan: SparsityPlan) -> None:
        report = measure_compression(model, plan.ratios)
        rec.compression = {
            "achieved": report.rates, "totals": report.totals, "headline_rule": self.task.headline_rule,
            "predicted": plan.predicted_compression(model), "layers": report.layer_sparsity,
            "prune_ratios": plan.ratios,
        }

    def summarize_retrain(self, rec: RunRecord) -> None:
        curve = rec.curves["retrain"]
        last = curve[-1]
        rec.metrics_full["retrained"] = {k: v for k, v in last.items()
                                         if k not in ("epoch", "loss", "seconds", "metric", "lr")}
        rec.metrics["retrained"] = last["metric"]
        values = [p["metric"] for p in curve]
        rec.metrics["retrained_best"] = max(values) if self.task.higher_is_better else min(values)

    def save_artifacts(self, rec: RunRecord, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        # One file: 1-bit masks + packed non-zeros (safetensors); the retrain masks come back from it too.
        info = save_pruned(model.state_dict(), masks, self.dir / "pruned_model.safetensors", masks=masks)
        rec.artifacts["model"] = info.path
        rec.size = info.to_record()
        if self.cfg.costs:
            rec.costs = model_costs(model, self.task.example_input(1), int(self.cfg.batch_size or 1),
                                    threads=torch.get_num_threads(), repeats=10, warmup=2).to_record()
        written = self.task.write_predictions(model, self.dir / "predictions.json")
        if written is not None:
            rec.artifacts["predictions"] = str(written[0])

    # ---- dense model ------------------------------------------------------------------------------------------------
    def dense_model(self, model: nn.Module, rec: RunRecord) -> nn.Module:
        """Pretrain `model` in place when no weights were given, cached under every setting that changes it."""
        cfg, recipe = self.cfg, self.recipe
        if cfg.weights:
            return model
        epochs = int(cfg.pretrain_epochs or 0)
        if not epochs:
            self.log("warning: no --weights and no --pretrain-epochs: pruning a randomly initialised model")
            return model
        # Dense training anneals per epoch unless the task trains per iteration (UFLD's warm-up + cosine).
        kind = "cosine-iter" if cfg.scheduler == "cosine-iter" else "cosine"
        spec = PhaseSpec(name="pretrain", epochs=epochs, hooks=PruningMethod(), optimizer=recipe.optimizer,
                         lr=float(recipe.pretrain_lr or recipe.lr), momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay, scheduler=kind, warmup_iters=int(cfg.warmup_iters or 0),
                         amp=cfg.amp, max_steps=cfg.max_steps, seed=cfg.seed)
        key = {"task": cfg.task, "model": cfg.model, "options": cfg.options, "data": cfg.data,
               "data_fingerprint": self.task.data_fingerprint(), "batch_size": cfg.batch_size,
               **{k: getattr(spec, k) for k in ("epochs", "optimizer", "lr", "momentum", "weight_decay",
                                                "scheduler", "warmup_iters", "amp", "max_steps", "seed")}}
        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        cache_dir = Path(os.environ.get("PRUNEBENCH_CACHE") or Path(cfg.out) / "cache").resolve()
        cache = cache_dir / f"dense-{digest}.pt"
        # Where the dense weights live: `benchmark export` draws before/after weight histograms from them.
        rec.artifacts["dense_weights"] = str(cache)
        if distributed.same_everywhere(cache.is_file(), f"the dense-model cache {cache}"):
            problem = None
            try:
                model.load_state_dict(torch.load(cache, map_location=self.device, weights_only=True))
            except Exception as exc:  # noqa: BLE001 — a torn or foreign cache file is retrained, not fatal
                problem = type(exc).__name__
            if distributed.agree(problem is None):  # every rank loaded it, or all pretrain again
                self.log(f"dense model: cached pretraining {cache}")
                return model
            self.log(f"warning: dense cache {cache} is unreadable ({problem or 'on another rank'}); pretraining again")
        self.log(f"dense model: pretraining {epochs} epochs (cached as {cache})")
        ctx = PhaseContext(model=model, spec=spec, record=rec, evaluate=self.task.evaluate, primary=self.primary,
                           log=self.log, save_checkpoint=lambda state: None)
        hooks: list[EpochHook] = [PhaseTimer(), self.tracker.hook(), EpochLog(self.task.primary_metric)]
        run_phase(self.task.driver(), ctx, hooks)
        if self.main:
            resume.save(cache, model.state_dict())
        return model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def run(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print, claim: bool = True) -> dict[str, Any]:
    return Run(cfg, resume=resume, log=log, claim=claim).execute()
