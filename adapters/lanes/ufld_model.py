"""UFLD `parsingNet` (Ultra-Fast-Lane-Detection v1, ECCV 2020) with the official state-dict layout, and its loader.

The module tree is laid out so that `state_dict()` yields exactly the official key names, order and shapes
(UFLD `model/model.py`: 126 keys for ResNet-18 without aux; 80 more with the aux head): the backbone wrapper is
registered as `model` (holding torchvision's `conv1 … layer4` under their own names), then the aux modules, then
`cls`, then `pool`. Released checkpoints therefore load by name with no renaming table.

The backbone is built with `weights=None`: torchvision would otherwise download ImageNet weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from adapters.lanes.constants import GRIDING_NUM, INPUT_SIZE, NUM_LANES, ROW_ANCHORS
from harness.weights import extract_state_dict, load_strict, read_checkpoint
from harness.errors import CheckpointError, UserError

BACKBONES = ("18", "34")  # the BasicBlock ResNets; deeper ones would need 4x the head channels
POOL_CHANNELS = 8  # `pool` squeezes layer4 to 8 channels before flattening (official constant)
HIDDEN = 2048  # width of the first Linear layer of the classification head (official constant)


class ConvBNReLU(nn.Module):
    """3x3 (or 1x1) conv without bias, BN, ReLU; attribute names `conv`/`bn`/`relu` match the official keys."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=1, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ResNetTrunk(nn.Module):
    """torchvision ResNet stem + layer1..4 (no avgpool/fc); returns the layer2, layer3 and layer4 features."""

    def __init__(self, depth: str):
        super().__init__()
        builder = {"18": torchvision.models.resnet18, "34": torchvision.models.resnet34}[depth]
        net = builder(weights=None)  # never download: weights come from a UFLD checkpoint or training
        # Re-register torchvision's modules one by one so the keys read `model.conv1.weight`, not `model.net.…`.
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x2 = self.layer2(self.layer1(x))
        x3 = self.layer3(x2)
        return x2, x3, self.layer4(x3)


