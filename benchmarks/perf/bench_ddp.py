#!/usr/bin/env python3
"""Data-parallel training throughput and the pruning engine's per-step overhead under DDP (not a test).

1. Throughput: images/s of a DistributedDataParallel training step (CIFAR ResNet-18, synthetic CIFAR-shaped input)
   at 1..N ranks, and the scaling efficiency vs 1 rank (images/s at N ranks / (N x images/s at 1 rank)). The global
   batch is fixed across world sizes (each rank gets global / world, as our runner's batch_size would be split), so
   this is strong scaling; a global batch that the world size does not divide is refused.
2. Engine overhead under DDP: the same DDP step with the SLR and with the ADMM per-step hooks (on_batch_start ->
   forward/loss -> observe_loss -> backward, which returns after DDP's gradient all-reduce -> after_backward, which
   adds the fused penalty gradient to the reduced gradients -> optimizer step -> after_step) vs the plain DDP step,
   measured side by side in the same process group (rounds interleave the three variants). The methods are attached
   to the bare model before it is wrapped in DDP, at a non-update batch (the per-step work only), as in
   bench_engine.py.

Each rank times its own steps (CUDA events on CUDA, perf_counter on CPU) and takes the median after warm-up; the
report uses the slowest rank's median (DDP steps are in lock-step, so it bounds throughput). Data loading is
excluded: each rank reuses one random batch (fixed seed per rank). After the timing, every variant's parameters are
compared with rank 0's ("rank drift"; 0 means the hooks kept the replicas identical).

Two launch modes:

    # one world size per launch, under torchrun (rank 0 writes the report); benchmarks/gpu/h200_proof.py runs this
    python -m torch.distributed.run --standalone --nproc_per_node 8 benchmarks/perf/bench_ddp.py --out ddp_8.md
    # world sizes 1..N in one table: the script spawns itself once per world size (TCP rendezvous on localhost)
    python benchmarks/perf/bench_ddp.py --device cuda --max-ranks 8 --out ddp_h200.md --json ddp_h200.json
    python benchmarks/perf/bench_ddp.py --device cuda --max-ranks 8 --global-batch 512 --amp --out ddp_h200_512.md
    # plumbing check on a CPU (ResNet-20, global batch 4 at 16x16, 1..2 ranks, gloo)
    python benchmarks/perf/bench_ddp.py --smoke --device cpu --max-ranks 2 --out ddp_smoke.md

NCCL on CUDA, gloo on CPU. On CPU each rank uses max(1, cores // world) intra-op threads (fewer when OMP_NUM_THREADS
is exported lower; --threads-per-rank sets it), so every world size uses the same cores; CPU numbers show that the
plumbing and the hook order work, not how GPUs scale.

Measured here: 2 CPU cores shared with other jobs (load average 4.5 to 5.8 during the run), torch 2.14.1 CPU,
`OMP_NUM_THREADS=1 PRUNEBENCH_PROGRESS=0 python benchmarks/perf/bench_ddp.py --smoke --device cpu --max-ranks 2
--out /tmp/ddp_smoke.md` took 24.9 s wall (the ranks 3.9 s and 6.5 s of it) and printed, one thread per rank (the
SLR and ADMM ms columns are left out here):

    | ranks | batch / rank | plain ms / step | images/s | scaling efficiency | SLR / plain | ADMM / plain | drift |
    | 1     | 4            | 70.164          | 57.0     | 1.00               | 1.182x      | 0.891x       | 0     |
    | 2     | 2            | 129.130         | 31.0     | 0.27               | 0.946x      | 1.145x       | 0     |

Ten steps of a 0.27M-parameter model on busy shared cores: the ratios scatter around 1 both ways, so they are noise
here, not the engine's overhead; the GPU run is the measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (HERE, ROOT):  # ROOT first: this checkout's harness, not an installed copy
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from harness import offline  # noqa: E402

offline.configure()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

# The ranks import the models and the engine (bench_engine, torchvision, harness.methods) in `measure`: the parent
# of the direct mode only spawns, and each spawned rank imports this file again before it starts.
MODELS = ("resnet18", "resnet20")  # bench_engine.STEP_MODELS
VARIANTS = ("plain", "slr", "admm")
# Sizes: the full run (the CIFAR configs' batch 128 on the paper's ResNet-18) and the CPU plumbing check.
SIZES: dict[str, dict[str, Any]] = {
    "full": {"model": "resnet18", "global_batch": 128, "image_size": 32, "steps": 30, "warmup": 5, "rounds": 3},
    "smoke": {"model": "resnet20", "global_batch": 4, "image_size": 16, "steps": 5, "warmup": 2, "rounds": 2},
}


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_rank(args, world: int) -> int:
    """CPU intra-op threads of one rank: --threads-per-rank, else max(1, cores // world), capped by an
    OMP_NUM_THREADS the caller exported (torchrun exports 1 for --nproc_per_node > 1)."""
    if args.threads_per_rank:
        return args.threads_per_rank
    n = max(1, cpu_cores() // world)
    try:
        return max(1, min(n, int(os.environ["OMP_NUM_THREADS"])))
    except (KeyError, ValueError):
        return n


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_divisible(global_batch: int, world: int) -> str | None:
    if global_batch % world:
        return (f"error: --global-batch {global_batch} is not divisible by world size {world} "
                "(the global batch is split evenly across ranks)")
    return None


# ---- one rank ------------------------------------------------------------------------------------------------------
def ddp_setups(args, device: torch.device, rank: int, world: int):
    """The three variants as DDP steps; returns their step functions, their DDP-wrapped models and the prune plan's
    size."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from adapters.classification import block_convs
    from bench_engine import RATIO, STEP_MODELS, step_fn  # the step with the method hooks, as bench_engine times it
    from harness.methods import ADMM, SLR
    from harness.sparsity import SparsityPlan

    per_rank = args.global_batch // world
    steps, models, plan = {}, {}, {}
    for name, cls in zip(VARIANTS, (None, SLR, ADMM)):
        torch.manual_seed(0)  # every rank builds identical weights (DDP also broadcasts rank 0's)
        model = STEP_MODELS[args.model]().to(device).to(memory_format=torch.channels_last)
        method = None
        if cls:
            method = cls()
            convs = block_convs(model)
            method.attach(model, SparsityPlan.uniform(model, convs, RATIO))  # before the DDP wrap
            plan = {"tensors": len(convs), "prune_ratio": RATIO}
            method.on_epoch_start(2)
        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard of synthetic data
        x = torch.randn(per_rank, 3, args.image_size, args.image_size, generator=gen)
        y = torch.randint(0, 10, (per_rank,), generator=gen)
        x, y = x.to(device).to(memory_format=torch.channels_last), y.to(device)
        steps[name] = step_fn(ddp, method, x, y, opt, args.amp, [0])
        models[name] = ddp
    return steps, models, plan


@torch.no_grad()
def rank_drift(model: torch.nn.Module) -> float:
    """Largest |parameter - rank 0's parameter| over all ranks (0.0: the replicas are identical)."""
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    drift = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(drift, op=dist.ReduceOp.MAX)
    return float(drift.item())


def measure(rank: int, world: int, local_rank: int, args, init_method: str) -> dict[str, Any] | None:
    """Time the three variants at this world size; rank 0 returns the row, the others None."""
    from bench_engine import bench_steps  # Timer: CUDA events on CUDA, perf_counter on CPU; interleaved rounds

    if args.device == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        backend = "nccl"
    else:
        device = torch.device("cpu")
        torch.set_num_threads(threads_per_rank(args, world))
        backend = "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                            timeout=dt.timedelta(seconds=args.timeout_s))
    try:
        t0 = time.perf_counter()
        steps, models, plan = ddp_setups(args, device, rank, world)
        ms = bench_steps(args, device, steps)  # median ms per variant on this rank
        drift = {name: rank_drift(m) for name, m in models.items()}
        info = {"ms": ms, "threads": torch.get_num_threads(),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, info)
        seconds = time.perf_counter() - t0
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return None
    slowest = {name: max(g["ms"][name] for g in gathered) for name in VARIANTS}
    return {"world": world, "batch_per_rank": args.global_batch // world, "backend": backend,
            "ms": slowest, "ms_per_rank": [g["ms"] for g in gathered],
            "images_per_s": args.global_batch / (slowest["plain"] / 1e3),
            "ratio": {n: slowest[n] / slowest["plain"] for n in ("slr", "admm")},
            "drift": drift, "threads_per_rank": gathered[0]["threads"], "device_name": gathered[0]["device_name"],
            "plan": plan, "seconds": seconds}


def import_engine() -> None:
    """What a rank imports in `measure` (torchvision, the models, the methods, bench_engine)."""
    import adapters.classification  # noqa: F401
    import bench_engine  # noqa: F401
    import harness.methods  # noqa: F401
    import harness.provenance  # noqa: F401
    from torch.nn.parallel import DistributedDataParallel  # noqa: F401


def _spawned(rank: int, world: int, args, init_method: str, result: str) -> None:
    row = measure(rank, world, rank, args, init_method)
    if row is not None:
        Path(result).write_text(json.dumps(row))


# ---- the report ----------------------------------------------------------------------------------------------------
def add_efficiency(rows: list[dict[str, Any]]) -> None:
    base = next((r for r in rows if r["world"] == 1), None)
    for r in rows:
        r["efficiency"] = r["images_per_s"] / (r["world"] * base["images_per_s"]) if base else None


def git_sha() -> str | None:
    from harness.provenance import git_state

    g = git_state(ROOT)
    return None if not g["sha"] else g["sha"] + (" (dirty)" if g["dirty"] else "")


def report(args, mode: str, command: str, rows: list[dict[str, Any]]) -> str:
    cpu = args.device == "cpu"
    dev_name = rows[0]["device_name"] if not cpu else (platform.processor() or platform.machine())
    timing = "CUDA events" if not cpu else "perf_counter"
    lines = [
        "# DDP benchmark: throughput scaling and engine overhead",
        "",
        f"- command: {command}",
        f"- mode: {mode}",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- git: {git_sha()}",
        f"- device: {args.device} ({dev_name}); backend {rows[0]['backend']}; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}); python {platform.python_version()}"
        + (f"; {cpu_cores()} CPU cores, threads per rank: "
           + ", ".join(f"{r['threads_per_rank']} at {r['world']} rank(s)" for r in rows) if cpu
           else f"; {torch.cuda.device_count()} GPU(s) visible"),
        f"- step: CIFAR {args.model}, global batch {args.global_batch} (split evenly across ranks), "
        f"{args.image_size}x{args.image_size} synthetic input (fixed seed per rank, data loading excluded), "
        f"channels_last, SGD, amp={'bf16' if args.amp else 'off'}, DDP (broadcast_buffers on); "
        f"{args.rounds} interleaved rounds x {args.steps} steps after {args.warmup} warm-up steps per variant "
        f"({timing}, median per rank; the slowest rank's median is reported)",
        f"- SLR / ADMM: {rows[0]['plan']['tensors']} block convs at prune ratio {rows[0]['plan']['prune_ratio']}, "
        "attached before the DDP wrap, per-step hooks at a non-update batch",
        "",
        "| ranks | batch / rank | plain ms / step | images/s | scaling efficiency | SLR ms / step | SLR / plain "
        "| ADMM ms / step | ADMM / plain | rank drift (max abs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['world']} | {r['batch_per_rank']} | {r['ms']['plain']:.3f} | {r['images_per_s']:.1f} | "
          f"{'n/a (no 1-rank run)' if r['efficiency'] is None else format(r['efficiency'], '.2f')} | "
          f"{r['ms']['slr']:.3f} | {r['ratio']['slr']:.3f}x | {r['ms']['admm']:.3f} | "
          f"{r['ratio']['admm']:.3f}x | {max(r['drift'].values()):.3g} |" for r in rows),
        "",
        "images/s = global batch / plain step time; scaling efficiency = images/s at N ranks / (N x images/s at 1 "
        "rank); SLR / plain and ADMM / plain = the step with the method's per-step hooks over the plain DDP step, "
        "same ranks, same run.",
    ]
    if cpu:
        lines += ["", f"CPU (gloo) numbers do not represent GPU scaling: every rank shares the same {cpu_cores()} "
                  "cores and memory bus (threads per rank: max(1, cores // ranks), capped by OMP_NUM_THREADS when "
                  "set), so these rows prove the plumbing and the hook order under DDP, not NCCL throughput."]
    return "\n".join(lines) + "\n"


