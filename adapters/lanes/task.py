"""`TuSimpleTask`: UFLD (ResNet-18/34 row-anchor lane classifier) on TuSimple behind the harness `Task` contract.

Models: `ufld_resnet18` (the model of SLR paper Table 4, released as `tusimple_18.pth`) and `ufld_resnet34`.
Metric: the official TuSimple Accuracy (primary), FP and FN, in percent (the official fractions x 100).

Task options (`--opt key=value`):
* `aux` (bool, default false): build the auxiliary segmentation head and add its cross-entropy to the loss, as UFLD's
  TuSimple training config does. Off by default so the model, its parameter count (61,196,160 counted by the
  paper rule) and the compression rate are those of the deployed/test-time network (UFLD `model/model.py` builds the
  aux head only for training).
  With aux on, the 80 aux tensors join the model (and so the paper-rule count) but never the default prune set; a
  checkpoint without aux keys (the released one) then loads with a freshly initialised aux head, recorded in
  `describe()["aux_init"]`.
* `griding` (int, default 100): location cells per row (official checkpoints need 100).
* `input_size` ([H, W] or "HxW", multiples of 32, default [288, 800]): a smaller input (e.g. [64, 160]) makes CPU
  smoke tests fast. It changes the first Linear layer (8 * H/32 * W/32 inputs), so official checkpoints only load
  at 288x800. Targets and decoding are unaffected: they live at the 1280x720 frame size.
* `augment` (bool, default true): UFLD's rotation/shift augmentation of training frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from adapters.lanes.constants import GRIDING_NUM, INPUT_SIZE, TEST_LABEL_FILE
from adapters.lanes.decode import decode_batch, write_prediction_file
from adapters.lanes.loss import TUSIMPLE_WEIGHTS, ufld_loss
from adapters.lanes.tusimple_data import TuSimpleTest, TuSimpleTrain, check_layout, load_test_gt, read_test_list
from adapters.lanes.ufld_model import ParsingNet, build_ufld, load_ufld_checkpoint
from harness.config import TrainRecipe
from harness.errors import UserError
from harness.evaluation import inference_on_dataset
from harness.evaluators.tusimple import TuSimpleEvaluator, score_files
from harness.options import setting
from harness.tasks import LoopTask, TaskConfig
DEFAULT_BATCH = 32  # configs/tusimple.py


def _as_size(value: Any) -> tuple[int, int]:
    """[H, W], (H, W) or "HxW" -> (H, W), multiples of 32."""
    if isinstance(value, str) and "x" in value.lower():
        value = value.lower().split("x")
    elif isinstance(value, str):
        import json

        value = json.loads(value)
    h, w = (int(v) for v in value)
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError
    return h, w


@dataclass
class TuSimpleOptions:
    aux: bool = setting(False, help="Build UFLD's auxiliary segmentation head and add its loss (training only).")
    griding: int = setting(GRIDING_NUM, lo=2, help="Location cells per row (official checkpoints: 100).")
    input_size: tuple[int, int] = setting(INPUT_SIZE, parse=_as_size, help="Input [H, W] or 'HxW', multiples "
                                          "of 32 (official checkpoints: 288x800; smaller only for smoke runs).")
    augment: bool = setting(True, help="UFLD's rotation/shift augmentation of training frames.")


class TuSimpleTask(LoopTask):
    name = "tusimple"
    models = ("ufld_resnet18", "ufld_resnet34")
    default_model = "ufld_resnet18"
    primary_metric = "Accuracy"
    higher_is_better = True
    headline_rule = "paper"
    data_hint = "data_scripts/tusimple_download.py + data_scripts/tusimple_convert.py (or make_synthetic_tusimple.py)"
    # SLR paper Table 4 rates; a single run uses the first.
    default_rates = (1.82, 2.54, 4.21, 12.10, 16.85, 22.80, 35.25, 77.67)
    Options = TuSimpleOptions
    kind = "lanes"

    def __init__(self, cfg: TaskConfig):
        super().__init__(cfg)
        self.use_aux = self.opts.aux
        self.augment = self.opts.augment
        self.griding = self.opts.griding
        self.input_size = tuple(self.opts.input_size)
        self.root = check_layout(cfg.data)
        self._train_set: TuSimpleTrain | None = None
        self._test_set: TuSimpleTest | None = None
        self._gt: list[dict] | None = None
        self._load_facts: dict[str, Any] = {}

    # ---- model -----------------------------------------------------------------------------------------------------
    def build_model(self) -> ParsingNet:
        model = build_ufld(self.cfg.model, self.griding, self.use_aux, self.input_size)
        if self.cfg.weights is not None:
            self._load_facts = load_ufld_checkpoint(model, self.cfg.weights, allow_missing_aux=self.use_aux)
        return model.to(self.cfg.device)

    def default_prune_set(self, model: nn.Module) -> list[str]:
        """Every conv and Linear weight of the deployed network: 20 backbone convs (stem and downsample 1x1 convs
        included), `pool`, `cls.0`, `cls.2` (23 tensors, 61,191,360 weights for ResNet-18).

        This is the "all conv+fc" set, the only one under which SLR paper Table 4's 77.67x is
        feasible (p = 0.987; fc2 alone is 75.7% of it). Excluded: BN and biases (never pruned) and the aux head,
        which is training-only scaffolding removed at test time.
        """
        return [
            f"{name}.weight"
            for name, mod in model.named_modules()
            if isinstance(mod, (nn.Conv2d, nn.Linear)) and not name.startswith("aux_")
        ]

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        """UFLD's TuSimple settings (`configs/tusimple.py`), SLR paper Table 4's 40 method + 5 masked-retrain epochs.

        Each phase (dense pretraining, method, masked retrain) runs upstream's per-iteration schedule over its own
        epochs: 100 iterations of linear warm-up, then cosine to 0 (`harness/schedules.py`, off-by-one included).
        Dense pretraining (only without --weights) is UFLD's 100 epochs; the paper starts from the released
        tusimple_18.pth instead.
        """
        return TrainRecipe(optimizer="adam", lr=4e-4, momentum=0.9, weight_decay=1e-4, scheduler="cosine-iter",
                           warmup_iters=100, epochs=40, retrain_epochs=5, retrain_lr=None, pretrain_epochs=100,
                           pretrain_lr=4e-4, check_every=10, batch_size=DEFAULT_BATCH)

    # ---- data ------------------------------------------------------------------------------------------------------
    def _batch_size(self) -> int:
        return self.cfg.batch_size or DEFAULT_BATCH

    def train_loader(self, seed: int) -> DataLoader:
        if self._train_set is None:
            self._train_set = TuSimpleTrain(self.root, self.griding, self.input_size, self.use_aux, self.augment,
                                            seed=seed)
        # The epoch's seed drives both the shuffle and (in the main process) the augmentation draws.
        self._train_set.seed, self._train_set._rng = seed, None
        return DataLoader(self._train_set, batch_size=self._batch_size(), shuffle=True, drop_last=False,
                          num_workers=self.cfg.workers, pin_memory=self.cfg.device.type == "cuda",
                          generator=torch.Generator().manual_seed(seed))

    def _test(self) -> TuSimpleTest:
        if self._test_set is None:
            self._test_set = TuSimpleTest(self.root, self.input_size, names=read_test_list(self.root))
        return self._test_set

    def eval_loader(self) -> DataLoader:
        return DataLoader(self._test(), batch_size=self._batch_size(), shuffle=False, num_workers=self.cfg.workers,
                          pin_memory=self.cfg.device.type == "cuda")

    # ---- optimisation and evaluation -------------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        dev = self.cfg.device
        img, cls = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
        out = model(img)
        if isinstance(out, tuple):  # aux model: (logits, seg)
            if len(batch) < 3:
                raise UserError("the model has an aux head but the batches carry no segmentation target")
            total, _ = ufld_loss(out[0], cls, out[1], batch[2].to(dev, non_blocking=True), TUSIMPLE_WEIGHTS)
        else:
            total, _ = ufld_loss(out, cls, weights=TUSIMPLE_WEIGHTS)
        return total

    def predict(self, model: nn.Module, batch: Any) -> list[dict]:
        """The batch's TuSimple prediction records (decoded as UFLD does), named by the raw_files in `batch[1]`."""
        out = model(batch[0].to(self.cfg.device, non_blocking=True))
        return decode_batch(out[0] if isinstance(out, tuple) else out, list(batch[1]))

    def evaluator(self) -> TuSimpleEvaluator:
        if self._gt is None:
            self._gt = load_test_gt(self.root, self._test().names)
        return TuSimpleEvaluator(self._gt)

    @classmethod
    def score_files(cls, pred: Path, gt: Path, options: dict[str, Any]) -> dict[str, float]:
        """Accuracy / FP / FN in percent of a TuSimple prediction file against a GT file (`benchmark eval`)."""
        if options:
            raise UserError(f"benchmark eval --task tusimple takes no options, got {', '.join(sorted(options))}")
        return score_files(pred, gt)

    def write_predictions(self, model: nn.Module, path: str | Path) -> tuple[Path, dict[str, float]]:
        """Run the test split, write UFLD's prediction JSON lines to `path` and return (path, metrics).

        The file scores identically with `benchmark eval --task tusimple --pred PATH --gt ROOT/test_label.json`.
        """
        ev = self.evaluator()
        metrics = inference_on_dataset(model, self.eval_loader(), ev, self.predict, desc="predict")
        return write_prediction_file(ev.records, path), metrics

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, 3, *self.input_size, device=self.cfg.device)

    def ground_truth_files(self) -> list[Path]:
        return [self.root / TEST_LABEL_FILE]

    def describe(self) -> dict[str, Any]:
        info = super().describe() | {
            "dataset": "TuSimple (UFLD conversion: train_gt.txt / test.txt)",
            "data_root": str(self.root),
            "test_gt": str(self.root / TEST_LABEL_FILE),
            "aux": self.use_aux,
            "griding_num": self.griding,
            "input_size": list(self.input_size),
            "augment": self.augment,
            "loss": "focal(gamma=2) + 1.0*similarity + 0.0*shape" + (" + 1.0*aux CE" if self.use_aux else ""),
            "decode": "UFLD eval_wrapper 'rel' (softmax expectation), 4 lanes always, run_time 10",
            "evaluator": "harness.evaluators.tusimple (official LaneEval semantics; percent)",
            "prune_set_rule": "all Conv2d/Linear weights outside the aux head ('all conv+fc')",
        }
        if self._train_set is not None:
            info["train_images"] = len(self._train_set)
        if self._test_set is not None:
            info["test_images"] = len(self._test_set)
        if self._load_facts:
            info["weights"] = self._load_facts
        return info
