"""Bytes, MACs, export fidelity and latency of pruned models: the numbers behind README's "pruned model" table.

For each case the model is built with random weights (sizes, MACs and latency do not depend on training; only the
non-zero pattern does), hard-pruned at the given rate under the paper's counting rule with the task's default prune
set (or with `nm:2:4`), and then:

* written with harness.artifacts.save_pruned (fp32 and fp16 values) and reloaded (exactness checked);
* exported to ONNX with harness.model_export.export_model (onnxruntime max abs diff);
* counted with harness.costs.count_macs (dense / effective GMACs at batch 1);
* timed with harness.costs.measure_latency: the dense (unpruned) model, the pruned model (same dense kernels), the
  pruned model with CSR Linear layers, and the ONNX file in onnxruntime, at batch 1 and the eval batch, in
  interleaved rounds so that load changes on a shared CPU hit every variant alike.

    python benchmarks/perf/bench_artifact_costs.py --out benchmarks/results/artifact_costs_cpu.md [--full-ufld]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from harness.artifacts import load_pruned, save_pruned  # noqa: E402
from harness.costs import count_macs, measure_latency, onnx_latency  # noqa: E402
from harness.model_export import export_model  # noqa: E402
from harness.projection import hard_prune_, nm_plan  # noqa: E402
from harness.sparse_inference import sparsify_linears  # noqa: E402
from harness.sparsity import SparsityPlan, conv_linear_weights, measure_compression  # noqa: E402

warnings.filterwarnings("ignore")  # CSR-is-beta and exporter deprecation notices say nothing about the numbers


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    prune_set: Callable[[nn.Module], list[str]]
    rate: float | None  # paper-rule rate; None with an N:M projection
    projection: str = "topk"


def digits() -> nn.Module:
    from adapters.cifar_models import DigitsCNN

    return DigitsCNN()


def ufld(size: tuple[int, int], griding: int) -> Callable[[], nn.Module]:
    from adapters.lanes.ufld_model import build_ufld

    return lambda: build_ufld("ufld_resnet18", griding_num=griding, input_size=size)


def conv_and_linear(model: nn.Module) -> list[str]:
    """UFLD's default prune set (TuSimpleTask.default_prune_set without an aux head): every conv and Linear weight."""
    return [n for n, p in model.named_parameters() if p.dim() in (2, 4)]


def prune(case: Case, model: nn.Module) -> tuple[dict[str, torch.Tensor], float]:
    names = case.prune_set(model)
    if case.projection.startswith("nm:"):
        plan = nm_plan(model, names, case.projection)
    else:
        plan = SparsityPlan.for_rate(model, names, case.rate)
    masks = hard_prune_(dict(model.named_parameters()), plan.ratios, case.projection)
    return masks, measure_compression(model, plan.ratios).paper


def interleaved(variants: dict[str, Callable[[int], float]], batches: list[int], rounds: int) -> dict[str, float]:
    """Median over `rounds` of each variant's median latency, the variants alternating within every round."""
    samples: dict[str, list[float]] = {f"{v}_b{b}": [] for v in variants for b in batches}
    for _ in range(rounds):
        for b in batches:
            for v, timer in variants.items():
                samples[f"{v}_b{b}"].append(timer(b))
    return {k: statistics.median(s) for k, s in samples.items()}