def write_outputs(args, mode: str, command: str, rows: list[dict[str, Any]]) -> None:
    add_efficiency(rows)
    text = report(args, mode, command, rows)
    print(text, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"mode": mode, "command": command, "git": git_sha(), "torch": torch.__version__,
                                         "settings": settings, "rows": rows}, indent=2))


# ---- launch modes --------------------------------------------------------------------------------------------------
def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def run_torchrun(args) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    error = check_divisible(args.global_batch, world)
    if args.max_ranks is not None:
        error = "error: --max-ranks is for the direct mode; under torchrun the world size is --nproc_per_node"
    if args.device == "cuda" and local_rank >= torch.cuda.device_count():
        error = f"error: local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)"
    if error:  # said once, by rank 0; the others leave quietly so torchrun cannot stop rank 0 before it prints
        if rank == 0:
            print(error, file=sys.stderr, flush=True)
        raise SystemExit(2 if rank == 0 else 0)
    row = measure(rank, world, local_rank, args, "env://")
    if row is not None:
        command = (f"torchrun with WORLD_SIZE={world} (LOCAL_WORLD_SIZE={os.environ.get('LOCAL_WORLD_SIZE', '?')}) "
                   f"running `python {' '.join(sys.argv)}`")
        write_outputs(args, f"torchrun, one world size ({world})", command, [row])


