"""CPU inference of a pruned UFLD model with its big Linear layers stored as CSR.

Weight pruning leaves the activations dense, so the one place a pruned UFLD model gets faster on a CPU with stock
PyTorch is its head: `cls` is Linear(1800, 2048) -> ReLU -> Linear(2048, 22624), 46M of the model's 61M weights, and
at the paper's higher rates nearly all of them are zero. `sparsify_linears` swaps each sufficiently sparse nn.Linear
for `CSRLinear`, which multiplies with a torch.sparse CSR matrix. Measured speed-ups and sizes:
benchmarks/results/lane_sparse_inference_cpu.md (benchmarks/perf/bench_lane_sparse_inference.py).

spconv is deliberately not used here: it skips inactive *sites* of sparse activations, not zero weights, and on
UFLD's dense feature maps its CPU build was slower than the dense conv and, with more than one thread, wrong
(same benchmark). Inference only: CSRLinear holds no parameters, so nothing here trains.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

# The lowest sparsity at which the CSR head was measured faster than the dense one: SLR paper Table 4's 4.21x prunes
# 76.25 % of every tensor of the default prune set (results file, "head only" rows). Below that nothing was measured,
# and an earlier CPU measurement found CSR barely ahead at 90 % zeros on larger shapes, so lower sparsities stay dense.
DEFAULT_MIN_SPARSITY = 0.75


class CSRLinear(nn.Module):
    """y = x W^T + b with W held as a CSR tensor with int32 indices (inference only: no gradients flow through it).

    int32, not torch's default int64 indices: in a probe on the benchmark machine (not part of the results file),
    `torch.sparse.mm` on CPU was markedly slower with int64 indices on the 22624 x 2048 head, up to ~3.6x at 77 %
    zeros. 32 bits bound the number of non-zeros to 2^31 - 1, far above UFLD's 46M head weights.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():  # torch's "CSR support is in beta" notice; CSR is used on purpose here
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            w = linear.weight.detach().to_sparse_csr()
        if w.values().numel() >= 2**31:
            raise ValueError(f"{w.values().numel()} non-zeros do not fit int32 CSR indices")
        csr = torch.sparse_csr_tensor(
            w.crow_indices().to(torch.int32),
            w.col_indices().to(torch.int32),
            w.values().contiguous(),
            w.shape,
            check_invariants=False,  # built by to_sparse_csr, so valid; the check would scan all 46M indices
        )
        self.register_buffer("weight_csr", csr)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        # (out x in, CSR) @ (in x batch): torch's CPU CSR kernel wants the sparse operand on the left.
        out = torch.sparse.mm(self.weight_csr, flat.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    @property
    def nnz(self) -> int:
        return int(self.weight_csr.values().numel())

    def nbytes(self) -> int:
        """Bytes of the CSR weight as stored (values + column indices + row pointers), bias excluded."""
        w = self.weight_csr
        return sum(t.numel() * t.element_size() for t in (w.values(), w.col_indices(), w.crow_indices()))

    def extra_repr(self) -> str:
        density = self.nnz / (self.in_features * self.out_features)
        return f"in={self.in_features}, out={self.out_features}, nnz={self.nnz} ({density:.1%} kept)"


def sparsify_linears(model: nn.Module, min_sparsity: float = DEFAULT_MIN_SPARSITY) -> list[str]:
    """Replace, in place, every nn.Linear whose weight has at least `min_sparsity` zeros by a CSRLinear.

    Returns the replaced module names. The model should be in eval mode and stays inference-only afterwards.
    The default threshold is the lowest sparsity measured to gain (see DEFAULT_MIN_SPARSITY); pass
    `min_sparsity=0.0` to convert every Linear regardless.
    """
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                zeros = float((child.weight == 0).float().mean())
                if zeros >= min_sparsity:
                    setattr(module, child_name, CSRLinear(child))
                    replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
