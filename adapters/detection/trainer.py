"""YOLO training through Ultralytics' own `DetectionTrainer`, with a pruning method's hooks.

Nothing of YOLO training is reimplemented: data pipeline, augmentation (mosaic, close_mosaic), loss, warm-up, LR
schedule, gradient accumulation, clipping and EMA are Ultralytics'. `PruningTrainer` only

* overrides `optimizer_step` so the method's penalty gradient / gradient masks are applied to the true,
  unscaled gradients, then clips, steps, runs `method.after_step()`, updates the EMA and re-masks the EMA in place;
* registers callbacks for the method's epoch/batch hooks and for the runner's per-epoch bookkeeping (the runner
  evaluates a hard-pruned deep copy of the EMA with the validator);
* turns off what a benchmark does not want from a training run: the per-epoch dense validation (the runner does its
  own evaluations), `last.pt`/`best.pt` writing and the `best.pt` final validation (fitness = mAP50-95 would pick a
  pre-prune epoch), Ultralytics' NaN "recovery" from `last.pt` (the runner marks the run diverged instead), and
  the AMP self-test that downloads `yolo26n.pt` (ultralytics 8.4 `utils/checks.py`).

Choices recorded in the results record (`CocoTask.describe()`):

* **Penalty scale.** Ultralytics' loss of one batch is the batch-mean loss × that batch's image count, and gradients of
  `accumulate` batches are summed before a step (ultralytics 8.4 `engine/trainer.py`). The penalty gradient is added
  once per optimizer step with `grad_scale` = the number of images whose losses were accumulated since the previous
  step, so the penalty has the weight it would have if `(ρ/2)‖W−Z+U‖²` were added to every batch-mean loss (exact
  also for a short last batch and for the warm-up's changing `accumulate`). SLR's f(W) is observed as the batch-mean
  loss (sum of `loss_items`), the same scale.
* **Clipping** (`max_norm=10`) happens *after* the penalty is added, i.e. the penalty is treated as part of the loss.
* **EMA.** Hard-prune checks and per-epoch retrain evaluations use a deep copy of `trainer.ema.ema`, as Ultralytics'
  own validation does. At the end of a phase the EMA weights are copied into the live model in place, so the runner's
  hard prune, final evaluation and saved model are the weights Ultralytics would have saved as `last.pt`.

Single device only: under DDP the loss is further multiplied by the world size and the penalty scale would differ.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Callable, Iterator

from harness import offline

offline.configure()  # before ultralytics is imported: no DNS probe, no settings in $HOME, font in place

import torch  # noqa: E402
from torch import nn  # noqa: E402
from ultralytics.engine import trainer as _ul_trainer  # noqa: E402
from ultralytics.models.yolo.detect import DetectionTrainer, DetectionValidator  # noqa: E402
from ultralytics.utils import LOGGER  # noqa: E402
from ultralytics.utils.torch_utils import unwrap_model  # noqa: E402

from harness.errors import TrainingDiverged, UserError  # noqa: E402
from harness.methods.base import PruningMethod  # noqa: E402
from harness.training import EpochStats  # noqa: E402

# Called by the trainer after every epoch with (stats, the EMA module to evaluate, the optimizer whose state the
# runner checkpoints); returns True to stop the phase early.
EpochCallback = Callable[[EpochStats, nn.Module, torch.optim.Optimizer], bool]

GRAD_CLIP_NORM = 10.0  # Ultralytics' fixed max_norm in BaseTrainer.optimizer_step


class PruningTrainer(DetectionTrainer):
    """Ultralytics' detection trainer with a pruning method's hooks and the runner's epoch callback.

    Use: `t = PruningTrainer(overrides, method, on_epoch_end)`, `t.model = module` (ultralytics 8.4
    `engine/trainer.py`: `setup_model` keeps a module it is given instead of rebuilding one from the YAML),
    `t.train()`. `t.history` then holds one EpochStats per epoch.
    """

    def __init__(
        self,
        overrides: dict[str, Any],
        method: PruningMethod,
        on_epoch_end: EpochCallback | None = None,
        start_epoch: int = 1,
        optimizer_state: dict[str, Any] | None = None,
        max_steps: int | None = None,
    ):
        super().__init__(overrides=overrides)
        self.method = method
        self.epoch_callback = on_epoch_end
        self.first_epoch = int(start_epoch)  # 1-based; > 1 resumes a phase (LR schedule and warm-up skip ahead)
        self.optimizer_state = optimizer_state
        self.max_steps = max_steps
        self.history: list[EpochStats] = []
        self._images_since_step = 0  # images whose (batch-size-scaled) losses are accumulated in .grad
        self._ema_params: dict[str, torch.Tensor] = {}
        self._epoch = 0
        self._batch_idx = 0
        self._loss_sum: torch.Tensor | None = None
        self._t0 = 0.0
        self._stats: EpochStats | None = None
        for event, fn in (
            ("on_pretrain_routine_end", self._cb_pretrain_end),
            ("on_train_epoch_start", self._cb_epoch_start),
            ("on_train_batch_start", self._cb_batch_start),
            ("on_train_batch_end", self._cb_batch_end),
            ("on_train_epoch_end", self._cb_epoch_end),
            ("on_fit_epoch_end", self._cb_fit_epoch_end),
        ):
            self.add_callback(event, fn)

    # ---- the optimizer step ----------------------------------------------------------------------------------------
    def optimizer_step(self) -> None:
        """unscale → method.after_backward → clip → step → zero_grad → method.after_step → EMA update → EMA mask."""
        self.scaler.unscale_(self.optimizer)  # .grad now holds true gradients (no AMP scale)
        self.method.after_backward(grad_scale=float(max(self._images_since_step, 1)))
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=GRAD_CLIP_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        self.method.after_step()  # re-mask the live weights (retrain) / per-step projection (projected magnitude)
        self._images_since_step = 0
        if self.ema:
            self.ema.update(self.model)
            self._mask_ema()

    def preprocess_batch(self, batch: dict) -> dict:
        """Ultralytics' preprocessing, plus counting the images that enter the next optimizer step."""
        batch = super().preprocess_batch(batch)
        self._images_since_step += int(batch["img"].shape[0])
        return batch

    @torch.no_grad()
    def _mask_ema(self) -> None:
        """Zero the EMA's pruned entries in place (the EMA would otherwise keep a decaying copy of them)."""
        for t in self.method.tensors:
            if t.mask is not None and t.name in self._ema_params:
                self._ema_params[t.name].mul_(t.mask)

    @torch.no_grad()
    def copy_ema_to_model(self) -> None:
        """Load the EMA's weights and BN statistics into the live model in place (parameter identity is kept, so
        the method's references and the optimizer stay valid)."""
        if not self.ema:
            return
        live = unwrap_model(self.model).state_dict()
        for k, v in self.ema.ema.state_dict().items():
            live[k].copy_(v)

    # ---- data: --max-steps as Ultralytics' own `fraction` of the training set ---------------------------------------
    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train" and self.max_steps and batch and len(dataset) > self.max_steps * batch:
            # Rebuild with the fraction that yields max_steps batches (labels come from the first build's cache).
            saved = self.args.fraction
            self.args.fraction = self.max_steps * batch / len(dataset)
            try:
                dataset = super().build_dataset(img_path, mode, batch)
            finally:
                self.args.fraction = saved
        return dataset

    # ---- what a pruning run does not want from Ultralytics -----------------------------------------------------------
    def validate(self) -> tuple[dict, None]:
        """Skip the per-epoch validation of the dense EMA: the runner evaluates hard-pruned / masked copies itself.

        Fitness None also keeps Ultralytics' early stopping (patience on mAP50-95) out of the protocol.
        """
        return self.metrics, None

    def save_model(self) -> bool:
        """No last.pt/best.pt: the runner checkpoints the model and the method state every epoch."""
        return False

    def final_eval(self) -> None:
        """No best.pt validation (there is no best.pt, and fitness-best would be a pre-prune epoch)."""

    def _handle_nan_recovery(self, epoch: int) -> bool:
        if self.loss is not None and not torch.isfinite(self.loss).all():
            raise TrainingDiverged(f"YOLO training loss became {float(self.loss)} in epoch {epoch + 1}", epoch + 1, 0)
        return False

    def resume_training(self, ckpt: Any) -> None:
        """Start at `first_epoch` (runner resume): LR schedule and warm-up continue where the phase stopped."""
        if self.first_epoch > 1:
            self.start_epoch = self.first_epoch - 1  # Ultralytics counts epochs from 0
            if self.optimizer_state is not None:
                self.optimizer.load_state_dict(self.optimizer_state)

    # ---- callbacks -------------------------------------------------------------------------------------------------
    def _cb_pretrain_end(self, trainer: "PruningTrainer") -> None:
        # Model, optimizer and EMA exist now; masks (retrain) go onto both the live model and the EMA.
        self._ema_params = dict(self.ema.ema.named_parameters()) if self.ema else {}
        self.method.apply_masks()
        self._mask_ema()

    def _cb_epoch_start(self, trainer: "PruningTrainer") -> None:
        self._epoch = self.epoch + 1
        self._batch_idx = 0
        self._loss_sum = None
        self._t0 = time.perf_counter()
        self.method.on_epoch_start(self._epoch)

    def _cb_batch_start(self, trainer: "PruningTrainer") -> None:
        self.method.on_batch_start(self._epoch, self._batch_idx)  # SLR/ADMM dual and Z updates (batch 0)

    def _cb_batch_end(self, trainer: "PruningTrainer") -> None:
        # loss_items are the gain-weighted per-term batch means (box, cls, dfl): their sum is the batch-mean loss.
        loss = torch.stack([v.detach().float().reshape(()) for v in self.loss_items.values()]).sum()
        self.method.observe_loss(loss)
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._batch_idx += 1

    def _cb_epoch_end(self, trainer: "PruningTrainer") -> None:
        if self._batch_idx == 0 or self._loss_sum is None:
            raise UserError("the YOLO training loader yielded no batches: is the train list empty?")
        mean = float(self._loss_sum.item()) / self._batch_idx
        if not math.isfinite(mean):
            raise TrainingDiverged(f"YOLO training loss became {mean} in epoch {self._epoch}", self._epoch,
                                   self._batch_idx)
        self._stats = EpochStats(
            epoch=self._epoch, train_loss=mean, steps=self._batch_idx, seconds=time.perf_counter() - self._t0,
            lr=float(self.optimizer.param_groups[0]["lr"]), method_log=self.method.on_epoch_end(self._epoch),
        )

    def _cb_fit_epoch_end(self, trainer: "PruningTrainer") -> None:
        stats, self._stats = self._stats, None
        if stats is None:
            return
        self.history.append(stats)
        final = self.epoch + 1 >= self.epochs
        if final:
            # Before the runner's last check/checkpoint, so the checkpoint holds the weights the phase hands on.
            self.copy_ema_to_model()
        stop = bool(self.epoch_callback(stats, self.ema.ema, self.optimizer)) if self.epoch_callback else False
        if stop and not final:
            self.copy_ema_to_model()
            self.stop = True


