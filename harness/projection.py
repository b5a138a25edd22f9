"""Euclidean projection onto {X : card(X) <= l} and the masks it defines (Gurevin et al. 2021, eq. 6; Zhang et al. 2018).

Two implementations:
* ``topk`` (default): exact, on the tensor's own device, no host round trip (on CPU tensors the threshold comes
  from numpy's O(n) partition, which is faster there than torch.topk). Keeps l = n - floor(n*p) entries of
  largest |x|; ties at the threshold are broken by flat index (lowest index kept), so the result is deterministic
  and always keeps exactly l entries.
* ``topk`` over many tensors at once (`topk_masks`, used for every per-epoch projection of a prune set): the same
  masks bit for bit, built in one pass over all tensors concatenated on an accelerator (one top-k per group of
  equal-size tensors, one comparison / cumulative-sum pass for all), so projecting a whole model costs tens of kernel
  launches instead of about a dozen per tensor, and no host sync.
* ``percentile``: bit-level reproduction of the reference code: tau = numpy.percentile(|x|, 100p) (linear
  interpolation) on the host; entries with |x| < tau are zeroed and the mask is |x| > tau (ties at tau stay non-zero
  but are frozen out of the mask).
* ``nm:N:M`` (e.g. ``nm:2:4``): N:M semi-structured sparsity (Mishra et al. 2021, "Accelerating Sparse Deep Neural
  Networks", NVIDIA Ampere's 2:4). The tensor is viewed as ``x.reshape(out, -1)`` (dim 0 = output channels/features;
  a conv's in_channels x kh x kw flattened in PyTorch's row-major order, i.e. the im2col GEMM's reduction dim), and in
  every run of M consecutive entries of a row the N of largest |x| are kept (ties to the lowest index). This is the
  layout `torch.sparse.to_sparse_semi_structured` expects of a 2-D Linear weight (out x in, groups along `in`).
  The groups are disjoint, so keeping each group's N largest is the exact Euclidean projection onto the N:M set.
  The prune ratio is implied (1 - N/M): a plan must give every tensor exactly that ratio (see `nm_plan`), and the
  row length must be a multiple of M. Iterative magnitude pruning (intermediate ratios) cannot use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Iterable

import numpy as np
import torch
from torch import nn

from harness.errors import UserError
from harness.sparsity import SparsityPlan, kept_count

PROJECTIONS = ("topk", "percentile", "nm:N:M")  # the last one is a pattern, e.g. nm:2:4
_NM = re.compile(r"nm:(\d+):(\d+)")


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


def topk_masks(xs: Sequence[torch.Tensor], ratios: Sequence[float]) -> list[torch.Tensor]:
    """`topk_mask(x, ratio)` for every pair, bit-identical; batched on accelerators, per tensor on the host.

    On the host numpy's partition per tensor is already the fast path and there are no kernel launches to save.
    """
    if len(xs) != len(ratios):
        raise ValueError("topk_masks needs one ratio per tensor")
    devices = {x.device for x in xs}
    if len(xs) < 2 or len(devices) != 1 or next(iter(devices)).type == "cpu":
        return [topk_mask(x, r) for x, r in zip(xs, ratios)]
    return batched_topk_masks(xs, ratios)


def batched_topk_masks(xs: Sequence[torch.Tensor], ratios: Sequence[float]) -> list[torch.Tensor]:
    """The batched algorithm behind `topk_masks`, runnable on any device (the tests check it on CPU).

    All magnitudes are concatenated, equal-size tensors with equal kept counts side by side, so each such group finds
    its thresholds with one 2-D top-k. Each tensor's threshold is then repeated over its entries; one comparison and
    one cumulative sum of the ties over the whole buffer decide every mask, ties going to the lowest flat index of
    their own tensor exactly as in `topk_mask`.
    """
    out: list[torch.Tensor | None] = [None] * len(xs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (x, r) in enumerate(zip(xs, ratios)):
        n = x.numel()
        keep = kept_count(n, r)
        if keep >= n:
            out[i] = torch.ones_like(x, dtype=torch.bool)
        elif keep <= 0:
            out[i] = torch.zeros_like(x, dtype=torch.bool)
        else:
            groups.setdefault((n, keep), []).append(i)
    if not groups:
        return out  # type: ignore[return-value]
    order = [i for members in groups.values() for i in members]
    device = xs[order[0]].device
    mags = torch.cat([xs[i].detach().reshape(-1) for i in order]).abs_().float()  # cat copies: abs_ is safe
    thresholds, offset = [], 0
    for (n, keep), members in groups.items():
        block = mags[offset: offset + n * len(members)].view(len(members), n)
        if keep <= n - keep + 1:  # the keep-th largest is the (n-keep+1)-th smallest: ask for the smaller k
            thresholds.append(torch.topk(block, keep, dim=1, largest=True, sorted=False).values.amin(dim=1))
        else:
            thresholds.append(torch.topk(block, n - keep + 1, dim=1, largest=False, sorted=False).values.amax(dim=1))
        offset += n * len(members)
    sizes = [xs[i].numel() for i in order]
    keeps = [kept_count(xs[i].numel(), ratios[i]) for i in order]
    total = mags.numel()
    idx = torch.int32 if total < 2**31 else torch.int64  # counts and ranks: half the memory traffic of int64
    meta = torch.tensor([sizes, keeps], dtype=torch.int64).to(device, non_blocking=True)
    size_t, keep_t = meta[0], meta[1].to(idx)
    thresh = torch.repeat_interleave(torch.cat(thresholds), size_t, output_size=total)
    above = mags > thresh
    at = mags == thresh
    del thresh
    # Per tensor: room = keep - #above; a tie is kept when its rank among its tensor's ties is <= room. Ranks come
    # from one global cumulative sum, offset by the ties of the tensors before it.
    ends = torch.cumsum(size_t, 0) - 1
    above_end = torch.cumsum(above, 0, dtype=idx)[ends]
    at_cum = torch.cumsum(at, 0, dtype=idx)
    at_end = at_cum[ends]
    zero = torch.zeros(1, dtype=idx, device=device)
    above_count = above_end - torch.cat([zero, above_end[:-1]])
    ties_before = torch.cat([zero, at_end[:-1]])
    limit = torch.repeat_interleave(ties_before + keep_t - above_count, size_t, output_size=total)
    mask = above | (at & (at_cum <= limit))
    for i, part in zip(order, torch.split(mask, sizes)):
        out[i] = part.view_as(xs[i])
    return out  # type: ignore[return-value]


def percentile_threshold(x: torch.Tensor, ratio: float) -> float:
    """The reference code's threshold: numpy.percentile of |x| at 100*ratio (linear interpolation)."""
    mag = x.detach().abs().float().cpu().numpy().reshape(-1)
    return float(np.percentile(mag, 100.0 * ratio))


