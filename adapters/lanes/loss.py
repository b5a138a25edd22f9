"""UFLD v1 training loss (UFLD `utils/loss.py`) with the TuSimple config's weights (`configs/tusimple.py`).

total = 1.0 * softmax focal loss (gamma 2)      on the N x (griding+1) x rows x lanes logits
      + sim_loss_w (1.0) * similarity loss      smooth-L1 of the logit difference between adjacent rows
      + shp_loss_w (0.0) * shape loss           2nd-order smoothness of the expected location, top half of rows
      + 1.0 * aux segmentation cross-entropy    only when the aux head is on
The paper calls the first term cross-entropy; the code uses focal loss, and so do we.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class LossWeights:
    cls: float = 1.0
    sim: float = 1.0  # sim_loss_w
    shp: float = 0.0  # shp_loss_w: off for TuSimple (and CULane)
    aux: float = 1.0


TUSIMPLE_WEIGHTS = LossWeights()


def softmax_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """NLL of (1 - p)^gamma * log p over the class dim (1), averaged over all N x rows x lanes cells."""
    log_p = F.log_softmax(logits, dim=1)
    factor = (1.0 - log_p.exp()).pow(gamma)
    return F.nll_loss(factor * log_p, target)


def similarity_loss(logits: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 1) between raw logits of adjacent row anchors, mean over every element of every pair."""
    diff = logits[:, :, :-1, :] - logits[:, :, 1:, :]
    return F.smooth_l1_loss(diff, torch.zeros_like(diff))


def shape_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean L1 between consecutive first differences of the expected cell position over the top half of rows."""
    griding = logits.shape[1] - 1
    prob = F.softmax(logits[:, :griding], dim=1)
    cells = torch.arange(griding, dtype=prob.dtype, device=prob.device).view(1, -1, 1, 1)
    pos = (prob * cells).sum(dim=1)  # N x rows x lanes
    half = logits.shape[2] // 2
    d = pos[:, :half] - pos[:, 1 : half + 1]  # d_i = pos_i - pos_{i+1}, i < rows // 2
    # Mean over pairs of per-pair means equals upstream's sum of L1Loss terms divided by their count.
    return (d[:, :-1] - d[:, 1:]).abs().mean(dim=(0, 2)).mean()


def ufld_loss(
    logits: torch.Tensor,
    cls_target: torch.Tensor,
    seg_logits: torch.Tensor | None = None,
    seg_target: torch.Tensor | None = None,
    weights: LossWeights = TUSIMPLE_WEIGHTS,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total and the detached terms (kept as tensors: converting to float would sync the GPU per step).

    A zero-weight term is skipped rather than multiplied by zero, which gives the same total for finite values and
    saves the softmax of the shape term.
    """
    terms: dict[str, torch.Tensor] = {"cls": softmax_focal_loss(logits, cls_target)}
    if weights.sim:
        terms["sim"] = similarity_loss(logits)
    if weights.shp:
        terms["shp"] = shape_loss(logits)
    if seg_logits is not None:
        if seg_target is None:
            raise ValueError("the aux head produced a segmentation map but the batch has no segmentation target")
        terms["aux"] = F.cross_entropy(seg_logits, seg_target)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: v.detach() for k, v in terms.items()}
