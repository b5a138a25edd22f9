"""What defines a run, declared once: `RunConfig` (the run), `MethodSettings` (the pruning method's knobs) and
`TrainRecipe` (a task's default optimisation settings).

The CLI flags of `benchmark run` and `benchmark sweep`, the sweep YAML keys and the validation all come from these
fields (harness/options.py), so a default or a bound lives in exactly one place. Fields left None take the task's
recipe value; `resolve()` fills them in before the run id is computed, so the same experiment has one id however it
was asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from harness.errors import UserError
from harness.options import build, setting

DEFAULT_OUT = "prunebench_runs"
DEFAULT_STORE = "prunebench.sqlite"
AMP_DTYPES = ("bf16", "fp16")
OPTIMIZERS = ("adam", "sgd", "adamw")
MODES = ("paper", "reference")
RHO_SCHEDULES = ("constant", "multiplicative")
STAGE2_NUMERATORS = ("paper", "bragin", "reference")


def _methods() -> list[str]:
    from harness.methods import METHODS

    return METHODS.names()


def _projection(value: object) -> str:
    from harness.projection import check_projection

    check_projection(str(value))  # a one-line UserError naming the valid forms
    return str(value)


def _schedulers() -> list[str]:
    from harness.schedules import SCHEDULERS

    return list(SCHEDULERS)


@dataclass
class MethodSettings:
    """Hyper-parameters of the pruning methods (defaults: the SLR paper's; SLR/ADMM share rho and the cadence)."""

    mode: str = setting("paper", choices=MODES, help="SLR/ADMM: 'paper' follows the printed equations; 'reference' "
                        "reproduces the authors' code (W_prev aliasing, zero snapshots, autograd-leak scaling). The "
                        "SLR toggles below override single pieces of either mode.")
    rho: float = setting(0.1, gt=0.0, help="Penalty rho of SLR and ADMM (paper and authors' code: 0.1).")
    rho_schedule: str = setting("constant", choices=RHO_SCHEDULES, help="SLR/ADMM: rho stays constant (the SLR "
                                "paper and its code) or is multiplied by --rho-factor after every dual/Z update "
                                "(ADMM-NN's increasing penalty).")
    rho_factor: float = setting(1.0, gt=0.0, help="Factor applied to rho after each update with --rho-schedule "
                                "multiplicative (ADMM-NN grows rho, e.g. 1.3); SLR's Lambda is kept, so U = "
                                "Lambda/rho shrinks with it, ADMM's scaled dual U is kept as is.")
    s0: float = setting(0.01, gt=0.0, help="SLR initial stepsize s0 (paper and code: 0.01).")
    M: float = setting(300.0, gt=0.0, flag="--M", help="SLR stepsize parameter M of eq. (11).")
    r: float = setting(0.1, gt=0.0, flag="--r", help="SLR stepsize parameter r of eq. (11).")
    update_every: int = setting(1, lo=1, help="Epochs between SLR/ADMM dual/Z updates (ADMM's T): updates at "
                                "epochs 1+T, 1+2T, ... as in the authors' code.")
    updates_per_epoch: int = setting(1, lo=1, help="SLR/ADMM dual/Z updates per update epoch, at evenly spaced "
                                     "batches (batch floor(j*n/K), j < K, n = epoch 1's batch count), from epoch 2 "
                                     "on. The authors' code updates once, at batch 0.")
    update_every_steps: Optional[int] = setting(None, lo=1, help="SLR/ADMM: a dual/Z update every N optimizer "
                                                "steps counted across epochs, the first at the first step of epoch "
                                                "2 (after one epoch of steps), as the paper's iteration counts "
                                                "read. Excludes --update-every > 1 and --updates-per-epoch > 1.")
    projection: str = setting("topk", parse=_projection, help="Projection onto the sparse set: topk (exact, on the "
                              "device), percentile (the reference code's numpy thresholds) or nm:N:M (N:M "
                              "semi-structured, e.g. nm:2:4: the N largest of every M consecutive weights; the rate "
                              "follows from the pattern).")
    rounds: int = setting(4, lo=1, help="Iterative magnitude pruning: number of pruning rounds.")
    # SLR toggles: None keeps the mode's value (harness/methods/slr.py SLRToggles); set one to ablate it.
    wprev_alias: Optional[bool] = setting(None, help="SLR: W_prev aliases the live weights, so condition (3) "
                                          "reduces to ce < ce_prev and the stage-1 norm ratio is 1 (the authors' "
                                          "code; the paper keeps W^{k-1}). Default: the mode's.")
    prev_init: Optional[str] = setting(None, choices=("zeros", "initial"), help="SLR: W_prev/Z_prev start at "
                                       "zeros (authors' code: the first Lambda is s0*W) or at W0/Z0 (paper). "
                                       "Default: the mode's.")
    dual_grad_leak: Optional[bool] = setting(None, help="SLR: emulate the authors' code's autograd leak (the "
                                             "penalty gradient scaled by 1 + sum s_j/rho; the paper has none). "
                                             "ADMM leaks in reference mode. Default: the mode's.")
    cond2_f: Optional[str] = setting(None, choices=("ce_vs_ce_prev", "cancel"), help="SLR: f in condition (8): "
                                     "the authors' code compares ce with ce_prev; in the paper f(W^k) is on both "
                                     "sides and cancels. Default: the mode's.")
    stage2_numerator: Optional[str] = setting(None, choices=STAGE2_NUMERATORS, help="SLR: numerator of eq. (10). "
                                              "paper: ||W^{k-1} - Z^{k-1}|| as printed (compounds eq. (5)'s ratio, "
                                              "a probable typo); bragin: ||W^k - Z^{k-1}||, eq. (5)'s denominator, "
                                              "as Bragin et al.'s stepsize rule implies; reference: the authors' "
                                              "code, ||W_prev - Z_prev|| after stage 1 moved the snapshots "
                                              "(= bragin with aliasing). Default: the mode's.")
    norm_agg: Optional[str] = setting(None, choices=("sum", "global"), help="SLR: sum of per-layer norms "
                                      "(authors' code) or one global Frobenius norm (paper). Default: the mode's.")
    guard_eps: Optional[float] = setting(None, lo=0.0, help="SLR: skip a stepsize update when the denominator "
                                         "is below guard_eps*(numerator+1) (paper mode 1e-12; the authors' code "
                                         "skips only exact zeros, 0). Default: the mode's.")

    # Added after records existed: left out of the run id while at their defaults, so earlier runs keep their ids.
    LATE_DEFAULTS = {"rho_schedule": "constant", "rho_factor": 1.0, "updates_per_epoch": 1, "update_every_steps": None}
    SLR_TOGGLES = ("wprev_alias", "prev_init", "dual_grad_leak", "cond2_f", "stage2_numerator", "norm_agg",
                   "guard_eps")

    def slr_overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.SLR_TOGGLES if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "settings", flags: bool = False) -> "MethodSettings":
        values = dict(values)
        values.update(values.pop("slr_overrides", None) or {})  # records and configs of earlier versions
        values.pop("seed", None)  # random pruning now takes the run's seed
        settings = build(cls, values, where, flags=flags)
        settings.check_cadence()
        return settings

    def check_cadence(self) -> None:
        """One update cadence at a time: steps, or epochs (with K updates in each)."""
        if self.update_every_steps is not None and (self.update_every > 1 or self.updates_per_epoch > 1):
            raise UserError("--update-every-steps counts steps across epochs; it cannot be combined with "
                            "--update-every > 1 or --updates-per-epoch > 1")