class ParsingNet(nn.Module):
    """Row-anchor lane classifier: logits N x (griding+1) x rows x lanes, plus an aux segmentation map if enabled.

    `input_size` (H, W) must be multiples of 32 so the aux branch's x2/x4 upsampled maps line up with layer2 and the
    flattened feature size is an integer; the published 288x800 gives the official 1800-wide feature.
    """

    def __init__(
        self,
        backbone: str = "18",
        griding_num: int = GRIDING_NUM,
        num_rows: int = len(ROW_ANCHORS),
        num_lanes: int = NUM_LANES,
        use_aux: bool = False,
        input_size: tuple[int, int] = INPUT_SIZE,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise UserError(f"UFLD backbone {backbone!r} is not supported; choose one of: {', '.join(BACKBONES)}")
        h, w = int(input_size[0]), int(input_size[1])
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise UserError(f"UFLD input size must be positive multiples of 32 (H, W), got {input_size}")
        if griding_num < 2:
            raise UserError(f"UFLD griding_num must be >= 2, got {griding_num}")
        self.input_size = (h, w)
        self.cls_dim = (griding_num + 1, num_rows, num_lanes)
        self.use_aux = use_aux
        self.feature_dim = POOL_CHANNELS * (h // 32) * (w // 32)  # 1800 at 288x800

        # Registration order decides state_dict() order: model, aux_*, cls, pool (as the official class).
        self.model = ResNetTrunk(backbone)
        if use_aux:
            self.aux_header2 = nn.Sequential(*[ConvBNReLU(128, 128, 3, padding=1) for _ in range(4)])
            self.aux_header3 = nn.Sequential(
                ConvBNReLU(256, 128, 3, padding=1),
                ConvBNReLU(128, 128, 3, padding=1),
                ConvBNReLU(128, 128, 3, padding=1),
            )
            self.aux_header4 = nn.Sequential(ConvBNReLU(512, 128, 3, padding=1), ConvBNReLU(128, 128, 3, padding=1))
            self.aux_combine = nn.Sequential(
                ConvBNReLU(384, 256, 3, padding=2, dilation=2),
                ConvBNReLU(256, 128, 3, padding=2, dilation=2),
                ConvBNReLU(128, 128, 3, padding=2, dilation=2),
                ConvBNReLU(128, 128, 3, padding=4, dilation=4),
                nn.Conv2d(128, num_lanes + 1, 1),  # background + one channel per lane slot
            )
            for m in (self.aux_header2, self.aux_header3, self.aux_header4, self.aux_combine):
                _init_head(m)
        total = griding_num + 1
        for d in self.cls_dim[1:]:
            total *= d
        self.cls = nn.Sequential(nn.Linear(self.feature_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, total))
        # `pool` keeps PyTorch's default conv init: the official code initialises only the aux head and `cls`.
        self.pool = nn.Conv2d(512, POOL_CHANNELS, 1)
        _init_head(self.cls)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x2, x3, x4 = self.model(x)
        logits = self.cls(self.pool(x4).flatten(1)).view(-1, *self.cls_dim)
        if not self.use_aux:
            return logits
        a3 = F.interpolate(self.aux_header3(x3), scale_factor=2, mode="bilinear")  # align_corners=False (default)
        a4 = F.interpolate(self.aux_header4(x4), scale_factor=4, mode="bilinear")
        seg = self.aux_combine(torch.cat([self.aux_header2(x2), a3, a4], dim=1))
        return logits, seg


def _init_head(module: nn.Module) -> None:
    """UFLD's init for freshly built heads: kaiming-normal convs (zero bias), N(0, 0.01) linear weights, BN 1/0.

    Linear biases keep PyTorch's default, as upstream (it only redraws the weight).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_ufld(
    name: str = "ufld_resnet18",
    griding_num: int = GRIDING_NUM,
    use_aux: bool = False,
    input_size: tuple[int, int] = INPUT_SIZE,
) -> ParsingNet:
    """`ufld_resnet18` / `ufld_resnet34` with TuSimple's 56 rows and 4 lanes."""
    depth = {"ufld_resnet18": "18", "ufld_resnet34": "34"}.get(name)
    if depth is None:
        raise UserError(f"unknown UFLD model {name!r}; choose ufld_resnet18 or ufld_resnet34")
    return ParsingNet(depth, griding_num, len(ROW_ANCHORS), NUM_LANES, use_aux, input_size)


def load_ufld_checkpoint(model: ParsingNet, path: str | Path, allow_missing_aux: bool = False) -> dict[str, object]:
    """Load an official UFLD checkpoint strictly into `model`; returns facts for the results record.

    Accepts `{'model': state_dict}` (the training code's layout; an `optimizer` entry is ignored) or a bare state
    dict, with or without DataParallel `module.` prefixes. Unlike upstream's `strict=False` (UFLD `test.py`,
    `demo.py`), every other mismatch raises CheckpointError listing the keys:
    * model without aux: the checkpoint's `aux_*` keys are dropped (the test-time model has no aux head);
    * model with aux and a checkpoint holding *no* aux key (the released `tusimple_18.pth`): only when
      `allow_missing_aux`, the freshly initialised aux head is kept and `aux_init` says so; a partial aux set errors.
    """
    state = extract_state_dict(read_checkpoint(path), path)
    # Upstream strips `module.` per key (test.py), so mixed files load there too; do the same.
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    facts: dict[str, object] = {"checkpoint": str(path), "dropped_aux_keys": 0, "aux_init": None}
    has_aux = any(k.startswith("aux_") for k in state)
    if not model.use_aux and has_aux:
        before = len(state)
        state = {k: v for k, v in state.items() if not k.startswith("aux_")}
        facts["dropped_aux_keys"] = before - len(state)
    elif model.use_aux and not has_aux and allow_missing_aux:
        own = model.state_dict()
        state = dict(state)
        for k, v in own.items():
            if k.startswith("aux_"):
                state[k] = v  # keep the fresh init for the aux head only
        facts["aux_init"] = "random (checkpoint has no aux keys)"
    elif model.use_aux and has_aux:
        facts["aux_init"] = "checkpoint"

    head = state.get("cls.2.weight")
    want = model.cls[2].weight.shape
    if isinstance(head, torch.Tensor) and head.shape != want:
        # Name the likely cause: a CULane checkpoint (201*18*4 = 14472) or another griding.
        raise CheckpointError(
            f"checkpoint {path}: cls.2.weight is {tuple(head.shape)} but the model needs {tuple(want)} "
            f"(= (griding+1) * rows * lanes = {' * '.join(map(str, model.cls_dim))}); "
            "is it a CULane checkpoint or a different griding/input size?"
        )
    load_strict(model, state, path)
    return facts
