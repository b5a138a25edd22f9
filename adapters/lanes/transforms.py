"""Image preprocessing and UFLD's joint image/label training augmentation (UFLD `data/dataloader.py`,
`data/mytransforms.py`).

Both work on PIL images because the published numbers come from torchvision's PIL resize (bilinear with PIL's
antialiasing); a cv2 or non-antialiased tensor resize gives slightly different pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from adapters.lanes.constants import INPUT_SIZE, MEAN, STD

MAX_ROTATION_DEG = 6  # random integer angle in [-6, 6]
MAX_SHIFT_Y = 100  # vertical shift in [-100, 99] px (numpy's randint(-100, 100), upper bound exclusive)
MAX_SHIFT_X = 200  # horizontal shift in [-200, 199] px


def preprocess(img: Image.Image, size_hw: tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """RGB frame -> normalised 3 x H x W tensor: squash-resize (no crop, aspect not kept), [0,1], ImageNet norm."""
    img = TF.resize(img.convert("RGB"), list(size_hw), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.normalize(TF.to_tensor(img), MEAN, STD)


def _shift(arr: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate an H x W (x C) array by (dy, dx) pixels, filling the uncovered border with zeros."""
    out = np.zeros_like(arr)
    h, w = arr.shape[:2]
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[dst_y, dst_x] = arr[src_y, src_x]
    return out


def augment(img: Image.Image, label: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """Rotate about the centre (image bilinear, label nearest, no expansion), then shift vertically, then
    horizontally, with zero fill; the same geometry is applied to image and label so targets stay aligned."""
    if img.size != label.size:
        raise ValueError(f"image {img.size} and label {label.size} differ in size")
    angle = int(rng.integers(-MAX_ROTATION_DEG, MAX_ROTATION_DEG + 1))
    img = img.rotate(angle, resample=Image.BILINEAR)
    label = label.rotate(angle, resample=Image.NEAREST)
    dy = int(rng.integers(-MAX_SHIFT_Y, MAX_SHIFT_Y))
    dx = int(rng.integers(-MAX_SHIFT_X, MAX_SHIFT_X))
    # One combined translation equals upstream's vertical-then-horizontal pair: both zero-fill what they uncover.
    return Image.fromarray(_shift(np.asarray(img), dy, dx)), Image.fromarray(_shift(np.asarray(label), dy, dx))
