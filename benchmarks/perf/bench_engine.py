#!/usr/bin/env python3
"""Engine overheads, measured side by side in one run (not a test).

1. Training step: plain step vs the same step with the SLR and with the ADMM per-step work (the fused penalty
   gradient), CIFAR ResNet-18 (the paper's 16 block convs at 8.71x), CIFAR-shaped input.
2. Projection of all prunable weights once (the per-epoch Z update / hard prune): our exact top-k on the device vs a
   host numpy-percentile projection like the authors' code, for torchvision ResNet-50 and for the 61M-parameter UFLD
   ResNet-18 model (its fc2 alone has 46M entries).

    python benchmarks/perf/bench_engine.py --device cuda --batch 128 --steps 300 --out benchmarks/results/engine_h100.md
    python benchmarks/perf/bench_engine.py --device cpu --batch 32 --steps 10   # what CPU can do in minutes

Targets (issue 2, on an H100): step overhead <= 1.02x, projection <= 1 ms (ResNet-50) and <= 2 ms (61M).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness import offline  # noqa: E402

offline.configure()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

from adapters.cifar_models import cifar_resnet  # noqa: E402
from adapters.classification import block_convs  # noqa: E402
from harness.methods import ADMM, SLR  # noqa: E402
from harness.projection import topk_mask  # noqa: E402
from harness.sparsity import SparsityPlan, conv_linear_weights  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, method, x, y, opt, steps: int, warmup: int, device, amp: bool) -> list[float]:
    times = []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        if method:
            method.on_batch_start(2, i + 1)  # a non-update batch: the per-step work only
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        if method:
            method.observe_loss(loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if method:
            method.after_backward()
        opt.step()
        if method:
            method.after_step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def bench_steps(args, device) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    rows = []
    base = None
    variants = [("plain", None), ("slr", SLR), ("admm", ADMM)]
    # Interleave rounds so drift (thermal, other load) hits every variant alike.
    results: dict[str, list[float]] = {name: [] for name, _ in variants}
    setups = {}
    for name, cls in variants:
        model = cifar_resnet(18).to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        method = None
        if cls:
            method = cls()
            method.attach(model, SparsityPlan.uniform(model, block_convs(model), 0.9))
            method.on_epoch_start(2)
        setups[name] = (model, method, opt)
    for _ in range(args.rounds):
        for name, _ in variants:
            model, method, opt = setups[name]
            results[name] += time_steps(model, method, x, y, opt, args.steps, args.warmup, device, args.amp)
    for name, _ in variants:
        med = statistics.median(results[name]) * 1e3
        base = base or med
        rows.append(f"| {name} | {med:.2f} | {med / base:.3f}x |")
    return rows


def numpy_percentile_project(tensors: list[torch.Tensor], ratio: float) -> None:
    """What the reference code does per layer: copy to host, np.percentile, threshold, copy back."""
    for w in tensors:
        a = w.detach().abs().cpu().numpy()
        tau = np.percentile(a, 100 * ratio)
        out = torch.from_numpy(np.where(a < tau, 0, w.detach().cpu().numpy())).to(w.device)
        del out


def topk_project(tensors: list[torch.Tensor], ratio: float) -> None:
    for w in tensors:
        _ = w * topk_mask(w, ratio)


def bench_projection(args, device) -> list[str]:
    rows = []
    models = {"torchvision ResNet-50": torchvision.models.resnet50()}
    try:
        from adapters.lanes.ufld_model import build_ufld  # the real UFLD model (61.2M parameters)

        models["UFLD ResNet-18 (TuSimple)"] = build_ufld("ufld_resnet18")
    except Exception as exc:  # the lane adapter is optional for this benchmark
        print(f"note: UFLD model unavailable ({exc}); skipping", file=sys.stderr)
    for label, model in models.items():
        model = model.to(device)
        names = conv_linear_weights(model, skip_first=False, skip_last_linear=False)
        params = dict(model.named_parameters())
        tensors = [params[n] for n in names]
        n = sum(t.numel() for t in tensors)
        timings = {}
        for impl, fn in (("topk (ours, on device)", topk_project), ("numpy percentile (host)", numpy_percentile_project)):
            reps = args.proj_reps if "topk" in impl else max(1, args.proj_reps // 5)
            fn(tensors, 0.9)  # warm-up
            samples = []
            for _ in range(reps):
                sync(device)
                t = time.perf_counter()
                fn(tensors, 0.9)
                sync(device)
                samples.append(time.perf_counter() - t)
            timings[impl] = statistics.median(samples) * 1e3
        ours, ref = timings["topk (ours, on device)"], timings["numpy percentile (host)"]
        rows.append(f"| {label} | {len(tensors)} | {n / 1e6:.1f}M | {ours:.2f} | {ref:.1f} | {ref / ours:.1f}x |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100, help="timed steps per round and variant")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass")
    ap.add_argument("--proj-reps", type=int, default=20)
    ap.add_argument("--out", type=Path, help="write the markdown report here")
    args = ap.parse_args()
    device = torch.device(args.device)
    step_rows = bench_steps(args, device)
    proj_rows = bench_projection(args, device)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    lines = [
        "# Engine overhead benchmark",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- device: {device} ({dev_name}); torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"python {platform.python_version()}",
        f"- step: CIFAR ResNet-18, batch {args.batch}, 32x32, SGD, amp={'bf16' if args.amp else 'off'}, "
        f"{args.rounds} interleaved rounds x {args.steps} steps (median)",
        "",
        "| step | ms / step (median) | vs plain |",
        "|---|---|---|",
        *step_rows,
        "",
        "Projection of all conv + linear weights at p = 0.9 (median of repeats):",
        "",
        "| model | tensors | entries | topk ms | numpy ms | speed-up |",
        "|---|---|---|---|---|---|",
        *proj_rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
