#!/usr/bin/env python3
"""Does weight sparsity make the pruned UFLD lane model faster on a CPU, and can spconv help? One run, side by side.

UFLD ResNet-18 (288x800, eval mode, random init: timing and equality do not depend on trained values) is
hard-pruned at several of the paper's Table 4 rates over TuSimpleTask's default prune set (all 23 conv + Linear
weights, uniform ratio from SparsityPlan.for_rate, top-k projection). For each rate and batch size:
  (a) dense    - the pruned model run by stock PyTorch (zeros are multiplied like any other weight);
  (b) csr      - the same model with both `cls` Linear layers as torch.sparse CSR (adapters/lanes/sparse_inference);
      head     - the `cls` head alone, dense vs CSR, on the model's real 1800-wide features (where (b) acts);
  (c) spconv   - every backbone conv and `pool` run by spconv 2.x (SubMConv2d for stride 1, SparseConv2d for stride
      2) on the dense, all-sites-active feature maps with the pruned weights; each wrapper converts dense ->
      SparseConvTensor -> dense, and the time split (spconv calls vs conversion) is reported.
spconv runs with torch's default thread count and with 1 thread, because its CPU build was found to return wrong
values with 2 threads; dense is timed at 1 thread too so the 1-thread speed-up is like for like.
Every variant's output is compared with the dense model's (max abs diff). Weight bytes are counted from the tensors.

    python benchmarks/perf/bench_lane_sparse_inference.py --out benchmarks/results/lane_sparse_inference_cpu.md
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.metadata as md
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from adapters.lanes.sparse_inference import CSRLinear, sparsify_linears  # noqa: E402
from adapters.lanes.task import TuSimpleTask  # noqa: E402
from adapters.lanes.ufld_model import ParsingNet, build_ufld  # noqa: E402
from harness.projection import hard_prune_  # noqa: E402
from harness.sparsity import SparsityPlan, measure_compression  # noqa: E402

# spconv's SparseConvTensor.dense() and torch's "CSR is beta" notices say nothing about these measurements.
warnings.filterwarnings("ignore", category=UserWarning)


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median wall ms of `reps` calls after one warm-up call (first calls allocate and pick kernels)."""
    fn()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def timed_alternating(fns: list[Callable[[], Any]], reps: int) -> list[float]:
    """Median wall ms of each fn, calls interleaved (a, b, a, b, ...) so load changes on a shared CPU hit all alike."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, samples):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(s) * 1e3 for s in samples]


class SpconvConv2d(nn.Module):
    """A Conv2d executed by spconv on the dense map with every site active; outputs the dense NCHW result.

    Stride-1 'same' convs (3x3 pad 1, 1x1 pad 0) are submanifold (SubMConv2d): output sites = input sites, which for
    an all-active map is exactly the zero-padded dense conv. Strided convs are SparseConv2d: an output site is active
    when its window touches an active input, i.e. every site of the dense output. Time is accumulated per call so
    the report can split spconv's own work from the dense <-> sparse conversions a dense network forces on it.

    spconv 2.3.8 computes k=1, stride-1 convs as `features @ weight.view(in, out)` although the weight is stored
    [out, 1, 1, in] (traveller59/spconv#450, #772), which gives wrong outputs; with `fix_1x1` the weight memory is
    laid out as W^T so that view reads the right matrix. With `check`, each call also runs the dense conv and keeps
    the worst relative error per layer in `errors` (untimed passes only).
    """

    def __init__(self, conv: nn.Conv2d, spc: Any, stats: dict[str, float], fix_1x1: bool = True):
        super().__init__()
        assert conv.groups == 1 and conv.dilation == (1, 1), "ResNet-18 convs are plain; others are not handled"
        subm = conv.stride == (1, 1) and all(2 * p == k - 1 for p, k in zip(conv.padding, conv.kernel_size))
        cls = spc.SubMConv2d if subm else spc.SparseConv2d
        self.conv = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        padding=conv.padding, bias=conv.bias is not None)
        uses_mm_path = conv.kernel_size == (1, 1) and conv.stride == (1, 1)  # spconv's `conv1x1` shortcut
        with torch.no_grad():
            if fix_1x1 and uses_mm_path:
                w = conv.weight.reshape(conv.out_channels, conv.in_channels).t().contiguous()
                self.conv.weight.copy_(w.reshape(self.conv.weight.shape))  # memory = W^T, so view(in, out) = W^T
            else:
                self.conv.weight.copy_(conv.weight.permute(0, 2, 3, 1))  # spconv 2.x kernels are [out, kh, kw, in]
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)
        self.spc, self.stats, self.dense_conv = spc, stats, conv
        self.check = False
        self.errors: list[float] = []
        self._sites: dict[tuple[int, int, int], torch.Tensor] = {}

    def _all_sites(self, n: int, h: int, w: int) -> torch.Tensor:
        """(batch, y, x) int32 indices of every pixel, in the row order of features from an NHWC reshape."""
        key = (n, h, w)
        if key not in self._sites:
            b, yy, xx = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
            self._sites[key] = torch.stack([b, yy, xx], -1).reshape(-1, 3).to(torch.int32)
        return self._sites[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t0 = time.perf_counter()
        st = self.spc.SparseConvTensor(x.permute(0, 2, 3, 1).reshape(-1, c).contiguous(), self._all_sites(n, h, w),
                                       [h, w], n)
        t1 = time.perf_counter()
        out = self.conv(st)
        t2 = time.perf_counter()
        dense = out.dense()
        t3 = time.perf_counter()
        self.stats["spconv_s"] += t2 - t1
        self.stats["convert_s"] += (t1 - t0) + (t3 - t2)
        if self.check:
            ref = self.dense_conv(x)
            self.errors.append(float((dense - ref).abs().max() / ref.abs().max().clamp_min(1e-12)))
        return dense


class TimedConv2d(nn.Module):
    """The dense conv, with its call time accumulated, so dense conv time is comparable with spconv's."""

    def __init__(self, conv: nn.Conv2d, stats: dict[str, float]):
        super().__init__()
        self.conv, self.stats = conv, stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        y = self.conv(x)
        self.stats["conv_s"] += time.perf_counter() - t
        return y


def replace_convs(model: ParsingNet, make: Callable[[nn.Conv2d], nn.Module]) -> int:
    """Swap every Conv2d of the deployed network (backbone + `pool`) for make(conv); returns how many."""
    count = 0
    for _, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d):
                setattr(module, child_name, make(child))
                count += 1
    return count


