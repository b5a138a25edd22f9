"""Export a (pruned) model for use outside prunebench, each format checked against the PyTorch model it came from.

Formats (`FORMATS` holds the one-line help of each):

* ``onnx``: `torch.onnx.export` with the TorchScript-based exporter (`dynamo=False`): it runs offline with no extra
  package (the torch.export-based one needs onnxscript) and is what Ultralytics' own `yolo export format=onnx` uses in
  8.4. Opset 17, dynamic batch axis. Checked in onnxruntime (CPU) at the example's batch and at batch 2: the largest
  absolute difference to PyTorch's outputs is reported, and |difference| / max(1, |output|) must be <= `atol` (1e-4)
  everywhere, else the export fails (absolute for logits and scores; relative for YOLO's pixel box coordinates).
* ``torchscript``: `torch.jit.trace` (strict=False, as Ultralytics' exporter), saved with `torch.jit.save`, reloaded
  and compared the same way.
* ``ultralytics``: a checkpoint in Ultralytics' own format (what `strip_optimizer` leaves of a finished `last.pt`:
  {'date', 'version', 'license', 'docs', 'epoch': -1, 'model': module, 'ema': None, 'train_args', …}) so that
  `ultralytics.YOLO(path)`, `yolo val` and `yolo export` take it. The module is kept in fp32 (bit-exact to the run's
  weights) unless `half=True` (Ultralytics' release format; rounds the kept weights to fp16). Detection models only.
* ``sparse``: a copy whose sufficiently sparse nn.Linear layers hold CSR weights (harness/sparse_inference.py), saved
  with `torch.save` (a pickled module: load it with `torch.load(path, weights_only=False)`, only from a source you
  trust), compared with the dense model and timed against it.

The caller builds the model (the task, from the run's config, then loads the run's pruned-model file) and gives one
example input at the task's input size (batch 1).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.costs import batched, measure_latency, onnx_session
from harness.errors import UserError

FORMATS: dict[str, str] = {
    "onnx": "ONNX (opset 17, dynamic batch) via torch.onnx; checked in onnxruntime to 1e-4 (relative above 1)",
    "torchscript": "TorchScript via torch.jit.trace; reloaded and checked against PyTorch",
    "ultralytics": "YOLO only: an Ultralytics checkpoint (.pt) that YOLO(path), `yolo val` and `yolo export` load",
    "sparse": "Linear layers as CSR (torch.sparse) in a pickled module; checked and timed against the dense model",
}
TASK_KINDS = ("classification", "lanes", "detection")
OPSET = 17


@dataclass
class ExportResult:
    """What an export wrote and how it was checked (for the CLI's output and the run's record)."""

    format: str
    path: str
    bytes: int
    max_abs_diff: float | None  # largest |exported - PyTorch| over every output, at batch 1 and 2
    max_scaled_diff: float | None  # the same divided by max(1, |PyTorch|): the checked quantity (see output_diffs)
    checked_with: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def flat_outputs(out: Any) -> list[torch.Tensor]:
    """Every tensor of a (nested tuple/list/dict) model output, in the order ONNX and TorchScript flatten them."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in flat_outputs(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in flat_outputs(v)]
    return []


def output_diffs(expected: list[torch.Tensor], got: list[Any]) -> tuple[float, float]:
    """(largest |got - expected|, largest |got - expected| / max(1, |expected|)) over equally long output lists.

    The second is what the export check bounds: for outputs up to 1 in size (logits, scores) it is the absolute
    difference; above 1 it is relative, because fp32 cannot do better on large values (YOLO's box coordinates are
    pixels up to imgsz, and one fp32 step at 640 is 6.1e-5).
    """
    if len(expected) != len(got):
        raise UserError(f"the exported model returns {len(got)} outputs, PyTorch {len(expected)}")
    worst = scaled = 0.0
    for e, g in zip(expected, got):
        g = torch.as_tensor(g)
        if tuple(g.shape) != tuple(e.shape):
            raise UserError(f"an exported output has shape {tuple(g.shape)}, PyTorch's {tuple(e.shape)}")
        if e.numel():
            e = e.detach().float().cpu()
            err = (e - g.float().cpu()).abs()
            worst = max(worst, float(err.max()))
            scaled = max(scaled, float((err / e.abs().clamp(min=1.0)).max()))
    return worst, scaled