def parse_nm(method: str) -> tuple[int, int] | None:
    """(N, M) of an ``nm:N:M`` projection name, None for any other name; UserError for a malformed N:M."""
    if not method.startswith("nm:"):
        return None
    match = _NM.fullmatch(method)
    if match is None:
        raise UserError(f"projection {method!r} is not of the form nm:N:M (e.g. nm:2:4)")
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise UserError(f"projection {method!r} needs 0 < N < M (e.g. nm:2:4 keeps 2 of every 4)")
    return n, m


def check_projection(method: str) -> None:
    """UserError unless `method` names a projection (topk, percentile, or a well-formed nm:N:M)."""
    if parse_nm(method) is None and method not in PROJECTIONS[:2]:
        raise _unknown(method)


def _unknown(method: str) -> UserError:
    return UserError(f"unknown projection {method!r}; choose one of: {', '.join(PROJECTIONS)}")


def nm_ratio(method: str) -> float | None:
    """The prune ratio an ``nm:N:M`` projection implies (1 - N/M); None for the other projections."""
    nm = parse_nm(method)
    return None if nm is None else 1.0 - nm[0] / nm[1]


def _nm_rows(shape: torch.Size, m: int, what: str = "tensor") -> tuple[int, int]:
    """(rows, row length) of the N:M view of a tensor of `shape`; UserError when a row is not a multiple of M."""
    rows = shape[0] if len(shape) > 1 else 1
    cols = math.prod(shape) // max(rows, 1) if rows else 0
    if cols % m:
        raise UserError(f"{what} of shape {tuple(shape)} has rows of {cols} entries (the input dim, kernel "
                        f"flattened), not a multiple of M={m}: leave it out of the prune set for N:M sparsity")
    return rows, cols


