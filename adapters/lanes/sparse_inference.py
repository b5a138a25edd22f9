"""CPU inference of a pruned UFLD model with its big `cls` Linear layers stored as CSR.

The implementation is general (any model's nn.Linear layers) and lives in harness/sparse_inference.py; this module
keeps the lane adapter's import path. Why it pays for UFLD: `cls` is Linear(1800, 2048) -> ReLU -> Linear(2048, 22624),
46M of the model's 61M weights. Measured: benchmarks/results/lane_sparse_inference_cpu.md.
"""

from harness.sparse_inference import DEFAULT_MIN_SPARSITY, CSRLinear, sparsify_linears

__all__ = ["DEFAULT_MIN_SPARSITY", "CSRLinear", "sparsify_linears"]
