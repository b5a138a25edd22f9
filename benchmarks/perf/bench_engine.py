#!/usr/bin/env python3
"""Engine overheads, measured side by side in one run (not a test).

1. Training step: plain step vs the same step with the SLR and with the ADMM per-step work (the fused penalty
   gradient), CIFAR ResNet-18 (the paper's 16 block convs at 8.71x), CIFAR-shaped input.
2. Projection of all prunable weights once (the per-epoch Z update / hard prune): the engine's batched exact top-k
   (`harness.projection.project_many`), the same top-k one tensor at a time, and a host numpy-percentile projection
   like the authors' code, for torchvision ResNet-50 and for the 61M-parameter UFLD ResNet-18 model (its fc2 alone has
   46M entries).

On CUDA every interval is timed with CUDA events (median of the repeats after warm-up); on CPU with perf_counter.
The goals (on CUDA only): SLR/ADMM step <= 1.02x the plain step, projection <= 1 ms (ResNet-50) and <= 2 ms
(UFLD). A missed goal is profiled with torch.profiler and its top operators are written into the report.

    python benchmarks/perf/bench_engine.py --device cuda --amp --batch 128 --out engine_h200.md --json engine_h200.json
    python benchmarks/perf/bench_engine.py --device cpu --batch 32 --steps 10   # what CPU can do in minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import offline  # noqa: E402

offline.configure()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

from adapters.cifar_models import CifarResNetA, cifar_resnet  # noqa: E402
from adapters.classification import block_convs  # noqa: E402
from harness.methods import ADMM, SLR  # noqa: E402
from harness.projection import project_many, topk_mask  # noqa: E402
from harness.sparsity import SparsityPlan, conv_linear_weights  # noqa: E402

STEP_GOAL = 1.02  # SLR/ADMM step time / plain step time
PROJ_GOALS_MS = {"resnet50": 1.0, "ufld18": 2.0}
RATIO = 0.9  # prune ratio of the projection benchmark
# The step benchmark's model: the paper's CIFAR ResNet-18; ResNet-20 (0.27M) only for smoke runs of this script.
STEP_MODELS: dict[str, Callable[[], torch.nn.Module]] = {"resnet18": lambda: cifar_resnet(18),
                                                         "resnet20": lambda: CifarResNetA(20)}


class Timer:
    """Intervals on one device: CUDA events (read after one final sync) or host perf_counter."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._pending: list[tuple[Any, Any]] = []
        self.samples: list[float] = []  # milliseconds

    def time(self, fn: Callable[[], None]) -> None:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            self._pending.append((start, end))
        else:
            t = time.perf_counter()
            fn()
            self.samples.append((time.perf_counter() - t) * 1e3)

    def median(self) -> float:
        if self._pending:
            torch.cuda.synchronize()
            self.samples += [s.elapsed_time(e) for s, e in self._pending]
            self._pending.clear()
        return statistics.median(self.samples)


def step_fn(model, method, x, y, opt, amp: bool, counter: list[int]) -> Callable[[], None]:
    """One training step with the method's hooks at a non-update batch (the per-step work only)."""

    def step() -> None:
        counter[0] += 1
        if method:
            method.on_batch_start(2, counter[0])
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
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

    return step


def step_setups(args, device: torch.device) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,), device=device)
    steps = {}
    for name, cls in (("plain", None), ("slr", SLR), ("admm", ADMM)):
        model = STEP_MODELS[args.step_model]().to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        method = None
        if cls:
            method = cls()
            method.attach(model, SparsityPlan.uniform(model, block_convs(model), RATIO))
            method.on_epoch_start(2)
        steps[name] = step_fn(model, method, x, y, opt, args.amp, [0])
    return steps