def run_direct(args) -> None:
    import torch.multiprocessing as mp

    n = args.max_ranks or (torch.cuda.device_count() if args.device == "cuda" else 2)
    if n < 1:
        raise SystemExit("error: --max-ranks must be at least 1")
    if args.device == "cuda" and n > torch.cuda.device_count():
        raise SystemExit(f"error: --max-ranks {n} exceeds the {torch.cuda.device_count()} visible GPUs")
    for world in range(1, n + 1):
        error = check_divisible(args.global_batch, world)
        if error:
            raise SystemExit(error)
    # CPU: fork, after importing the engine here once, so no rank pays the ~7 s of imports again (the parent has run
    # no torch op, so no thread pool is forked). CUDA: spawn, since a forked process cannot use CUDA safely.
    start = "fork" if args.device == "cpu" and "fork" in mp.get_all_start_methods() else "spawn"
    if start == "fork":
        import_engine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        for world in range(1, n + 1):
            result = Path(tmp) / f"world{world}.json"
            t = time.perf_counter()
            mp.start_processes(_spawned, args=(world, args, f"tcp://127.0.0.1:{free_port()}", str(result)),
                               nprocs=world, join=True, start_method=start)
            rows.append(json.loads(result.read_text()))
            print(f"{world} rank(s): {rows[-1]['images_per_s']:.1f} images/s, "
                  f"{time.perf_counter() - t:.1f} s with start-up", flush=True)
    write_outputs(args, f"direct, world sizes 1..{n} (torch.multiprocessing, start method {start}, one process "
                  "group per world size)",
                  f"`python {' '.join(sys.argv)}`", rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="auto: cuda when a GPU is visible (NCCL), else cpu (gloo)")
    ap.add_argument("--max-ranks", type=int, default=None,
                    help="direct mode: measure world sizes 1..N (default: the visible GPUs on cuda, 2 on cpu)")
    ap.add_argument("--smoke", action="store_true", help="plumbing-check sizes (ResNet-20, global batch 4, 16x16, "
                    "2 rounds x 5 steps); explicit size options still win")
    ap.add_argument("--model", choices=MODELS, default=None, help="default resnet18 (smoke: resnet20)")
    ap.add_argument("--global-batch", type=int, default=None, help="images per step over all ranks (default 128)")
    ap.add_argument("--image-size", type=int, default=None, help="input side (CIFAR: 32, the default)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round and variant (default 30)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps before each round (default 5)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass")
    ap.add_argument("--threads-per-rank", type=int, default=None, help="cpu: intra-op threads per rank "
                    "(default max(1, cores // world size), capped by OMP_NUM_THREADS when set)")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="process-group timeout for a collective")
    ap.add_argument("--out", type=Path, help="write the markdown report here (rank 0)")
    ap.add_argument("--json", type=Path, help="write the measurements as JSON here (rank 0)")
    args = ap.parse_args(argv)
    for key, value in SIZES["smoke" if args.smoke else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no GPU is visible")
    for key in ("global_batch", "image_size", "steps", "rounds"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if under_torchrun():
        run_torchrun(args)
    else:
        run_direct(args)


if __name__ == "__main__":
    main()