def nm_mask(x: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping, in every group of M consecutive entries of each row of x.reshape(out, -1), the N of
    largest |x| (a stable descending sort breaks ties by the lowest index)."""
    rows, cols = _nm_rows(x.shape, m)
    groups = x.detach().abs().float().reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
    return mask.view_as(x)


def is_nm(mask_or_tensor: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of M consecutive row entries has at most N non-zeros (the pattern N:M hardware needs)."""
    rows, cols = _nm_rows(mask_or_tensor.shape, m)
    counts = (mask_or_tensor.reshape(rows, cols // m, m) != 0).sum(dim=-1)
    return bool((counts <= n).all())


def nm_plan(model: nn.Module, names: Iterable[str], method: str, rate: float | None = None,
            rule: str = "paper") -> SparsityPlan:
    """The plan of an N:M run: every named tensor at ratio 1 - N/M (the rate follows from the pattern).

    A `rate` the user gave must be the one the pattern reaches under `rule` (within 1 %), otherwise a UserError names
    that rate: N:M fixes the sparsity of each tensor, so a rate cannot be solved for. Tensors whose rows are not a
    multiple of M are refused by name.
    """
    ratio = nm_ratio(method)
    if ratio is None:
        raise UserError(f"nm_plan needs an nm:N:M projection, got {method!r}")
    m = parse_nm(method)[1]  # type: ignore[index]
    plan = SparsityPlan.uniform(model, names, ratio)  # checks the names
    params = dict(model.named_parameters())
    for name in plan.ratios:
        _nm_rows(params[name].shape, m, what=name)
    plan.rule = rule
    reached = plan.predicted_compression(model).get(rule, math.inf)
    if rate is not None and not math.isclose(rate, reached, rel_tol=0.01):
        raise UserError(f"--projection {method} prunes {ratio:.4g} of every tensor of the prune set, which is "
                        f"{reached:.4g}x under the {rule!r} rule on this model, not {rate}x: omit --rate or pass "
                        f"--rate {reached:.4g}")
    plan.target_rate = reached
    return plan


def project(x: torch.Tensor, ratio: float, method: str = "topk") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (projected copy of x, boolean mask of entries kept for masked retraining)."""
    nm = parse_nm(method)
    if nm is not None:
        implied = 1.0 - nm[0] / nm[1]
        if not math.isclose(ratio, implied, abs_tol=1e-9):
            raise UserError(f"projection {method} implies prune ratio {implied:.4g} for every pruned tensor, got "
                            f"{ratio:.4g} (iterative pruning's intermediate ratios cannot use N:M; see nm_plan)")
        mask = nm_mask(x, *nm)
        return x * mask, mask
    if method == "topk":
        mask = topk_mask(x, ratio)
        return x * mask, mask
    if method == "percentile":
        tau = percentile_threshold(x, ratio)
        mag = x.detach().abs().float()
        zeroed = x.masked_fill(mag < tau, 0.0)
        return zeroed, mag > tau
    raise _unknown(method)


def project_many(xs: Sequence[torch.Tensor], ratios: Sequence[float],
                 method: str = "topk") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`project` for many tensors: the same results, with the top-k masks built by `topk_masks` in one batch."""
    if method != "topk":
        return [project(x, r, method) for x, r in zip(xs, ratios)]
    return [(x * m, m) for x, m in zip(xs, topk_masks(xs, ratios))]


@torch.no_grad()
def hard_prune_(params: dict[str, torch.Tensor], ratios: dict[str, float], method: str = "topk") -> dict[str, torch.Tensor]:
    """Project each named parameter in place (W <- Pi(W), the hard prune) and return the retrain masks."""
    masks: dict[str, torch.Tensor] = {}
    names = list(ratios)
    for name, (projected, mask) in zip(names, project_many([params[n] for n in names], [ratios[n] for n in names],
                                                           method)):
        params[name].copy_(projected)
        masks[name] = mask
    return masks
