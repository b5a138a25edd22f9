"""Experiment tracking: every run's curves in TensorBoard (on by default) and optionally in MLflow (`--mlflow URI`).

The results record (harness/record.py) stays the source of truth; trackers get a copy of what it holds, as it
happens, so a long run can be watched live (`tensorboard --logdir prunebench_runs`) and compared in the tools users
already have. One `Tracker` per run fans out to its sinks:

    TensorBoardSink  event files in <run folder>/tensorboard/ (torch.utils.tensorboard.SummaryWriter)
    MlflowSink       a run named after the run id in the MLflow experiment "prunebench" (or $MLFLOW_EXPERIMENT_NAME)

`Tracker.hook()` is an `EpochHook` (harness/phases.py) for each phase's hook list; put it after the hooks that
evaluate (HardPruneCheck, RetrainEval) so it finds their results of the epoch in the record. `Tracker.finish(record)`
writes the final metrics and the config as hyper-parameters and closes the sinks. Scalars, with the phase's epoch as
step:

    <phase>/loss, <phase>/lr, <phase>/epoch_seconds, <phase>/<method log key>   every epoch (penalty, w_minus_z, s, k)
    hardprune_check/<metric>                                                     method epochs with a hard-prune check
    retrain_eval/<metric>                                                        every retrain epoch
    updates/<key>                                                                every dual/Z update, at its epoch
    final/<stage>, final/compression_<rule>, final/total_seconds                 once, at the end (step 0)
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from torch import nn

from harness.errors import UserError
from harness.phases import EpochHook, EpochStats, PhaseContext

# Keys of a curve point that are bookkeeping, not metrics of the evaluated model.
_NOT_METRICS = frozenset({"epoch", "loss", "seconds", "lr", "metric", "phase"})
# Which record curve holds a phase's per-epoch evaluation, and the tag group it is logged under.
_EVAL_CURVES = {"method": ("hardprune_checks", "hardprune_check"), "retrain": ("retrain", "retrain_eval")}
MLFLOW_INSTALL = "pip install prunebench[mlflow]"


def numeric(values: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, float]:
    """The finite numbers (bools as 0/1) of `values`: what a scalar chart can show."""
    out = {}
    for key, value in values.items():
        if key in skip or not isinstance(value, (int, float)):
            continue
        value = float(value)
        if math.isfinite(value):
            out[key] = value
    return out


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str | float | int | bool]:
    """A nested config as flat `a.b` keys with scalar values (hyper-parameter tables take no nesting or None)."""
    out: dict[str, str | float | int | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:  # None, lists, empty dicts: their text, so "not set" is visible too
            out[name] = json.dumps(value, default=str)
    return out


def final_scalars(record: Any) -> dict[str, float]:
    """The end-of-run numbers of a RunRecord: metric per stage, achieved compression per rule, total time."""
    out = {f"final/{stage}": value for stage, value in numeric(record.metrics).items()}
    out.update({f"final/compression_{rule}": value
                for rule, value in numeric(record.compression.get("achieved", {})).items()})
    if "total_seconds" in record.timing:
        out["final/total_seconds"] = float(record.timing["total_seconds"])
    return out


class Sink(Protocol):
    """A tracking backend."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        ...

    def finish(self, params: dict[str, Any], final: dict[str, float], status: str) -> None:
        ...