def _compare(expected: list[list[torch.Tensor]], got: list[list[Any]]) -> tuple[float, float]:
    pairs = [output_diffs(e, g) for e, g in zip(expected, got)]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def export_model(model: nn.Module, example_input: torch.Tensor, fmt: str, out: str | Path, *,
                 task_kind: str = "classification", atol: float = 1e-4, half: bool = False,
                 ultralytics_args: dict[str, Any] | None = None, threads: int | None = None,
                 repeats: int = 20, warmup: int = 3) -> ExportResult:
    """Write `model` to `out` in `fmt` (see FORMATS) and check the written file against `model`.

    `example_input`: one input at the task's size (batch 1); `task_kind`: classification | lanes | detection
    (detection exports the YOLO head's inference output only, as `yolo export` does). `ultralytics_args`: train
    arguments stored in an Ultralytics checkpoint (data, imgsz, …). The model is not modified.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if task_kind not in TASK_KINDS:
        raise UserError(f"unknown task kind {task_kind!r}; choose one of: {', '.join(TASK_KINDS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = _inference_copy(model, task_kind)
    x = example_input.detach().float().cpu()
    if fmt == "onnx":
        return _onnx(work, x, out, atol)
    if fmt == "torchscript":
        return _torchscript(work, x, out, atol)
    if fmt == "ultralytics":
        if task_kind != "detection":
            raise UserError("--format ultralytics is for the coco task's YOLO models only")
        return _ultralytics(model, x, out, half, ultralytics_args or {})
    return _sparse(work, x, out, atol, threads, repeats, warmup)


def export_run_model(model: nn.Module, artifact: str | Path, example_input: torch.Tensor, fmt: str,
                     out: str | Path, **kwargs: Any) -> ExportResult:
    """`benchmark export-model RUN_DIR`: load a run's pruned-model file (harness.artifacts) strictly into `model`
    (built by the run's task from its recorded config), then `export_model` it; kwargs as there."""
    from harness.artifacts import load_into

    load_into(model, artifact)
    return export_model(model, example_input, fmt, out, **kwargs)


def _inference_copy(model: nn.Module, task_kind: str) -> nn.Module:
    """A CPU fp32 eval-mode copy; for YOLO its Detect heads in export mode (inference output only, no raw maps)."""
    work = copy.deepcopy(getattr(model, "module", model)).float().cpu().eval()
    for p in work.parameters():
        p.requires_grad_(False)
    if task_kind == "detection":
        for m in work.modules():
            if hasattr(m, "export") and hasattr(m, "stride") and hasattr(m, "nc"):  # ultralytics Detect and kin
                m.export = True
                m.format = "onnx"
    return work


def _reference(model: nn.Module, inputs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    with torch.inference_mode():
        return [flat_outputs(model(x)) for x in inputs]


def _checked(fmt: str, out: Path, diffs: tuple[float, float], atol: float, how: str,
             notes: list[str] | None = None, latency: dict[str, float] | None = None) -> ExportResult:
    if diffs[1] > atol:
        raise UserError(f"the {fmt} export differs from PyTorch by {diffs[0]:.3g} ({diffs[1]:.3g} relative to "
                        f"max(1, |output|), > {atol:g}); {out} is not usable")
    return ExportResult(format=fmt, path=str(out), bytes=out.stat().st_size, max_abs_diff=diffs[0],
                        max_scaled_diff=diffs[1], checked_with=how, latency_ms=latency or {}, notes=notes or [])


def _onnx(model: nn.Module, x: torch.Tensor, out: Path, atol: float) -> ExportResult:
    inputs = [x, batched(x, 2)]
    expected = _reference(model, inputs)
    names = [f"output{i}" for i in range(len(expected[0]))]
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one (needs onnxscript); see the
        # module docstring for why it is used. Tracer warnings about Python-side shape logic are expected for YOLO.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(out), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in ["input", *names]},
                          do_constant_folding=True)
    session = onnx_session(out)
    feed = session.get_inputs()[0].name
    diffs = _compare(expected, [session.run(None, {feed: i.numpy()}) for i in inputs])
    import onnxruntime

    return _checked("onnx", out, diffs, atol, f"onnxruntime {onnxruntime.__version__} CPU, batch 1 and 2")


def _torchscript(model: nn.Module, x: torch.Tensor, out: Path, atol: float) -> ExportResult:
    inputs = [x, batched(x, 2)]
    expected = _reference(model, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape logic (YOLO's anchors)
        traced = torch.jit.trace(model, (x,), strict=False, check_trace=False)
        torch.jit.save(traced, str(out))
        loaded = torch.jit.load(str(out), map_location="cpu")
    with torch.inference_mode():
        diffs = _compare(expected, [flat_outputs(loaded(i)) for i in inputs])
    return _checked("torchscript", out, diffs, atol, f"torch.jit.load (torch {torch.__version__}), batch 1 and 2")


def ultralytics_checkpoint(model: nn.Module, half: bool = False, train_args: dict[str, Any] | None = None
                           ) -> dict[str, Any]:
    """The dict Ultralytics' `strip_optimizer` leaves of a finished run, holding a copy of `model`."""
    from adapters.detection import trainer  # noqa: F401  (Ultralytics offline before its import)
    import ultralytics
    from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS

    module = copy.deepcopy(getattr(model, "module", model)).cpu().eval()
    module = module.half() if half else module.float()
    for p in module.parameters():
        p.requires_grad_(False)
    if hasattr(module, "criterion"):
        module.criterion = None
    unknown = sorted(set(train_args or {}) - set(DEFAULT_CFG_KEYS))
    if unknown:
        raise UserError(f"not Ultralytics train arguments: {', '.join(unknown)}")
    args = {**DEFAULT_CFG_DICT, "task": "detect", **(train_args or {})}
    module.args = dict(args)
    return {
        "date": datetime.now().astimezone().isoformat(),
        "version": ultralytics.__version__,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": module,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "scaler": None,
        "train_args": args,
        "train_metrics": {},
        "producer": "prunebench (pruned; zeros are the pruned weights)",
    }


def _ultralytics(model: nn.Module, x: torch.Tensor, out: Path, half: bool, args: dict[str, Any]) -> ExportResult:
    if out.suffix != ".pt":
        raise UserError(f"an Ultralytics checkpoint must end in .pt (YOLO() checks the suffix), got {out.name}")
    ckpt = ultralytics_checkpoint(model, half, args)
    torch.save(ckpt, out)
    from ultralytics import YOLO

    loaded = YOLO(str(out))  # the check a user's `yolo val model=…` makes: it must open as a detection model
    if loaded.task != "detect":
        raise UserError(f"{out} opened as an Ultralytics {loaded.task!r} model, not 'detect'")
    ours = {k: v.float() for k, v in model.state_dict().items()}
    theirs = loaded.model.state_dict()
    diff = max((float((ours[k].cpu() - theirs[k].float().cpu()).abs().max()) for k in ours if ours[k].numel()),
               default=0.0)
    notes = ["fp16 module (Ultralytics' release format): kept weights rounded"] if half else []
    return ExportResult(format="ultralytics", path=str(out), bytes=out.stat().st_size, max_abs_diff=diff,
                        max_scaled_diff=None,
                        checked_with=f"ultralytics {ckpt['version']} YOLO(path): state dict vs the run's weights",
                        notes=notes)


def _sparse(model: nn.Module, x: torch.Tensor, out: Path, atol: float, threads: int | None, repeats: int,
            warmup: int) -> ExportResult:
    from harness.sparse_inference import sparsify_linears

    inputs = [x, batched(x, 2)]
    expected = _reference(model, inputs)
    sparse = copy.deepcopy(model)
    replaced = sparsify_linears(sparse)
    if not replaced:
        raise UserError("no Linear layer is sparse enough for CSR (at least "
                        "harness.sparse_inference.DEFAULT_MIN_SPARSITY zeros): --format sparse would store a dense "
                        "model")
    torch.save(sparse, out)
    loaded = torch.load(out, map_location="cpu", weights_only=False)  # our own file, just written
    with torch.inference_mode():
        diffs = _compare(expected, [flat_outputs(loaded(i)) for i in inputs])
    latency = {
        "dense_b1": measure_latency(model, x, 1, repeats=repeats, warmup=warmup, threads=threads).ms,
        "csr_b1": measure_latency(loaded, x, 1, repeats=repeats, warmup=warmup, threads=threads).ms,
    }
    csr_bytes = sum(m.nbytes() for m in loaded.modules() if hasattr(m, "weight_csr"))
    notes = [f"{len(replaced)} Linear layer(s) as CSR: {', '.join(replaced)}; CSR weights {csr_bytes:,} bytes",
             f"latency: median of {repeats} after {warmup} warm-up, threads {threads or torch.get_num_threads()}"]
    return _checked("sparse", out, diffs, atol, "torch.load of the written module, batch 1 and 2", notes, latency)