class JsonValidator(DetectionValidator):
    """Ultralytics' detection validator that collects `predictions.json` entries (`self.jdict`, `save_json=True`) but
    leaves COCO-API scoring to the harness's evaluator.

    Ultralytics' own `eval_json` would run faster-coco-eval a second time (on its in-memory GT for non-COCO-2017
    lists) without changing mAP50; skipping it saves that pass. Its mAP50 (`metrics/mAP50(B)`) is unaffected.
    """

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        return stats


@contextlib.contextmanager
def ultralytics_quiet(verbose: bool = False) -> Iterator[None]:
    """Raise Ultralytics' log level (which also hides its progress bars) unless `verbose`."""
    if verbose:
        yield
        return
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


@contextlib.contextmanager
def no_amp_self_test() -> Iterator[None]:
    """Skip `check_amp`, which downloads yolo26n.pt to compare fp32/fp16 outputs (ultralytics 8.4 `utils/checks.py`).

    Only reached with `--amp fp16` on CUDA (fp32 and bf16 skip it already); fp16 is then used as requested.
    """
    original = _ul_trainer.check_amp
    _ul_trainer.check_amp = lambda model, *a, **k: True
    try:
        yield
    finally:
        _ul_trainer.check_amp = original


def run_phase(
    overrides: dict[str, Any],
    model: nn.Module,
    method: PruningMethod,
    on_epoch_end: EpochCallback | None = None,
    start_epoch: int = 1,
    optimizer_state: dict[str, Any] | None = None,
    max_steps: int | None = None,
    verbose: bool = False,
) -> list[EpochStats]:
    """Train `model` (in place) for `overrides["epochs"]` epochs with Ultralytics and the method's hooks.

    The method must already be attached to `model`. Returns the EpochStats of the epochs run.
    """
    if start_epoch > int(overrides["epochs"]):
        return []
    with ultralytics_quiet(verbose):
        trainer = PruningTrainer(overrides, method, on_epoch_end, start_epoch, optimizer_state, max_steps)
        trainer.model = model  # B3.5: setup_model() keeps a module it is given
        with no_amp_self_test():
            trainer.train()
    return trainer.history
