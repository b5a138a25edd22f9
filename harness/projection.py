"""Euclidean projection onto {X : card(X) <= l} and the masks it defines (slr_admm_spec.md §3.1).

Two implementations:
* ``topk`` (default): exact, on the tensor's own device, no host round trip (on CPU tensors the threshold comes
  from numpy's O(n) partition, which is faster there than torch.topk). Keeps l = n - floor(n*p) entries of
  largest |x|; ties at the threshold are broken by flat index (lowest index kept), so the result is deterministic
  and always keeps exactly l entries.
* ``percentile``: bit-level reproduction of the reference code: tau = numpy.percentile(|x|, 100p) (linear
  interpolation) on the host; entries with |x| < tau are zeroed and the mask is |x| > tau (ties at tau stay non-zero
  but are frozen out of the mask).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.errors import UserError
from harness.sparsity import kept_count

PROJECTIONS = ("topk", "percentile")


def topk_threshold(mag: torch.Tensor, keep: int) -> torch.Tensor:
    """The keep-th largest value, found on the tensor's device with torch.topk (no host sync).

    It is also the (n-keep+1)-th smallest, so topk is asked for the smaller of the two k's.
    """
    n = mag.numel()
    if keep <= n - keep + 1:
        return torch.topk(mag, keep, largest=True, sorted=False).values.min()
    return torch.topk(mag, n - keep + 1, largest=False, sorted=False).values.max()


def topk_mask(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask of the `kept_count(n, ratio)` largest-|x| entries (ties broken by flat index)."""
    flat = x.detach().reshape(-1)
    n = flat.numel()
    keep = kept_count(n, ratio)
    if keep >= n:
        return torch.ones_like(x, dtype=torch.bool)
    if keep <= 0:
        return torch.zeros_like(x, dtype=torch.bool)
    mag = flat.abs().float()
    if mag.device.type == "cpu":
        # On the host, numpy's O(n) introselect beats torch.topk/kthvalue (no device round trip exists here), and
        # the tie check below may sync freely.
        thresh = torch.as_tensor(np.partition(mag.numpy(), n - keep)[n - keep])
        above = mag > thresh
        at = mag == thresh
        if int(above.sum()) + int(at.sum()) == keep:  # no ties straddle the cut: skip the ranking pass
            return (above | at).view_as(x)
    else:
        thresh = topk_threshold(mag, keep)
        above = mag > thresh
        at = mag == thresh
    # Fill the remaining slots with the lowest-index ties; stays on device (no .item()).
    room = keep - above.sum()
    tie_rank = torch.cumsum(at, dim=0, dtype=torch.int64)
    mask = above | (at & (tie_rank <= room))
    return mask.view_as(x)


def percentile_threshold(x: torch.Tensor, ratio: float) -> float:
    """The reference code's threshold: numpy.percentile of |x| at 100*ratio (linear interpolation)."""
    mag = x.detach().abs().float().cpu().numpy().reshape(-1)
    return float(np.percentile(mag, 100.0 * ratio))


def project(x: torch.Tensor, ratio: float, method: str = "topk") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (projected copy of x, boolean mask of entries kept for masked retraining)."""
    if method == "topk":
        mask = topk_mask(x, ratio)
        return x * mask, mask
    if method == "percentile":
        tau = percentile_threshold(x, ratio)
        mag = x.detach().abs().float()
        zeroed = x.masked_fill(mag < tau, 0.0)
        return zeroed, mag > tau
    raise UserError(f"unknown projection {method!r}; choose one of: {', '.join(PROJECTIONS)}")


@torch.no_grad()
def hard_prune_(params: dict[str, torch.Tensor], ratios: dict[str, float], method: str = "topk") -> dict[str, torch.Tensor]:
    """Project each named parameter in place (W <- Pi(W), spec §3.3) and return the retrain masks."""
    masks: dict[str, torch.Tensor] = {}
    for name, ratio in ratios.items():
        w = params[name]
        projected, mask = project(w, ratio, method)
        w.copy_(projected)
        masks[name] = mask
    return masks