def checked_pass(sp_model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float, str]:
    """One untimed forward with every spconv layer compared against its dense conv on the same input.

    Returns the output, the worst per-layer relative error max|spconv - dense| / max|dense| and that layer's name.
    The model's logits alone hide conv errors: the random-init head (N(0, 0.01) weights) shrinks them ~50x.
    """
    layers = {n: m for n, m in sp_model.named_modules() if isinstance(m, SpconvConv2d)}
    for m in layers.values():
        m.check, m.errors = True, []
    try:
        out = sp_model(x)
    finally:
        for m in layers.values():
            m.check = False
    name, worst = max(((n, max(m.errors)) for n, m in layers.items()), key=lambda kv: kv[1])
    return out, worst, name


def tool_output(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError as exc:
        return f"({cmd[0]} unavailable: {exc})"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="4.21,16.85,77.67", help="paper-rule compression rates (Table 4)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reps", type=int, default=7, help="timed calls per measurement at batch 1 (median)")
    ap.add_argument("--reps-large", type=int, default=2, help="timed calls at batches > 1 and for spconv at batch 1")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        import spconv.pytorch as spc
    except ImportError as exc:  # the core does not install spconv; the table then says so instead of failing
        spc, spconv_missing = None, f"{type(exc).__name__}: {exc}"
    else:
        spconv_missing = ""

    torch.manual_seed(0)
    base = build_ufld("ufld_resnet18").eval()
    # default_prune_set reads only the model, not the task's config/data, so it is called unbound.
    prune_set = TuSimpleTask.default_prune_set(None, base)  # type: ignore[arg-type]
    inputs = {b: torch.randn(b, 3, 288, 800) for b in batches}

    lines = [
        "# Sparse inference of the pruned UFLD ResNet-18 lane model (CPU)",
        "",
        f"- command: `{Path(sys.executable).name} {' '.join(sys.argv)}`",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- CPU: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} usable cores, torch threads {threads}",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, torchvision "
        f"{version('torchvision')}, spconv {version('spconv')}, cumm {version('cumm')}, "
        f"MKL available to torch: {torch.backends.mkl.is_available()}",
        f"- uptime before: `{tool_output(['uptime'])}`",
        f"- model: UFLD ResNet-18, 288x800, eval, no aux; prune set: TuSimpleTask default ({len(prune_set)} tensors); "
        f"timing: median of {args.reps} calls at batch 1 and {args.reps_large} at larger batches (spconv: "
        f"{args.reps_large} at batch 1, 1 at larger), after one warm-up call; dense and csr calls interleaved",
        "",
    ]
    rows = ["| rate (achieved) | batch | variant | threads | ms/image | speed-up vs dense | max abs diff vs dense |",
            "|---|---|---|---|---|---|---|"]
    size_rows = ["| rate | kept weights | all 23 pruned tensors, dense fp32 MB | `cls` Linears dense fp32 MB | "
                 "`cls` Linears CSR MB (fp32 values + int32 indices) | `cls` nnz |", "|---|---|---|---|---|---|"]
    split_rows = ["| rate | batch | dense conv calls ms/image (1 thread) | spconv conv calls ms/image | "
                  "dense<->sparse conversion ms/image |", "|---|---|---|---|---|"]
    spconv_errors: list[str] = []
    bug_rows = ["| rate | max abs diff vs dense `pool` | max abs dense `pool` output |", "|---|---|---|"]
    scale = 0.0  # largest |dense output|, to read the diffs against

    for rate in rates:
        model = copy.deepcopy(base)
        plan = SparsityPlan.for_rate(model, prune_set, rate)
        with torch.no_grad():
            hard_prune_(dict(model.named_parameters()), plan.ratios)
        achieved = measure_compression(model, prune_set).paper
        params = dict(model.named_parameters())
        kept = sum(int((params[n] != 0).sum()) for n in prune_set) / sum(params[n].numel() for n in prune_set)
        csr_model = copy.deepcopy(model)
        assert sparsify_linears(csr_model, min_sparsity=0.0) == ["cls.0", "cls.2"]
        csr_layers = [m for m in csr_model.cls if isinstance(m, CSRLinear)]
        size_rows.append(
            f"| {rate}x | {kept:.2%} | {sum(params[n].numel() for n in prune_set) * 4 / 1e6:.1f} | "
            f"{sum(m.weight.numel() for m in model.cls if isinstance(m, nn.Linear)) * 4 / 1e6:.1f} | "
            f"{sum(m.nbytes() for m in csr_layers) / 1e6:.1f} | {sum(m.nnz for m in csr_layers):,} |")
        label = f"{rate}x ({achieved:.2f}x)"

        for b in batches:
            x = inputs[b]
            reps = args.reps if b == 1 else args.reps_large
            print(f"[{time.perf_counter() - started:.0f}s] rate {rate} batch {b}", file=sys.stderr, flush=True)
            with torch.no_grad():
                torch.set_num_threads(threads)
                ref = model(x)
                scale = max(scale, float(ref.abs().max()))
                diff = float((csr_model(x) - ref).abs().max())
                dense_ms, csr_ms = (ms / b for ms in timed_alternating([lambda: model(x), lambda: csr_model(x)], reps))
                rows.append(f"| {label} | {b} | (a) dense | {threads} | {dense_ms:.1f} | 1.00x | 0 |")
                rows.append(f"| {label} | {b} | (b) csr `cls` | {threads} | {csr_ms:.1f} | {dense_ms / csr_ms:.2f}x "
                            f"| {diff:.1e} |")
                feats = model.pool(model.model(x)[2]).flatten(1)  # the head's real input
                head_diff = float((csr_model.cls(feats) - model.cls(feats)).abs().max())
                head_ms, head_csr_ms = (ms / b for ms in timed_alternating(
                    [lambda: model.cls(feats), lambda: csr_model.cls(feats)], max(reps, 7)))
                rows.append(f"| {label} | {b} | head only: dense `cls` -> csr `cls` | {threads} | "
                            f"{head_ms:.2f} -> {head_csr_ms:.2f} | {head_ms / head_csr_ms:.2f}x | {head_diff:.1e} |")
                if spc is None:
                    rows.append(f"| {label} | {b} | (c) spconv | - | - | - | not run: {spconv_missing} |")
                    continue
                dstats = {"conv_s": 0.0}
                timed_model = copy.deepcopy(model)
                replace_convs(timed_model, lambda c: TimedConv2d(c, dstats))
                sstats = {"spconv_s": 0.0, "convert_s": 0.0}
                sp_model = copy.deepcopy(model)
                sp_reps = args.reps_large if b == 1 else 1  # ~1 s/image: one timed call at batch 8 is 8 images
                n_convs = replace_convs(sp_model, lambda c: SpconvConv2d(c, spc, sstats))
                try:
                    if b == 1:  # default threads; batch 8 at 2 threads would only repeat this at 8x the cost
                        out, worst, where = checked_pass(sp_model, x)
                        sp_ms = timed(lambda: sp_model(x), sp_reps) / b
                        rows.append(f"| {label} | {b} | (c) spconv, {n_convs} convs | {threads} | {sp_ms:.1f} | "
                                    f"{dense_ms / sp_ms:.2f}x | {float((out - ref).abs().max()):.1e}; worst conv "
                                    f"{worst:.1e} rel. ({where}) |")
                    torch.set_num_threads(1)
                    timed_model(x)  # warm at 1 thread first, as spconv is below, so both splits count warm calls
                    dstats["conv_s"] = 0.0
                    dense1_ms = timed(lambda: timed_model(x), args.reps_large) / b
                    conv_calls = (args.reps_large + 1) * b
                    dense_conv_ms = dstats["conv_s"] * 1e3 / conv_calls
                    rows.append(f"| {label} | {b} | (a) dense | 1 | {dense1_ms:.1f} | 1.00x | 0 |")
                    out, worst, where = checked_pass(sp_model, x)
                    sstats.update(spconv_s=0.0, convert_s=0.0)  # split counts only the timed calls below
                    sp1_ms = timed(lambda: sp_model(x), sp_reps) / b
                    rows.append(f"| {label} | {b} | (c) spconv, {n_convs} convs | 1 | {sp1_ms:.1f} | "
                                f"{dense1_ms / sp1_ms:.2f}x | {float((out - ref).abs().max()):.1e}; worst conv "
                                f"{worst:.1e} rel. ({where}) |")
                    sp_calls = (sp_reps + 1) * b
                    split_rows.append(f"| {rate}x | {b} | {dense_conv_ms:.1f} | "
                                      f"{sstats['spconv_s'] * 1e3 / sp_calls:.1f} | "
                                      f"{sstats['convert_s'] * 1e3 / sp_calls:.1f} |")
                    if b == 1:  # the 1x1 bug, shown on `pool` with the layout spconv documents (no workaround)
                        x4 = model.model(x)[2]
                        raw = SpconvConv2d(model.pool, spc, {"spconv_s": 0.0, "convert_s": 0.0}, fix_1x1=False)
                        pool_ref = model.pool(x4)
                        bug_rows.append(f"| {rate}x | {float((raw(x4) - pool_ref).abs().max()):.2e} | "
                                        f"{float(pool_ref.abs().max()):.2f} |")
                except Exception as exc:  # record exactly what fails instead of hiding the row
                    spconv_errors.append(f"rate {rate}, batch {b}: {type(exc).__name__}: {exc}")
                    rows.append(f"| {label} | {b} | (c) spconv | - | - | - | failed: {type(exc).__name__} |")
                finally:
                    torch.set_num_threads(threads)

    lines += ["## Latency and equality", "", f"Largest |dense output| over all runs: {scale:.3g}.", "", *rows, "",
              "## Weight bytes", "", *size_rows, "",
              "spconv stores each kernel densely ([out, kh, kw, in] fp32), so its weight bytes equal the dense ones.",
              "",
              "## spconv 1x1 bug: `pool` as SubMConv2d with spconv's documented [out, 1, 1, in] weight (1 thread)", "",
              "The (c) rows above use the workaround (weight memory laid out as W^T); without it:", "", *bug_rows, "",
              "## Where spconv's time goes (1 thread, all backbone convs + `pool`)", "", *split_rows, ""]
    if spconv_errors:
        lines += ["## spconv errors", "", *[f"- {e}" for e in spconv_errors], ""]
    lines += [f"- uptime after: `{tool_output(['uptime'])}`",
              f"- total run time: {time.perf_counter() - started:.0f} s", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
