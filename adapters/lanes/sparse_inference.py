"""CPU inference of a pruned UFLD model with its big Linear layers stored as CSR.

Weight pruning leaves dense activations, so the place a pruned UFLD model can get faster on a CPU is its head:
`cls` is Linear(1800, 2048) -> Linear(2048, 22624), 46M of the model's 61M weights, and at the paper's high rates
nearly all of them are zero. `sparsify_linears` swaps each sufficiently sparse nn.Linear for `CSRLinear`, which
multiplies with a torch.sparse CSR matrix. Measured gains: benchmarks/results/lane_sparse_inference_cpu.md.
(spconv, which sparsifies activations rather than weights, does not serve this model; see the README.)
"""

from __future__ import annotations

import torch
from torch import nn


class CSRLinear(nn.Module):
    """y = x W^T + b with W held as a CSR tensor (inference only: no gradients flow through it)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_csr", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        # (out x in, CSR) @ (in x batch) keeps the sparse operand on the left, the layout torch's CSR kernel wants.
        out = torch.sparse.mm(self.weight_csr, flat.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight_csr.values().numel()
        return f"in={self.in_features}, out={self.out_features}, nnz={nnz} ({nnz / (self.in_features * self.out_features):.1%})"


def sparsify_linears(model: nn.Module, min_sparsity: float = 0.8) -> list[str]:
    """Replace, in place, every nn.Linear whose weight has at least `min_sparsity` zeros by a CSRLinear.

    Returns the replaced module names. Below about 80-90 % zeros CSR is not faster than dense (ecosystem.md §3.d),
    hence the default threshold.
    """
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                zeros = float((child.weight == 0).float().mean())
                if zeros >= min_sparsity:
                    setattr(module, child_name, CSRLinear(child))
                    replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