def bench_steps(args, device: torch.device, steps: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Median ms per step; rounds interleave the variants so drift (clocks, other load) hits each alike."""
    timers = {name: Timer(device) for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            for _ in range(args.warmup):
                fn()
            for _ in range(args.steps):
                timers[name].time(fn)
    return {name: t.median() for name, t in timers.items()}


def numpy_percentile_project(tensors: list[torch.Tensor], ratios: list[float]) -> None:
    """What the reference code does per layer: copy to host, np.percentile, threshold, copy back."""
    for w, ratio in zip(tensors, ratios):
        a = w.detach().abs().cpu().numpy()
        tau = np.percentile(a, 100 * ratio)
        out = torch.from_numpy(np.where(a < tau, 0, w.detach().cpu().numpy())).to(w.device)
        del out


def per_tensor_project(tensors: list[torch.Tensor], ratios: list[float]) -> None:
    for w, ratio in zip(tensors, ratios):
        _ = w * topk_mask(w, ratio)


def batched_project(tensors: list[torch.Tensor], ratios: list[float]) -> None:
    project_many(tensors, ratios)


PROJECTIONS: dict[str, Callable[[list[torch.Tensor], list[float]], None]] = {
    "batched": batched_project, "per_tensor": per_tensor_project, "numpy": numpy_percentile_project}


def build_proj_model(name: str) -> tuple[str, torch.nn.Module]:
    if name == "resnet50":
        return "torchvision ResNet-50", torchvision.models.resnet50()
    if name == "resnet20":  # 0.27M parameters in 20 tensors: a plumbing check that runs in a second on a CPU
        return "CIFAR ResNet-20", CifarResNetA(20)
    if name == "ufld18":
        from adapters.lanes.ufld_model import build_ufld  # the real UFLD model (61.2M parameters)

        return "UFLD ResNet-18 (TuSimple)", build_ufld("ufld_resnet18")
    raise SystemExit(f"error: unknown --proj-models entry {name!r} (resnet50, ufld18, resnet20)")


def prunable(model: torch.nn.Module) -> list[torch.Tensor]:
    names = conv_linear_weights(model, skip_first=False, skip_last_linear=False)
    params = dict(model.named_parameters())
    return [params[n].detach() for n in names]


def bench_projection(args, device: torch.device) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in args.proj_models.split(","):
        label, model = build_proj_model(key)
        tensors = prunable(model.to(device))
        ratios = [RATIO] * len(tensors)
        row: dict[str, Any] = {"label": label, "tensors": len(tensors), "entries": sum(t.numel() for t in tensors)}
        for impl, fn in PROJECTIONS.items():
            reps = args.proj_reps if impl != "numpy" else max(1, args.proj_reps // 5)
            fn(tensors, ratios)  # warm-up
            timer = Timer(device)
            for _ in range(reps):
                timer.time(lambda: fn(tensors, ratios))
            row[f"{impl}_ms"] = timer.median()
        out[key] = row
        del model, tensors
    return out


def goals(device: torch.device, step_ms: dict[str, float], proj: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal with its measured value; `met` is None off CUDA (the goals are for a GPU)."""
    on_gpu = device.type == "cuda"
    rows = []
    for name in ("slr", "admm"):
        ratio = step_ms[name] / step_ms["plain"]
        rows.append({"goal": f"{name} step / plain step", "value": ratio, "limit": STEP_GOAL, "unit": "x",
                     "met": ratio <= STEP_GOAL if on_gpu else None, "profile": ("step", name)})
    for key, row in proj.items():
        if key in PROJ_GOALS_MS:
            ms = row["batched_ms"]
            rows.append({"goal": f"projection of all {row['label']} weights", "value": ms,
                         "limit": PROJ_GOALS_MS[key], "unit": "ms", "met": ms <= PROJ_GOALS_MS[key] if on_gpu else None,
                         "profile": ("projection", key)})
    return rows


def profile_table(device: torch.device, fn: Callable[[], None], reps: int, rows: int) -> str:
    """torch.profiler's top operators (by self device time on CUDA, self CPU time otherwise) over `reps` calls."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(reps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def profiles(args, device, goal_rows, steps) -> dict[str, str]:
    """Profile every missed goal (or every goal with --profile always)."""
    out: dict[str, str] = {}
    for g in goal_rows:
        if not (args.profile == "always" or (args.profile == "auto" and g["met"] is False)):
            continue
        kind, key = g["profile"]
        if kind == "step":
            fn = steps[key]
        else:
            tensors = prunable(build_proj_model(key)[1].to(device))
            fn = lambda t=tensors: batched_project(t, [RATIO] * len(t))  # noqa: E731
        fn()  # warm-up outside the trace
        out[g["goal"]] = profile_table(device, fn, args.profile_reps, args.profile_rows)
    return out


def report(args, device: torch.device, step_ms, proj, goal_rows, prof) -> str:
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    timing = "CUDA events" if device.type == "cuda" else "perf_counter"
    lines = [
        "# Engine overhead benchmark",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- device: {device} ({dev_name}); torch {torch.__version__} (CUDA {torch.version.cuda}); "
        f"threads {torch.get_num_threads()}; python {platform.python_version()}",
        f"- step: CIFAR {args.step_model}, batch {args.batch}, {args.image_size}x{args.image_size}, channels_last, SGD, amp={'bf16' if args.amp else 'off'}, "
        f"{args.rounds} interleaved rounds x {args.steps} steps after {args.warmup} warm-up steps ({timing}, median)",
        "",
        "| step | ms / step (median) | vs plain |",
        "|---|---|---|",
        *(f"| {n} | {ms:.3f} | {ms / step_ms['plain']:.3f}x |" for n, ms in step_ms.items()),
        "",
        f"Projection of all conv + linear weights at p = {RATIO} ({timing}, median of {args.proj_reps} repeats; "
        "numpy: a fifth of them):",
        "",
        "| model | tensors | entries | batched top-k ms (engine) | per-tensor top-k ms | numpy ms | numpy / batched |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['label']} | {r['tensors']} | {r['entries'] / 1e6:.1f}M | {r['batched_ms']:.3f} | "
          f"{r['per_tensor_ms']:.3f} | {r['numpy_ms']:.1f} | {r['numpy_ms'] / r['batched_ms']:.1f}x |"
          for r in proj.values()),
        "",
        "Goals (on CUDA):",
        "",
        "| goal | measured | limit | met |",
        "|---|---|---|---|",
        *(f"| {g['goal']} | {g['value']:.3f} {g['unit']} | {g['limit']} {g['unit']} | "
          f"{'n/a (not CUDA)' if g['met'] is None else ('yes' if g['met'] else 'NO')} |" for g in goal_rows),
        "",
    ]
    for goal, table in prof.items():
        lines += [f"## Profile: {goal}", "", "```", table.rstrip(), "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--step-model", choices=sorted(STEP_MODELS), default="resnet18",
                    help="CIFAR model of the step benchmark (resnet20: smoke runs only)")
    ap.add_argument("--image-size", type=int, default=32, help="input side (CIFAR: 32; smaller only for smoke runs)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps per round and variant")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass")
    ap.add_argument("--proj-reps", type=int, default=20)
    ap.add_argument("--proj-models", default="resnet50,ufld18", help="comma-separated: resnet50, ufld18, resnet20")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                    help="torch.profiler tables: auto = for each goal missed on CUDA")
    ap.add_argument("--profile-reps", type=int, default=5)
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--out", type=Path, help="write the markdown report here")
    ap.add_argument("--json", type=Path, help="write the measurements as JSON here")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = step_setups(args, device)
    step_ms = bench_steps(args, device, steps)
    proj = bench_projection(args, device)
    goal_rows = goals(device, step_ms, proj)
    prof = profiles(args, device, goal_rows, steps)
    text = report(args, device, step_ms, proj, goal_rows, prof)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": str(device), "torch": torch.__version__, "steps_ms": step_ms, "projection": proj,
            "goals": [{k: v for k, v in g.items() if k != "profile"} for g in goal_rows],
            "profiled": sorted(prof)}, indent=2))


if __name__ == "__main__":
    main()
