"""What a pruned model costs to run: dense and effective MACs, and measured latency.

* MACs come from torch's own `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products: the ops
  whose cost weight pruning can remove; element-wise ops, pooling and normalisation are not counted), halved because
  it counts a multiply-add as 2 FLOPs. The *effective* count scales each conv/linear layer's MACs by the density of its
  weight (non-zeros / entries): what a kernel that skips zero weights would do. MACs depend on the input size, so the
  report names the input shape.
* Latency is the median wall time of `repeats` forward passes after `warmup` untimed ones, in eval mode under
  `torch.inference_mode`, at batch 1 and at a given batch, with a stated intra-op thread count; on CUDA each pass is
  timed with CUDA events. `onnx_latency` does the same for an exported ONNX file in onnxruntime's CPU provider.
  Pruned weights run through the same dense kernels unless the model was converted (CSR Linear layers, 2:4 tensors:
  harness/sparse_inference.py), so dense-vs-pruned latency is only different for such converted models.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)


@dataclass
class MacCount:
    """Dense and effective multiply-accumulates of one forward pass at `input_shape`."""

    input_shape: list[int]
    dense_macs: int
    effective_macs: float
    layers: dict[str, dict[str, float]] = field(default_factory=dict)  # module name -> {"macs", "density"}

    @property
    def dense_gmacs(self) -> float:
        return self.dense_macs / 1e9

    @property
    def effective_gmacs(self) -> float:
        return self.effective_macs / 1e9


@torch.no_grad()
def count_macs(model: nn.Module, example_input: torch.Tensor) -> MacCount:
    """MACs of `model(example_input)`: total, and with each conv/linear layer scaled by its weight density."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(example_input)
    finally:
        model.train(was_training)
    per_module = counter.get_flop_counts()
    total_flops = counter.get_total_flops()
    # FlopCounterMode names a module "<root class>.<qualified name>" and counts a module's FLOPs with its children's.
    root = type(model).__name__
    saved_flops = 0.0
    layers: dict[str, dict[str, float]] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not name or not isinstance(module, WEIGHTED) or not isinstance(weight, torch.Tensor):
            continue
        flops = sum(per_module.get(f"{root}.{name}", {}).values())
        if not flops:
            continue  # not called at this input (e.g. an unused aux head)
        density = float(torch.count_nonzero(weight)) / weight.numel()
        layers[name] = {"macs": flops / 2, "density": density}
        saved_flops += flops * (1.0 - density)
    return MacCount(input_shape=list(example_input.shape), dense_macs=total_flops // 2,
                    effective_macs=(total_flops - saved_flops) / 2, layers=layers)


@dataclass
class Latency:
    """Median milliseconds of one forward pass at `batch` (and per image), how it was measured."""

    ms: float
    batch: int
    repeats: int
    warmup: int
    threads: int
    device: str
    runtime: str = "torch"

    @property
    def ms_per_image(self) -> float:
        return self.ms / self.batch


