"""Small pruned models of the three task families, shared by the artifact, export and cost tests."""

from __future__ import annotations

import torch
from torch import nn

from harness.projection import hard_prune_
from harness.sparsity import SparsityPlan, conv_linear_weights

UFLD_SIZE = (64, 160)  # multiples of 32 keep UFLD's real layer layout; the head is Linear(80, 2048) -> (9+1)*56*4


def _prune(model: nn.Module, names: list[str], ratio: float, projection: str = "topk") -> dict[str, torch.Tensor]:
    plan = SparsityPlan.uniform(model, names, ratio)
    return hard_prune_(dict(model.named_parameters()), plan.ratios, projection)


def _randomise_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics, so a reload that dropped or reordered buffers would change outputs."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def digits_cnn(ratio: float = 0.9, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """(pruned eval-mode DigitsCNN, retrain masks, a batch of 2 inputs)."""
    from adapters.cifar_models import DigitsCNN

    torch.manual_seed(seed)
    model = DigitsCNN().eval()
    with torch.no_grad():
        _randomise_bn(model, seed)
        masks = _prune(model, conv_linear_weights(model), ratio)
    return model, masks, torch.randn(2, 1, 8, 8)


def tiny_ufld(ratio: float = 0.9, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """(pruned eval-mode UFLD ResNet-18 at 64x160, griding 9, every conv/linear weight pruned, masks, 1 input)."""
    from adapters.lanes.ufld_model import build_ufld

    torch.manual_seed(seed)
    model = build_ufld("ufld_resnet18", griding_num=9, input_size=UFLD_SIZE).eval()
    names = [n for n, p in model.named_parameters() if p.dim() in (2, 4)]
    with torch.no_grad():
        _randomise_bn(model, seed)
        masks = _prune(model, names, ratio)
    return model, masks, torch.randn(1, 3, *UFLD_SIZE)


def yolov3_tiny(ratio: float = 0.5, nc: int = 2, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor],
                                                                          torch.Tensor]:
    """(pruned eval-mode Ultralytics yolov3-tiny DetectionModel with `nc` classes, masks, one 64x64 input)."""
    from adapters.detection import trainer  # noqa: F401  (keeps Ultralytics offline before it is imported)
    from adapters.detection.task import yolo_prune_set
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov3-tiny.yaml", nc=nc, ch=3, verbose=False).eval()
    with torch.no_grad():
        _randomise_bn(model, seed)
        masks = _prune(model, yolo_prune_set(model), ratio)
    return model, masks, torch.rand(1, 3, 64, 64)
