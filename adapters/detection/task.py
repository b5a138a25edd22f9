"""COCO object detection with the YOLOv3 family of Ultralytics 8.x (`--task coco`).

Models: `yolov3`, `yolov3-tiny`, `yolov3-spp`, built from the YAMLs that ship in the wheel (no download; note these are
Ultralytics' anchor-free SiLU/DFL "v3u" networks, not the Darknet models of SLR paper Table 3), or loaded from a
user's Ultralytics detection `.pt` / state dict with `--weights`.

Data: a folder made by `data_scripts/coco_convert.py` (holding `coco2014.yaml` and/or `coco2017.yaml`, checked with
`check_coco_layout`), or the path of such a YAML, or any Ultralytics detection YAML (then scored against the GT
Ultralytics builds from the YOLO labels, see `evaluate`).

Metric: `AP50` = COCO-API bbox AP at IoU 0.5 (`COCOeval.stats[1]` × 100, harness.evaluators.coco, faster-coco-eval),
computed on the detections of Ultralytics' validator (its `predictions.json` entries, conf 0.001, NMS IoU 0.7 by
default, multi-label, max_det 300) after mapping them to COCO ids, against the converter's `instances_val*.json` with
`params.imgIds` = the val list (Darknet 5k for 2014). Ultralytics' own `metrics/mAP50(B)` (101-point trapezoid in
letterboxed coordinates, ultralytics 8.4 `utils/metrics.py`) is recorded next to it as `mAP50_ultralytics`.

Training runs through Ultralytics' trainer (adapters/detection/trainer.py), which the runner calls through
`fit_epochs()` for the method phase and for masked retraining.
"""

from __future__ import annotations

import copy
import shutil
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from harness import offline
from harness.config import TrainRecipe
from harness.errors import CheckpointError, DataError, UserError, format_key_mismatch
from harness.options import setting
from harness.phases import EpochEnd, PhaseSpec
from harness.tasks import Task, TaskConfig
from harness.weights import read_checkpoint
from harness.yamlio import load_yaml

MODELS: tuple[str, ...] = ("yolov3", "yolov3-tiny", "yolov3-spp")
# Method epochs per model: SLR paper Table 3 at 2x (yolov3-tiny: 15 / 20 / 25 epochs for 1.19x / 2x / 3.33x; yolov3-spp:
# 15 at 2x; yolov3 is not in the table, Fig. 2a reaches the threshold at epoch 15). Pass --epochs for the other rows.
RECIPE_EPOCHS: dict[str, int] = {"yolov3-tiny": 20, "yolov3-spp": 15, "yolov3": 15}
OPTIMIZERS: dict[str, str] = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}  # harness name -> Ultralytics name
BACKENDS = ("faster-coco-eval", "pycocotools")
# Ultralytics arguments the harness sets from its own flags (or must keep fixed for the protocol / offline use).
RESERVED = {
    "model": "--model", "data": "--data", "epochs": "--epochs / --retrain-epochs", "batch": "--batch-size",
    "device": "--device", "workers": "--workers", "seed": "--seed", "optimizer": "--optimizer", "lr0": "--lr",
    "momentum": "the recipe", "weight_decay": "--weight-decay", "amp": "--amp", "save_dir": "--out",
    "project": "--out", "name": "--out", "resume": "--resume", "pretrained": "--weights", "val": "--check-every",
    "save": "--out", "task": "--task", "mode": "--task", "fraction": "--max-steps",
}
DATA_HINT = "data_scripts/coco_download.py then data_scripts/coco_convert.py"


def _ultralytics_device(device: torch.device) -> str:
    if device.type == "cuda":
        return str(device.index or 0)
    return device.type


def yolo_prune_set(model: nn.Module) -> list[str]:
    """Every 4-D `*.weight` except the DFL's fixed arange conv (ultralytics 8.4 `nn/modules/block.py`): backbone,
    neck, both Detect branches, the first conv and the 1×1 prediction convs included (Gurevin et al. 2021 do not say
    they skipped any)."""
    return [n for n, p in model.named_parameters() if p.dim() == 4 and n.endswith(".weight") and ".dfl." not in n]