@dataclass
class TrainRecipe:
    """A task's default optimisation settings (each overridable from the CLI)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "constant"  # constant | cosine (per epoch) | cosine-iter (per iteration), over each phase
    warmup_iters: int = 0  # linear warm-up iterations at the start of each phase (cosine-iter only)
    epochs: int = 10  # method (SLR/ADMM) epochs
    retrain_epochs: int = 0
    retrain_lr: float | None = None  # None: same as lr
    pretrain_epochs: int = 0  # dense training when no weights are given
    pretrain_lr: float | None = None
    check_every: int = 0  # hard-prune check period in epochs (0: only at the end)
    batch_size: int | None = None  # None: the task decides


def _identity_free(name: str) -> bool:
    return name in RunConfig.NOT_IDENTITY


@dataclass
class RunConfig:
    """Everything that defines a run. Fields left None take the task's recipe defaults (see `resolve`)."""

    task: str = setting("digits", help="Task (see `benchmark tasks`).")
    model: Optional[str] = setting(None, help="Model (default: the task's).")
    method: str = setting("slr", choices=_methods, help="Pruning method.")
    rate: Optional[float] = setting(None, gt=1.0, help="Target compression rate C = counted params / non-zeros "
                                    "(the paper's rule), e.g. 8.71.")
    prune_config: Optional[str] = setting(None, help="YAML 'prune_ratios: {param_name: ratio}' instead of --rate.")
    prune_pattern: Optional[str] = setting(None, help="Regex over parameter names replacing the task's prune set.")
    data: Optional[str] = setting(None, help="Dataset folder (see the task's data script).")
    weights: Optional[str] = setting(None, help="Dense weights, loaded strictly (mismatches list the keys).")
    trust_weights: bool = setting(False, help="Allow --weights files that pickle Python objects (Ultralytics "
                                  "checkpoints); only for files from a source you trust: unpickling runs code.")
    epochs: Optional[int] = setting(None, lo=0, help="Method (SLR/ADMM) epochs. Default: the task's recipe.")
    max_method_steps: Optional[int] = setting(None, lo=1, help="End the method phase after this many optimizer "
                                              "steps (the paper's budgets in iterations, e.g. 20000), or after "
                                              "--epochs, whichever comes first: set --epochs high enough.")
    retrain_epochs: Optional[int] = setting(None, lo=0, help="Masked-retrain epochs after the hard prune.")
    pretrain_epochs: Optional[int] = setting(None, lo=0, help="Without --weights: train the dense model first "
                                             "(cached by every setting that changes it).")
    batch_size: Optional[int] = setting(None, lo=1, help="Training batch size.")
    optimizer: Optional[str] = setting(None, choices=OPTIMIZERS, help="Optimizer.")
    lr: Optional[float] = setting(None, gt=0.0, help="Learning rate of the method phase.")
    retrain_lr: Optional[float] = setting(None, gt=0.0, help="Learning rate of masked retraining.")
    weight_decay: Optional[float] = setting(None, lo=0.0, help="Weight decay.")
    scheduler: Optional[str] = setting(None, choices=_schedulers, help="LR schedule of each phase: constant, "
                                       "cosine (per epoch) or cosine-iter (per iteration with linear warm-up, "
                                       "UFLD's). Default: the task's recipe.")
    warmup_iters: Optional[int] = setting(None, lo=0, help="Linear warm-up iterations of cosine-iter.")
    check_every: Optional[int] = setting(None, lo=0, help="Evaluate a hard-pruned copy every N method epochs "
                                         "(0: only at the end).")
    early_stop: Optional[float] = setting(None, help="Stop the method phase once the hard-pruned metric reaches "
                                          "this value.")
    settings: MethodSettings = setting(default_factory=MethodSettings, cli=False)
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.")
    amp: Optional[str] = setting(None, choices=AMP_DTYPES, help="Autocast dtype (fp16 adds a gradient scaler).")
    seed: int = setting(0, lo=0, help="Random seed (data order, augmentation, initialisation, random masks).")
    workers: int = setting(0, lo=0, help="Data-loader worker processes.")
    options: dict[str, Any] = setting(default_factory=dict, cli=False)  # task options (--opt key=value)
    method_options: dict[str, Any] = setting(default_factory=dict, cli=False)  # a plugin method's own options
    max_steps: Optional[int] = setting(None, lo=1, help="Cap on steps per epoch (smoke runs).")
    # Where things go and how often to checkpoint: not part of the run's identity (they do not change the result).
    store: str = setting(DEFAULT_STORE, help="Results store (SQLite file).")
    out: str = setting(DEFAULT_OUT, help="Folder for run folders (record, checkpoint, pruned model).")
    checkpoint_every: int = setting(1, lo=0, help="Epochs between resume checkpoints (always at a phase's end; "
                                    "0: none). Raise it for big models: a UFLD checkpoint is about 2 GB.")
    keep_checkpoint: bool = setting(False, help="Keep checkpoint.pt after the run completes (only resuming needs "
                                    "it).")
    costs: bool = setting(True, help="Measure the pruned model's MACs (dense and effective) and latency at batch 1 "
                          "and the training batch, on the run's device, into the record.")
    tensorboard: bool = setting(True, help="Write TensorBoard event files (curves, hard-prune checks, dual updates, "
                                "final metrics) into <run folder>/tensorboard/ (on by default).")
    mlflow: Optional[str] = setting(None, help="Also log params, per-epoch and final metrics to this MLflow tracking "
                                    "URI (e.g. file:///tmp/mlruns or http://host:5000); needs "
                                    "`pip install prunebench[mlflow]`.")

    NOT_IDENTITY = ("store", "out", "workers", "device", "checkpoint_every", "keep_checkpoint", "trust_weights",
                    "tensorboard", "mlflow", "costs")
    # Axes of a sweep grid (set per cell, not under `run:`) and fields with their own YAML section.
    GRID_FIELDS = ("task", "model", "method", "rate", "seed")

    def as_record(self) -> dict[str, Any]:
        """Every field, less knobs added after records existed while they hold their defaults: earlier runs keep
        their run ids and stay in the same leaderboard cells as new runs of the same experiment."""
        d = dataclasses.asdict(self)
        d["settings"] = {k: v for k, v in d["settings"].items() if MethodSettings.LATE_DEFAULTS.get(k, k) != v}
        if d["max_method_steps"] is None:
            del d["max_method_steps"]
        return d

    def identity(self) -> dict[str, Any]:
        """The fields that decide the result (hashed into the run id)."""
        return {k: v for k, v in self.as_record().items() if not _identity_free(k)}

    def run_id(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        rate = f"{self.rate:g}x" if self.rate is not None else "cfg"
        raw = f"{self.task}-{self.model}-{self.method}-{rate}-s{self.seed}-{digest}"
        return re.sub(r"[^A-Za-z0-9._-]", "_", raw)  # names are registry-checked; this is a second fence

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "run", flags: bool = False) -> "RunConfig":
        """A config from a record's `config`, a YAML mapping or CLI flags: every value typed and checked."""
        values = dict(values)
        settings = MethodSettings.from_dict(values.pop("settings", None) or {}, f"{where} settings", flags)
        for key in ("options", "method_options"):
            if values.get(key) is None:
                values.pop(key, None)
        values = {k: v for k, v in values.items() if k not in ("schedule", "method_config")}  # recorded outputs
        cfg = build(cls, values, where, flags=flags)
        cfg.settings = settings
        return cfg
