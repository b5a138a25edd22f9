"""Inference with pruned weights stored sparsely: CSR Linear layers on the CPU, 2:4 semi-structured on CUDA.

Weight pruning leaves activations dense, so stock PyTorch gains from it only where a layer's weights are stored and
multiplied sparsely. `sparsify_linears` swaps each sufficiently sparse nn.Linear of any model for `CSRLinear`, which
multiplies with a torch.sparse CSR matrix (UFLD's 46M-weight `cls` head is the case that was measured:
benchmarks/results/lane_sparse_inference_cpu.md). `semi_structured_linears` converts 2:4-pruned Linear layers with
`torch.sparse.to_sparse_semi_structured` where a CUDA device supports it (compute capability >= 8.0) and otherwise
says why not.

spconv is deliberately not used: it skips inactive *sites* of sparse activations, not zero weights, and on UFLD's dense
feature maps its CPU build was slower than the dense conv and, with more than one thread, wrong (same benchmark).
Inference only: CSRLinear holds no parameters, so nothing here trains.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

# The lowest sparsity at which the CSR head was measured faster than the dense one: Table 4's 4.21x prunes 76.25 %
# of every tensor of the default prune set (results file, "head only" rows). Below that nothing was measured, and
# an earlier CPU measurement found CSR barely ahead at 90 % zeros on larger shapes, so lower sparsities stay dense.
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


# ---- 2:4 semi-structured (CUDA) ------------------------------------------------------------------------------------
@dataclass
class SemiStructured:
    """What `semi_structured_linears` did: the converted layers, the skipped ones with the reason, or why nothing ran."""

    supported: bool
    reason: str = ""  # "not supported here: …" when `supported` is False
    converted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def semi_structured_support(device: torch.device) -> str | None:
    """None when `device` runs torch's 2:4 sparse kernels, else "not supported here: <reason>"."""
    if device.type != "cuda":
        why = "no CUDA device" if not torch.cuda.is_available() else f"the model is on {device.type}, not CUDA"
        return f"not supported here: {why} (torch.sparse.to_sparse_semi_structured needs 2:4 sparse tensor cores)"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return (f"not supported here: compute capability {major}.{minor} < 8.0 (2:4 sparse tensor cores start with "
                "Ampere)")
    return None


@torch.no_grad()
def semi_structured_linears(model: nn.Module) -> SemiStructured:
    """Swap, in place, the weight of every 2:4-sparse nn.Linear for a `to_sparse_semi_structured` tensor.

    The model must be on a CUDA device of compute capability >= 8.0 and in fp16 or bf16 (the CUTLASS kernels; fp32 is
    cuSPARSELt-only). Layers that are not 2:4 along the input dim, or whose shape the kernels refuse (each dim at least
    and a multiple of the dtype's minimum, e.g. 32 x 64 for fp16), stay dense and are listed in `skipped`. Only
    Linear layers: torch's semi-structured tensors are 2-D, and a conv would need an explicit im2col GEMM.
    """
    from harness.projection import is_nm

    first = next(model.parameters(), None)
    reason = semi_structured_support(first.device if first is not None else torch.device("cpu"))
    if reason is not None:
        return SemiStructured(supported=False, reason=reason)
    result = SemiStructured(supported=True)
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight
        if weight.dtype not in (torch.float16, torch.bfloat16):
            result.skipped[name] = f"dtype {weight.dtype} (cast the model to fp16 or bf16)"
        elif weight.shape[1] % 4 or not is_nm(weight, 2, 4):
            result.skipped[name] = "weight is not 2:4 sparse along the input dim"
        else:
            try:
                sparse = torch.sparse.to_sparse_semi_structured(weight.detach())
            except (RuntimeError, ValueError) as exc:
                result.skipped[name] = str(exc).strip().splitlines()[0][:200]
                continue
            module.weight = nn.Parameter(sparse, requires_grad=False)
            result.converted.append(name)
    return result
