#!/usr/bin/env python3
"""Does weight sparsity make the pruned UFLD lane model faster on a CPU? Side by side in one run (not a test).

For UFLD ResNet-18 (288x800, eval mode) hard-pruned at several of the paper's Table 4 rates over the default prune
set (all 23 conv + linear weights):
  (a) dense PyTorch inference of the whole model;
  (b) the same model with its Linear layers as torch.sparse CSR (adapters/lanes/sparse_inference.py);
  (c) spconv 2.x (the package the paper's lane experiments used): one backbone conv (layer2.0.conv2, 128->128, 3x3 on
      the 36x100 map) run as a SubMConv2d with the pruned weights on the dense (all sites active) feature map,
      vs the dense conv. spconv exploits sparse *activations*; this measures what it can do for sparse *weights*.
Every variant's outputs are compared with the dense ones (max abs diff).

    python benchmarks/perf/bench_lane_sparse_inference.py --out benchmarks/results/lane_sparse_inference_cpu.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from adapters.lanes.sparse_inference import sparsify_linears  # noqa: E402
from adapters.lanes.ufld_model import build_ufld  # noqa: E402
from harness.projection import hard_prune_  # noqa: E402
from harness.sparsity import SparsityPlan, conv_linear_weights  # noqa: E402


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def spconv_row(model, reps: int) -> str:
    try:
        import spconv
        import spconv.pytorch as spc
    except ImportError as exc:
        return f"| spconv SubMConv2d (layer2.0.conv2) | not installed ({exc}) | | |"
    conv = model.model.layer2[0].conv2 if hasattr(model.model, "layer2") else None
    if conv is None:
        return "| spconv | layer not found | | |"
    x = torch.randn(1, conv.in_channels, 36, 100)
    sub = spc.SubMConv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=False, indice_key="b")
    with torch.no_grad():
        sub.weight.copy_(conv.weight.permute(0, 2, 3, 1))  # spconv 2.x stores [out, kh, kw, in]
    yy, xx = torch.meshgrid(torch.arange(36), torch.arange(100), indexing="ij")
    idx = torch.stack([torch.zeros_like(yy), yy, xx], -1).reshape(-1, 3).int()
    feats = x[0].permute(1, 2, 0).reshape(-1, conv.in_channels).contiguous()

    def run_sparse():
        return sub(spc.SparseConvTensor(feats, idx, [36, 100], 1)).dense()

    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            ref = conv(x)
            # Correctness with the default thread count, over several calls (a race shows up intermittently).
            diff_mt = max(float((run_sparse() - ref).abs().max()) for _ in range(10))
            torch.set_num_threads(1)
            diff_1t = max(float((run_sparse() - ref).abs().max()) for _ in range(10))
            dense_ms = timed(lambda: conv(x), reps)
            sparse_ms = timed(run_sparse, reps)
    except Exception as exc:  # record exactly what fails
        return f"| spconv {spconv.__version__} SubMConv2d (layer2.0.conv2) | failed: {type(exc).__name__}: {exc} | | |"
    finally:
        torch.set_num_threads(threads)
    return (f"| spconv {spconv.__version__} SubMConv2d, layer2.0.conv2 only, 1 thread | {dense_ms:.2f} (dense conv, "
            f"1 thread) | {sparse_ms:.2f} | {dense_ms / sparse_ms:.2f}x; max abs diff over 10 calls: "
            f"{diff_1t:.1e} with 1 thread, {diff_mt:.1e} with {threads} threads |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="4.21,16.85,77.67")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 288, 800)
    lines = [
        "# Sparse inference of the pruned UFLD ResNet-18 lane model (CPU)",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; load average before: "
        f"{os.getloadavg()[0]:.2f}",
        f"- device: CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; batch {args.batch}, 288x800, eval mode, median of {args.reps}",
        "",
        "| rate (paper rule) | dense model ms | CSR-head model ms | speed-up | max abs diff | head weights dense / CSR MB |",
        "|---|---|---|---|---|---|",
    ]
    base = build_ufld("ufld_resnet18").eval()
    for rate in (float(r) for r in args.rates.split(",")):
        model = build_ufld("ufld_resnet18").eval()
        model.load_state_dict(base.state_dict())
        names = conv_linear_weights(model, skip_first=False, skip_last_linear=False)
        plan = SparsityPlan.for_rate(model, names, rate)
        hard_prune_(dict(model.named_parameters()), plan.ratios)
        with torch.no_grad():
            ref = model(x)
            dense_ms = timed(lambda: model(x), args.reps)
            head_mb = sum(m.weight.numel() * 4 for m in model.cls if isinstance(m, torch.nn.Linear)) / 2**20
            sparsify_linears(model, min_sparsity=0.0)
            csr_mb = sum((m.weight_csr.values().numel() * 8 + m.weight_csr.crow_indices().numel() * 8)
                         for m in model.cls if hasattr(m, "weight_csr")) / 2**20
            out = model(x)
            csr_ms = timed(lambda: model(x), args.reps)
        lines.append(f"| {rate}x | {dense_ms:.1f} | {csr_ms:.1f} | {dense_ms / csr_ms:.2f}x | "
                     f"{float((out - ref).abs().max()):.1e} | {head_mb:.1f} / {csr_mb:.1f} |")
        last = model
    lines += ["", "spconv on a backbone conv (weights pruned at the last rate above):", "",
              "| variant | dense ms | spconv ms | speed-up |", "|---|---|---|---|", spconv_row(last, args.reps),
              "", f"load average after: {os.getloadavg()[0]:.2f}", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