def batched(example_input: torch.Tensor, batch: int) -> torch.Tensor:
    """`batch` copies of the example's first sample (a contiguous tensor, as a data loader would give)."""
    return example_input[:1].expand(batch, *example_input.shape[1:]).contiguous()


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[int]:
    """Run with `threads` intra-op threads (None: as set now), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
def measure_latency(model: nn.Module, example_input: torch.Tensor, batch: int = 1, *, repeats: int = 20,
                    warmup: int = 5, threads: int | None = None) -> Latency:
    """Median latency of `model` on `batch` copies of the example, on the model's own device."""
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch >= 1 (got {repeats}, {warmup}, {batch})")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else example_input.dtype
    x = batched(example_input, batch).to(device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with intra_op_threads(threads) as used:
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                times.append(_timed(model, x, device))
    finally:
        model.train(was_training)
    return Latency(ms=statistics.median(times), batch=batch, repeats=repeats, warmup=warmup, threads=used,
                   device=str(device))


def _timed(model: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Milliseconds of one forward pass: CUDA events on a GPU (kernel time, not launch time), perf_counter on CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        torch.cuda.synchronize(device)
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    model(x)
    return (time.perf_counter() - t0) * 1e3


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session (the `export` extra), with `threads` intra-op threads when given."""
    try:
        import onnxruntime as ort
    except ImportError:
        from harness.errors import UserError

        raise UserError("onnxruntime is not installed: pip install 'prunebench[export]'") from None
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_latency(path: str | Path, example_input: torch.Tensor, batch: int = 1, *, repeats: int = 20,
                 warmup: int = 5, threads: int | None = None) -> Latency:
    """Median latency of an exported ONNX model in onnxruntime's CPU provider (its input must take any batch)."""
    session = onnx_session(path, threads)
    feed = {session.get_inputs()[0].name: batched(example_input, batch).float().cpu().numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    used = int(session.get_session_options().intra_op_num_threads)  # 0 = onnxruntime's own choice
    return Latency(ms=statistics.median(times), batch=batch, repeats=repeats, warmup=warmup, threads=used,
                   device="cpu", runtime="onnxruntime")


@dataclass
class ModelCosts:
    """The cost fields of a results record: `to_record()` is what the record and the leaderboard hold."""

    dense_gmacs: float
    effective_gmacs: float
    input_shape: list[int]
    latency_ms: dict[str, float]  # "b1" / "b<N>" (the model's dense kernels), "csr_b1" …, "onnxruntime_b1" …
    ms_per_image: float  # at the larger batch, the model's dense kernels
    threads: int
    device: str
    repeats: int
    warmup: int
    notes: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def model_costs(model: nn.Module, example_input: torch.Tensor, eval_batch: int, *, threads: int | None = None,
                repeats: int = 20, warmup: int = 5, csr: bool = True, onnx_path: str | Path | None = None
                ) -> ModelCosts:
    """MACs and latency of `model` (at batch 1 and `eval_batch`), plus a CSR-Linear copy's and an ONNX file's.

    `csr`: also time a deep copy whose sufficiently sparse Linear layers are CSR (CPU only; skipped, with a note,
    when no Linear qualifies). `onnx_path`: also time that file in onnxruntime (CPU). When a Linear weight is 2:4
    sparse, fp16 latency with and without `to_sparse_semi_structured` is added on a capable CUDA device, and on
    any other device a note says why it was not measured.
    """
    from harness.sparse_inference import sparsify_linears

    macs = count_macs(model, batched(example_input, 1))
    batches = sorted({1, int(eval_batch)})
    notes: list[str] = []
    lat: dict[str, float] = {}
    last: Latency | None = None
    for b in batches:
        last = measure_latency(model, example_input, b, repeats=repeats, warmup=warmup, threads=threads)
        lat[f"b{b}"] = last.ms
    assert last is not None
    if csr and last.device == "cpu":
        sparse = copy.deepcopy(model).eval()
        replaced = sparsify_linears(sparse)
        if replaced:
            for b in batches:
                lat[f"csr_b{b}"] = measure_latency(sparse, example_input, b, repeats=repeats, warmup=warmup,
                                                   threads=threads).ms
            notes.append(f"csr: {len(replaced)} Linear layer(s) as CSR ({', '.join(replaced[:4])})")
        else:
            notes.append("csr: no Linear layer sparse enough for CSR (harness.sparse_inference.DEFAULT_MIN_SPARSITY)")
    if _has_2_4_linear(model):
        for b in batches:
            semi = semi_structured_latency(model, example_input, b, repeats=repeats, warmup=warmup)
            if not semi["supported"]:
                notes.append(f"2:4 semi-structured: {semi['reason']}")
                break
            lat[f"fp16_b{b}"], lat[f"semi_structured_fp16_b{b}"] = semi["dense_ms"], semi["semi_structured_ms"]
    if onnx_path is not None:
        for b in batches:
            lat[f"onnxruntime_b{b}"] = onnx_latency(onnx_path, example_input, b, repeats=repeats, warmup=warmup,
                                                    threads=threads).ms
    return ModelCosts(dense_gmacs=macs.dense_gmacs, effective_gmacs=macs.effective_gmacs,
                      input_shape=macs.input_shape, latency_ms=lat, ms_per_image=last.ms_per_image,
                      threads=last.threads, device=last.device, repeats=repeats, warmup=warmup, notes=notes)


def _has_2_4_linear(model: nn.Module) -> bool:
    from harness.projection import is_nm

    return any(isinstance(m, nn.Linear) and m.in_features % 4 == 0 and is_nm(m.weight, 2, 4)
               for m in model.modules())


def semi_structured_latency(model: nn.Module, example_input: torch.Tensor, batch: int = 1, *,
                            dtype: torch.dtype = torch.float16, repeats: int = 20, warmup: int = 5
                            ) -> dict[str, Any]:
    """fp16/bf16 latency of a copy of `model` with dense Linear weights vs with its 2:4 Linear layers as
    `to_sparse_semi_structured` tensors, on the model's CUDA device. Without a capable device the result holds
    `supported: False` and the reason ("not supported here: …"), and nothing is timed."""
    from harness.sparse_inference import semi_structured_linears, semi_structured_support

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    reason = semi_structured_support(device)
    if reason is not None:
        return {"supported": False, "reason": reason}
    dense = copy.deepcopy(model).to(dtype).eval()
    dense_ms = measure_latency(dense, example_input, batch, repeats=repeats, warmup=warmup).ms
    converted = semi_structured_linears(dense)
    sparse_ms = measure_latency(dense, example_input, batch, repeats=repeats, warmup=warmup).ms
    return {"supported": True, "dtype": str(dtype).removeprefix("torch."), "batch": batch, "dense_ms": dense_ms,
            "semi_structured_ms": sparse_ms, "speedup": dense_ms / sparse_ms if sparse_ms else None,
            "converted": converted.converted, "skipped": converted.skipped, "device": str(device)}


# Leaderboard columns (md / HTML / CSV) and where each comes from in a results record.
COLUMNS: dict[str, str] = {
    "MB": "size.bytes / 1e6: the compressed pruned-model file (harness.artifacts.save_pruned)",
    "GMACs (eff.)": "costs.effective_gmacs: MACs with each conv/linear scaled by its weight density",
    "ms/img": "costs.ms_per_image: median latency per image at the eval batch, dense kernels, on the run's device",
}


def record_columns(record: dict[str, Any]) -> dict[str, float | None]:
    """The leaderboard's cost cells of one results record (None where the record predates these fields)."""
    size = record.get("size") or {}
    costs = record.get("costs") or {}
    nbytes = size.get("bytes")
    return {
        "MB": None if nbytes is None else nbytes / 1e6,
        "GMACs (eff.)": costs.get("effective_gmacs"),
        "ms/img": costs.get("ms_per_image"),
    }