def measure(case: Case, eval_batch: int, threads: int, repeats: int, rounds: int, tmp: Path) -> dict[str, object]:
    torch.manual_seed(0)
    dense = case.build().eval()
    pruned = copy.deepcopy(dense)
    with torch.no_grad():
        masks, rate = prune(case, pruned)
    x = torch.randn(1, *case.input_shape)
    state = pruned.state_dict()
    fp32 = save_pruned(state, masks, tmp / f"{case.name}.safetensors", masks=masks)
    fp16 = save_pruned(state, masks, tmp / f"{case.name}.fp16.safetensors", value_dtype="fp16", masks=masks)
    loaded, _ = load_pruned(tmp / f"{case.name}.safetensors")
    exact = all(torch.equal(loaded[k], v) for k, v in state.items())
    kind = "classification" if case.name.startswith("digits") else "lanes"
    onnx = export_model(pruned, x, "onnx", tmp / f"{case.name}.onnx", task_kind=kind)
    macs = count_macs(pruned, x)
    csr = copy.deepcopy(pruned)
    replaced = sparsify_linears(csr)
    warm = max(1, repeats // 4)
    variants: dict[str, Callable[[int], float]] = {
        "dense": lambda b: measure_latency(dense, x, b, repeats=repeats, warmup=warm, threads=threads).ms,
        "pruned": lambda b: measure_latency(pruned, x, b, repeats=repeats, warmup=warm, threads=threads).ms,
        "ort": lambda b: onnx_latency(tmp / f"{case.name}.onnx", x, b, repeats=repeats, warmup=warm,
                                      threads=threads).ms,
    }
    if replaced:
        variants["csr"] = lambda b: measure_latency(csr, x, b, repeats=repeats, warmup=warm, threads=threads).ms
    lat = interleaved(variants, sorted({1, eval_batch}), rounds)
    return {"case": case.name, "rate": rate, "dense_mb": fp32.dense_bytes / 1e6, "file_mb": fp32.bytes / 1e6,
            "file16_mb": fp16.bytes / 1e6, "bound_mb": fp32.bound_bytes / 1e6, "exact": exact,
            "onnx_diff": onnx.max_abs_diff, "dense_gmacs": macs.dense_gmacs, "eff_gmacs": macs.effective_gmacs,
            "lat": lat, "csr_layers": len(replaced), "input": "x".join(map(str, case.input_shape))}


def table(rows: list[dict[str, object]], eval_batch: int) -> str:
    b = eval_batch
    head = ("| model (input) | rate (paper) | dense MB | file MB fp32 / fp16 | bound MB | reload exact | ONNX max abs "
            "diff | GMACs dense / eff. | ms b1: dense / pruned / CSR / ORT | ms/img b{b}: dense / pruned / CSR / ORT |")
    lines = [head.format(b=b), "|" + "---|" * 10]
    for r in rows:
        lat = r["lat"]

        def cells(batch: int) -> str:
            per = 1 if batch == 1 else batch
            vals = [lat.get(f"{v}_b{batch}") for v in ("dense", "pruned", "csr", "ort")]
            return " / ".join("–" if v is None else f"{v / per:.2f}" for v in vals)

        lines.append(
            f"| {r['case']} ({r['input']}) | {r['rate']:.2f}x | {r['dense_mb']:.3f} | {r['file_mb']:.3f} / "
            f"{r['file16_mb']:.3f} | {r['bound_mb']:.3f} | {'yes' if r['exact'] else 'NO'} | {r['onnx_diff']:.2g} | "
            f"{r['dense_gmacs']:.4f} / {r['eff_gmacs']:.4f} | {cells(1)} | {cells(b)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="markdown file to write (default: print only)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--eval-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full-ufld", action="store_true", help="also UFLD ResNet-18 at 288x800, griding 100")
    args = ap.parse_args()
    cases = [
        Case("digits-cnn", digits, (1, 8, 8), conv_linear_weights, 10.0),
        Case("digits-cnn nm:2:4", digits, (1, 8, 8), conv_linear_weights, None, "nm:2:4"),
        Case("ufld-r18 tiny", ufld((64, 160), 9), (3, 64, 160), conv_and_linear, 4.21),
        Case("ufld-r18 tiny", ufld((64, 160), 9), (3, 64, 160), conv_and_linear, 16.85),
    ]
    if args.full_ufld:
        cases.append(Case("ufld-r18", ufld((288, 800), 100), (3, 288, 800), conv_and_linear, 4.21))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(c, args.eval_batch, args.threads, args.repeats, args.rounds, Path(tmp)) for c in cases]
    import onnxruntime

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = "\n".join([
        "# Pruned-model bytes, MACs, ONNX fidelity and latency (CPU)",
        "",
        f"- command: `python benchmarks/perf/bench_artifact_costs.py {' '.join(sys.argv[1:])}`",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other jobs (load average {load[0]:.1f} at the end)" if load else "",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; threads {args.threads}; median of {args.rounds} interleaved rounds of "
        f"{args.repeats}-repeat medians",
        "- random weights, hard-pruned (top-|w| per tensor, or nm:2:4); dense = the unpruned model; pruned = the same "
        "dense kernels on the pruned weights; CSR = Linear layers as torch.sparse CSR where >= 75 % zeros; ORT = the "
        "exported ONNX in onnxruntime's CPU provider",
        "",
        table(rows, args.eval_batch),
        "",
    ])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