def _imgsz(value: Any) -> int:
    size = int(value)
    if size < 32 or size % 32:
        raise ValueError("imgsz must be a positive multiple of 32 (YOLO's largest stride)")
    return size


@dataclass
class CocoOptions:
    """The coco task's own options; any other `--opt key=value` must be an Ultralytics train argument
    (mosaic, close_mosaic, cos_lr, ...), typed by Ultralytics' own `check_cfg`, and goes to its trainer."""

    imgsz: int = setting(640, parse=_imgsz, help="Train/val image size, a multiple of 32.")
    year: str | None = setting(None, choices=("2014", "2017"), help="Which converted split to use (default: "
                               "2014 if present).")
    iou: float = setting(0.7, gt=0.0, help="NMS IoU of validation (Ultralytics 8.x default; the old repo used 0.6).")
    conf: float = setting(0.001, lo=0.0, help="Confidence threshold of validation.")
    val_batch: int | None = setting(None, lo=1, help="Validation batch (default: twice the training batch).")
    backend: str = setting("faster-coco-eval", choices=BACKENDS, help="COCO-API implementation.")
    verbose: bool = setting(False, help="Show Ultralytics' own logging.")
    extra: dict[str, Any] = field(default_factory=dict)  # Ultralytics train arguments passed through


class CocoTask(Task):
    """YOLOv3 / YOLOv3-tiny / YOLOv3-SPP on COCO through Ultralytics 8.x."""

    Options = CocoOptions
    kind = "detection"
    own_schedule: ClassVar[bool] = True  # Ultralytics' trainer keeps its own warm-up and lr schedule

    name = "coco"
    models = MODELS
    default_model = "yolov3-tiny"
    primary_metric = "AP50"
    higher_is_better = True
    headline_rule = "conv"  # YOLO lineage (YOLObile `check_compression.py`): compression counted over 4-D weights
    data_hint = f"COCO 2014 (Darknet 5k split): {DATA_HINT}"
    default_rates = (2.0,)  # the rate Table 3 shares between yolov3-tiny and yolov3-spp

    @classmethod
    def extra_option(cls, key: str, value: Any) -> Any:  # type: ignore[override]
        """An `--opt` key outside CocoOptions: an Ultralytics train argument, typed by Ultralytics' check_cfg."""
        from harness.options import coerce

        offline.configure()
        from ultralytics.cfg import check_cfg
        from ultralytics.utils import DEFAULT_CFG_KEYS

        if key in RESERVED:
            raise UserError(f"--opt {key}=… is set by the benchmark; use {RESERVED[key]} instead")
        if key not in DEFAULT_CFG_KEYS:
            names = ", ".join(f.name for f in __import__("dataclasses").fields(CocoOptions) if f.name != "extra")
            raise UserError(f"--opt {key}=… is neither a coco task option ({names}) nor an Ultralytics train argument")
        checked = {key: coerce(Any, value, f"--opt {key}")}
        try:
            check_cfg(checked, hard=True)
        except (TypeError, ValueError) as exc:
            raise UserError(f"--opt {key}: {str(exc).splitlines()[0]}") from None
        return checked[key]

    def __init__(self, cfg: TaskConfig):
        super().__init__(cfg)
        from adapters.detection import trainer as _trainer  # configures offline mode, then imports ultralytics

        self._ul = _trainer
        opts = self.opts
        self.imgsz, self.year, self.iou, self.conf = opts.imgsz, opts.year, opts.iou, opts.conf
        self.batch_size = int(cfg.batch_size or 16)
        self.val_batch = int(opts.val_batch or 2 * self.batch_size)  # the trainer's own val batch
        self.backend, self.verbose = opts.backend, opts.verbose
        self.ul_options = dict(opts.extra)  # passed through to Ultralytics' trainer (e.g. mosaic=0, close_mosaic=0, cos_lr=true)

        self.data_yaml: Path | None = None
        self.data_cfg: dict[str, Any] = {}
        if cfg.data is not None:
            self.data_yaml, self.data_cfg = self._resolve_data(Path(cfg.data))
        names = self.data_cfg.get("names")
        self.nc = len(names) if names else 80
        self._gt_cache: dict | None = None
        self._val_loader = None  # the validator's dataloader, reused across evaluations
        self._workdir: Path | None = None

    # ---- data --------------------------------------------------------------------------------------------------
    def _resolve_data(self, path: Path) -> tuple[Path, dict[str, Any]]:
        """The data YAML and its contents; DataError naming what is missing and the script that makes it."""
        from adapters.detection.coco_data import SPLITS, check_coco_layout, yaml_name

        if path.is_dir():
            years = [self.year] if self.year else [y for y in SPLITS if (path / yaml_name(y)).is_file()]
            if not years:
                raise DataError(f"{path} has no coco2014.yaml or coco2017.yaml; make it with {DATA_HINT}")
            year = years[0]  # 2014 first: the split of SLR paper Table 3
            check_coco_layout(path, year)
            path = path / yaml_name(year)
        elif not path.exists():
            raise DataError(f"COCO data {path} does not exist; make it with {DATA_HINT}")
        elif path.suffix not in (".yaml", ".yml"):
            raise DataError(f"--data {path} must be a converted COCO folder or a dataset YAML")
        doc = load_yaml(path, "dataset YAML", DataError)
        if not isinstance(doc, dict) or not all(k in doc for k in ("train", "val", "names")):
            raise DataError(f"{path} is not an Ultralytics dataset YAML (needs train, val and names)")
        if "download" in doc:
            # A missing path would make Ultralytics fetch the dataset (its `check_det_dataset`); we never download.
            raise DataError(f"{path} has a 'download:' key; remove it (prunebench never downloads data) or use "
                            f"{DATA_HINT}")
        gt = doc.get("coco_gt_json")
        if gt is not None and not Path(gt).is_file():
            raise DataError(f"missing {gt} (the evaluation ground truth named in {path}); make it with {DATA_HINT}")
        return path.resolve(), doc

    def _require_data(self) -> Path:
        if self.data_yaml is None:
            raise DataError(f"the coco task needs --data (a converted COCO folder); make it with {DATA_HINT}")
        return self.data_yaml

    def _work(self) -> Path:
        """Scratch folder for Ultralytics' run files (args.yaml, results.csv, predictions.json), removed with the
        task: nothing lands in the CWD's runs/ or in $HOME."""
        if self._workdir is None:
            self._workdir = offline.scratch_dir("coco")  # also removes those of killed runs
            weakref.finalize(self, shutil.rmtree, str(self._workdir), True)
        return self._workdir

    # ---- model -------------------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ultralytics.nn.tasks import DetectionModel

        with self._ul.ultralytics_quiet(self.verbose):
            model = DetectionModel(f"{self.cfg.model}.yaml", nc=self.nc, ch=3, verbose=False)
        if self.data_cfg.get("names"):
            names = self.data_cfg["names"]
            model.names = dict(enumerate(names)) if isinstance(names, list) else dict(names)
        if self.cfg.weights is not None:
            self._load_weights(model, Path(self.cfg.weights))
        return model.to(self.cfg.device)

    def _load_weights(self, model: nn.Module, path: Path) -> None:
        """Load an Ultralytics detection checkpoint (`{"ema"|"model": module}`) or a plain state dict, strictly."""
        from ultralytics.nn.tasks import guess_model_task

        if not path.exists():
            raise CheckpointError(f"weights file {path} does not exist (give a local path; nothing is downloaded)")
        # Ultralytics checkpoints pickle whole modules: the safe loader reads plain state dicts, and a module pickle
        # is unpickled in full only when the user vouches for the file (--trust-weights).
        obj = read_checkpoint(path, trust=getattr(self.cfg, "trust_weights", False), hint="pass --trust-weights")
        src = obj
        if isinstance(obj, dict) and isinstance(obj.get("ema") or obj.get("model"), nn.Module):
            src = obj.get("ema") or obj.get("model")
        if isinstance(src, nn.Module):
            task = guess_model_task(src)
            if task != "detect":
                raise CheckpointError(f"{path} is an Ultralytics {task!r} checkpoint; --task coco needs a detection "
                                      "(task 'detect') model such as yolov3u.pt")
            state = src.float().state_dict()
        elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            state = obj
            own = model.state_dict()
            if not any(k in own for k in state) and all(k.startswith("module.") for k in state):
                state = {k[len("module."):]: v for k, v in state.items()}
        else:
            raise CheckpointError(f"{path} is neither an Ultralytics checkpoint nor a state dict")
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise CheckpointError(f"{path} does not match {self.cfg.model}: {format_key_mismatch(missing, unexpected)}")
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
                  for k, v in own.items() if state[k].shape != v.shape]
        if shapes:
            raise CheckpointError(f"{path} does not match {self.cfg.model} ({len(shapes)} shape mismatches, e.g. "
                                  f"{'; '.join(shapes[:3])}); is it another model or another class count?")
        model.load_state_dict(state, strict=True)

    def default_prune_set(self, model: nn.Module) -> list[str]:
        return yolo_prune_set(model)

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        # Ultralytics defaults with the old repo's explicit SGD ('auto' would pick AdamW or MuSGD).
        return TrainRecipe(optimizer="sgd", lr=0.01, momentum=0.937, weight_decay=5e-4,
                           epochs=RECIPE_EPOCHS[model], retrain_epochs=0, check_every=5, batch_size=16)

    # ---- training through Ultralytics --------------------------------------------------------------------------
    def driver(self) -> "UltralyticsDriver":
        return UltralyticsDriver(self)

    def ultralytics_overrides(self, phase: str, epochs: int, lr: float, optimizer: str, momentum: float,
                              weight_decay: float, amp: str | None) -> dict[str, Any]:
        """Ultralytics train arguments for one phase: its defaults plus the benchmark's settings."""
        if optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {optimizer!r} for the coco task; choose one of: "
                            f"{', '.join(OPTIMIZERS)}")
        on_cpu = self.cfg.device.type == "cpu"
        # fp32 unless asked; fp16 autocast only on CUDA (Ultralytics' AMP self-test is skipped, see trainer.py).
        ul_amp: bool | str = {None: False, "bf16": "bf16", "fp16": not on_cpu}[amp]
        return {
            **self.ul_options,
            "model": f"{self.cfg.model}.yaml",  # only a name here: the module is handed over (`t.model = module`)
            "data": str(self._require_data()),
            "task": "detect",
            "mode": "train",
            "epochs": int(epochs),
            "batch": self.batch_size,
            "imgsz": self.imgsz,
            "device": _ultralytics_device(self.cfg.device),
            "workers": self.cfg.workers,
            "seed": self.cfg.seed,
            "optimizer": OPTIMIZERS[optimizer],
            "lr0": float(lr),
            "momentum": float(momentum),
            "weight_decay": float(weight_decay),
            "amp": ul_amp,
            "pretrained": False,
            "plots": False,
            "val": False,
            "save": False,
            "save_dir": str(self._work() / phase),
            "exist_ok": True,
            "verbose": self.verbose,
        }

    # ---- evaluation --------------------------------------------------------------------------------------------
    def _gt(self) -> dict:
        """The COCO ground truth (parsed and validated once; the evaluator copies what it mutates)."""
        if self._gt_cache is None:
            from harness.evaluators.coco import load_gt

            self._gt_cache = load_gt(Path(self.data_cfg["coco_gt_json"]))
        return self._gt_cache

    def evaluate(self, model: nn.Module, desc: str = "eval") -> dict[str, float]:
        """Run Ultralytics' validator on a deep copy of `model` and score its detections with the COCO API.

        The copy matters: standalone validation fuses Conv+BN in place. With converted COCO data the detections are
        mapped to COCO ids (`normalize_ultralytics_predictions`) and scored against `coco_gt_json` on
        `coco_val_image_ids`; with any other dataset YAML they are scored against the GT Ultralytics builds from the
        YOLO labels (image ids = dataloader indices, all iscrowd 0).
        """
        from harness.evaluators.coco import CocoEvaluator, normalize_ultralytics_predictions

        data = self._require_data()
        target = copy.deepcopy(getattr(model, "module", model)).float().eval()
        args = {
            "model": f"{self.cfg.model}.yaml", "data": str(data), "task": "detect", "mode": "val", "split": "val",
            "imgsz": self.imgsz, "batch": self.val_batch, "conf": self.conf, "iou": self.iou,
            "device": _ultralytics_device(self.cfg.device), "workers": self.cfg.workers, "plots": False,
            "save_json": True, "verbose": self.verbose,
        }
        validator = self._ul.JsonValidator(dataloader=self._val_loader, save_dir=self._work() / "val", args=args)
        with self._ul.ultralytics_quiet(self.verbose):
            stats = validator(model=target)
        self._val_loader = validator.dataloader
        jdict = validator.jdict or []
        if "coco_gt_json" in self.data_cfg:
            ids = "coco91" if validator.is_coco else str(self.data_cfg.get("coco_pred_category_ids", "class+1"))
            dets = normalize_ultralytics_predictions(jdict, category_ids=ids)  # type: ignore[arg-type]
            gt = self._gt()
            # COCOeval scores only the GT file's categories (params.catIds); a GT with fewer than the 80 (a synthetic
            # or filtered set) would make our strict evaluator reject the rest, so they are dropped here and counted.
            # Real COCO lists all 80, so nothing is dropped there.
            known = {c["id"] for c in gt["categories"]}
            kept = [d for d in dets if d["category_id"] in known]
            other = len(dets) - len(kept)
            evaluator = CocoEvaluator(gt, self.backend, img_ids=self.data_cfg.get("coco_val_image_ids"))
        else:
            gdict = validator.gdict
            preds = iter(jdict)
            dets = [{**next(preds), "image_id": image["id"]}
                    for image, count in zip(gdict["images"], validator.pred_counts) for _ in range(count)]
            kept = [{k: d[k] for k in ("image_id", "category_id", "bbox", "score")} for d in dets]
            other = 0  # Ultralytics' GT lists every class of the YAML
            evaluator = CocoEvaluator(gdict, self.backend)
        # Ultralytics' validator has already run the whole val set, so its detections arrive as one batch.
        evaluator.reset()
        evaluator.process(None, kept)
        coco = evaluator.evaluate()
        return {
            "AP50": coco["AP50"],
            "AP": coco["AP"],
            "AP75": coco["AP75"],
            "mAP50_ultralytics": 100.0 * float(stats.get("metrics/mAP50(B)", 0.0)),
            "mAP50-95_ultralytics": 100.0 * float(stats.get("metrics/mAP50-95(B)", 0.0)),
            "precision_ultralytics": 100.0 * float(stats.get("metrics/precision(B)", 0.0)),
            "recall_ultralytics": 100.0 * float(stats.get("metrics/recall(B)", 0.0)),
            "n_images": coco["n_images"],
            "n_detections": coco["n_detections"],
            "n_detections_other_categories": float(other),
        }

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.rand(batch, 3, self.imgsz, self.imgsz, device=self.cfg.device)

    def ground_truth_files(self) -> list[Path]:
        gt = self.data_cfg.get("coco_gt_json")
        return [Path(gt)] if gt else []

    def evaluator_identity(self) -> dict[str, str]:
        from harness.evaluators.coco import CocoEvaluator

        ev = CocoEvaluator(self._gt(), backend=self.backend) if "coco_gt_json" in self.data_cfg else None
        name = f"{ev.name} on Ultralytics' validator" if ev else "coco-bbox on Ultralytics' validator"
        return {"name": name, "version": str(ev.version) if ev else "1"}

    @classmethod
    def score_files(cls, pred: Path, gt: Path, options: dict[str, Any]) -> dict[str, float]:
        """COCO bbox stats in percent (AP50 = COCOeval.stats[1] x 100, ...) of a COCO results file against an
        annotation file (`benchmark eval`); `options` may name the `backend` (faster-coco-eval or pycocotools)."""
        from harness.evaluators.coco import score_files

        unknown = sorted(set(options) - {"backend"})
        if unknown:
            raise UserError(f"benchmark eval --task coco: unknown option(s) {', '.join(unknown)}; known: backend")
        return score_files(pred, gt, backend=str(options.get("backend", BACKENDS[0])))

    def describe(self) -> dict[str, Any]:
        import ultralytics

        gt = self.data_cfg.get("coco_gt_json")
        return super().describe() | {
            "metric_definition": (
                "AP50 = COCO-API bbox AP@IoU0.5 (COCOeval.stats[1] x100) by harness.evaluators.coco "
                f"({self.backend}) on the detections of Ultralytics' validator (predictions.json entries mapped to "
                "COCO ids), params.imgIds = the val list" if gt else
                "AP50 = COCO-API bbox AP@IoU0.5 (stats[1] x100) by harness.evaluators.coco on Ultralytics' in-memory "
                "GT built from the YOLO val labels (not an official COCO number)"
            ),
            "secondary_metrics": {
                "mAP50_ultralytics": "Ultralytics 8.x validator metrics/mAP50(B) x100: 101-point trapezoid AP, "
                                     "letterboxed coordinates, no crowd handling, no maxDets cut",
                "AP": "COCO-API AP@[.5:.95] x100", "AP75": "COCO-API AP@.75 x100",
            },
            "data_yaml": str(self.data_yaml) if self.data_yaml else None,
            "gt_json": gt,
            "val_images": len(self.data_cfg.get("coco_val_image_ids") or []) or None,
            "imgsz": self.imgsz,
            "batch": self.batch_size,
            "val": {"conf": self.conf, "nms_iou": self.iou, "batch": self.val_batch, "multi_label": True,
                    "max_det": 300, "model": "deep copy, Conv+BN fused by the validator"},
            "prune_set": "every 4-D *.weight except *.dfl.* (first conv and 1x1 prediction convs included)",
            "training": {
                "engine": f"ultralytics {ultralytics.__version__} DetectionTrainer (own data pipeline, loss, warm-up, "
                          "LR schedule, accumulation to nbs=64, EMA); one fresh trainer per phase",
                "penalty": "added in optimizer_step after scaler.unscale_, before clip_grad_norm_(10); grad_scale = "
                           "images accumulated since the last step (loss is batch-mean x batch size, summed over "
                           "accumulated batches)",
                "observed_loss": "batch-mean loss = sum of Ultralytics loss_items (box 7.5, cls 0.5, dfl 1.5 gains)",
                "masks": "re-applied in place to the live model after each step and to the EMA after each EMA update",
                "checks_on": "deep copy of trainer.ema.ema, hard-pruned; the EMA is copied into the live model at the "
                             "end of each phase",
                "dense_validation": "off (per-epoch val, last.pt/best.pt and best.pt final eval disabled)",
                "ultralytics_overrides": dict(self.ul_options),
            },
        }


class UltralyticsDriver:
    """Ultralytics' trainer as a `TrainDriver` (harness/phases.py): one fresh trainer per phase (its own warm-up,
    LR schedule and EMA, as a separate `yolo train` would have). After every epoch the runner's hooks get a deep copy
    of the EMA to evaluate; at the end of the phase the model holds the EMA's weights."""

    def __init__(self, task: CocoTask):
        self.task = task

    def fit(self, model: nn.Module, spec: PhaseSpec, on_epoch_end: EpochEnd) -> dict[str, Any]:
        overrides = self.task.ultralytics_overrides(spec.name, spec.epochs, spec.lr, spec.optimizer, spec.momentum,
                                                    spec.weight_decay, spec.amp)
        self.task._ul.run_phase(overrides, model, spec.hooks, on_epoch_end, spec.start_epoch, spec.optimizer_state,
                                spec.max_steps, self.task.verbose)
        return {"schedule": {"kind": "ultralytics", "lr0": spec.lr, "epochs": spec.epochs}}