class TensorBoardSink:
    """Event files under `log_dir`, flushed after every epoch so a live TensorBoard shows the run as it goes.

    A resumed run appends a new event file to the same folder; TensorBoard merges them into one curve."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when a run tracks

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def finish(self, params: dict[str, Any], final: dict[str, float], status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        self.scalars(final, step=0)
        # The HPARAMS tab: the config against the final metrics, written into this run's own event file (the
        # writer's add_hparams would start a second, timestamped run folder).
        for summary in hparams(params, final):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("status", status)
        self.writer.close()


class MlflowSink:
    """A run in an MLflow tracking store, through `MlflowClient` (no global active-run state in our process).

    Opening it checks the store, so a wrong URI fails before any training; a store that fails later only stops the
    tracking (one warning), never the run: the record is what counts."""

    EXPERIMENT = "prunebench"
    STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}

    def __init__(self, uri: str, run_id: str, tags: dict[str, str], resume: bool, warn: Callable[[str], None]):
        if uri.startswith("file:") or "://" not in uri:
            # mlflow-skinny has no database backend and MLflow 3 refuses its file store unless asked: the user
            # asked, by naming a folder. An explicit MLFLOW_ALLOW_FILE_STORE=false still wins.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # A tracking server that is down must not hold a training run for minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        from mlflow.entities import Metric, Param, RunStatus
        from mlflow.tracking import MlflowClient

        self.Metric, self.Param, self.RunStatus = Metric, Param, RunStatus
        self.uri, self.warn, self.live = uri, warn, True
        try:
            self.client = MlflowClient(tracking_uri=uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.EXPERIMENT
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            previous = self.client.search_runs(
                [exp_id], filter_string=f"tags.`prunebench.run_id` = '{run_id}'",
                order_by=["attributes.start_time DESC"], max_results=1) if resume else []
            if previous:  # --resume continues the same MLflow run
                self.run = previous[0].info.run_id
                self.client.update_run(self.run, status="RUNNING")
            else:
                self.run = self.client.create_run(exp_id, run_name=run_id, tags=tags).info.run_id
        except Exception as exc:  # noqa: BLE001 — any store failure at start is the user's URI
            raise UserError(f"--mlflow {uri}: cannot open the MLflow tracking store ({_first_line(exc)})") from None

    def _call(self, what: str, fn: Callable[[], Any]) -> None:
        if not self.live:
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 — tracking never stops a run
            self.live = False
            self.warn(f"warning: MLflow logging to {self.uri} stopped ({what}: {_first_line(exc)}); the run "
                      "goes on and its record keeps everything")

    def scalars(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self.Metric(mlflow_key(k), v, now, step) for k, v in values.items()]
        self._call("metrics", lambda: self.client.log_batch(self.run, metrics=metrics))

    def finish(self, params: dict[str, Any], final: dict[str, float], status: str) -> None:
        def log() -> None:
            # MLflow refuses to change a logged param; a resumed run logs only what it does not have yet.
            have = self.client.get_run(self.run).data.params
            new = [self.Param(mlflow_key(k), str(v)[:6000]) for k, v in params.items() if mlflow_key(k) not in have]
            for i in range(0, len(new), 100):  # MLflow's batch limit for params
                self.client.log_batch(self.run, params=new[i:i + 100])
            self.client.set_tag(self.run, "prunebench.status", status)

        self._call("params", log)
        self.scalars(final, step=0)
        self._call("end", lambda: self.client.set_terminated(self.run, status=self.STATUS.get(status, "FAILED")))


def mlflow_key(name: str) -> str:
    """MLflow names allow letters, digits, `_ - . / ` and space only."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class Tracker:
    """The tracking of one run. Construct it before the run starts (it checks that the MLflow package is there);
    sinks open on first use, once the run folder exists."""

    def __init__(self, cfg: Any, run_dir: Path, resume: bool = False, log: Callable[[str], None] = print,
                 active: bool = True):
        self.cfg, self.dir, self.resume, self.log = cfg, Path(run_dir), resume, log
        self.active = active  # False on ranks > 0 of a data-parallel run: rank 0 tracks for the job
        if cfg.mlflow and importlib.util.find_spec("mlflow") is None:
            raise UserError(f"--mlflow needs the MLflow client: {MLFLOW_INSTALL}")
        self._sinks: list[Sink] | None = None

    @property
    def enabled(self) -> bool:
        return self.active and bool(self.cfg.tensorboard or self.cfg.mlflow)

    @property
    def log_dir(self) -> Path:
        return self.dir / "tensorboard"

    def sinks(self) -> list[Sink]:
        if self._sinks is None:
            sinks: list[Sink] = []
            if self.cfg.tensorboard:
                sinks.append(TensorBoardSink(self.log_dir))
            if self.cfg.mlflow:
                tags = {"prunebench.run_id": self.cfg.run_id(), "task": str(self.cfg.task),
                        "model": str(self.cfg.model), "method": str(self.cfg.method)}
                sinks.append(MlflowSink(self.cfg.mlflow, self.cfg.run_id(), tags, self.resume, self.log))
            self._sinks = sinks
        return self._sinks

    def scalars(self, values: dict[str, float], step: int) -> None:
        if values:
            for sink in self.sinks():
                sink.scalars(values, step)

    def hook(self) -> EpochHook:
        return TrackHook(self)

    def finish(self, record: Any) -> None:
        """Final metrics and the config (as hyper-parameters) of a finished RunRecord; closes the sinks."""
        if not self.enabled:
            return
        try:
            sinks = self.sinks()
        except UserError as exc:  # the run is over: say it, keep the record
            self.log(f"warning: {exc}")
            return
        params = flat_params(record.config)
        for sink in sinks:
            sink.finish(params, final_scalars(record), record.status)
        self._sinks = []  # closed: a second finish writes nothing


class TrackHook(EpochHook):
    """Sends each epoch of a phase to the run's trackers: the driver's stats and the method's log, the epoch's
    evaluation that an earlier hook recorded, and the dual/Z updates the method made during the epoch."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def before_phase(self, ctx: PhaseContext) -> None:
        self.tracker.sinks()  # open them before training: a wrong --mlflow URI fails now, not after an epoch
        # Updates made before this point (an earlier phase, or before a resume) are not this phase's to log.
        self.logged_updates = len(getattr(ctx.spec.hooks, "updates", []))

    def after_epoch(self, ctx: PhaseContext, stats: EpochStats, view: nn.Module, optimizer: Any) -> None:
        if not self.tracker.enabled:
            return
        phase = ctx.spec.name
        values = {f"{phase}/loss": stats.train_loss, f"{phase}/lr": stats.lr, f"{phase}/epoch_seconds": stats.seconds}
        values.update({f"{phase}/{k}": v for k, v in numeric(stats.method_log).items()})
        curve, group = _EVAL_CURVES.get(phase, (None, None))
        points = ctx.record.curves.get(curve, []) if curve else []
        if points and points[-1].get("epoch") == stats.epoch and "metric" in points[-1]:
            skip = _NOT_METRICS | frozenset(stats.method_log)  # the curve point repeats the method's log
            values.update({f"{group}/{k}": v for k, v in numeric(points[-1], skip=skip).items()})
        self.tracker.scalars(values, stats.epoch)
        updates = getattr(ctx.spec.hooks, "updates", [])
        for update in updates[self.logged_updates:]:
            step = int(update.get("epoch", stats.epoch))  # iterative pruning's rounds carry no epoch: this one
            self.tracker.scalars({f"updates/{k}": v for k, v in numeric(update, skip=frozenset({"epoch"})).items()},
                                 step)
        self.logged_updates = len(updates)
