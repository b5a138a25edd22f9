"""Image classification: the embedded `digits` task, CIFAR-10 (python-pickle layout) and ImageNet (ImageFolder).

Models: torchvision `resnet18/50`, `vgg16_bn`, `mobilenet_v2`, `mobilenet_v3_small/large`; CIFAR variants of the
paper (ResNet-18/50 of the authors' code, ResNet-56/110 option A, VGG-16-BN); a small CNN for digits.
Metrics: top-1 and top-5 (percent).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from adapters.cifar_models import CifarResNetA, CifarVGG16BN, DigitsCNN, cifar_resnet
from harness.weights import load_weights
from harness.errors import DataError
from harness.evaluators.topk import TopKAccuracy
from harness.sparsity import conv_linear_weights, weights_by_pattern
from harness.config import TrainRecipe
from harness.options import setting
from harness.tasks import LoopTask
from harness.userfiles import require_dir


def block_convs(model: nn.Module) -> list[str]:
    """The 3x3 convs inside residual blocks (the ResNet prune set giving SLR paper Table 1's rates)."""
    return weights_by_pattern(model, r"layer\d+\.\d+\.conv\d+\.weight")


class ClassificationTask(LoopTask):
    primary_metric = "top1"
    num_classes = 10
    input_shape: tuple[int, ...] = (3, 32, 32)  # one image, as the model takes it

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, *self.input_shape, device=self.cfg.device)

    # model name -> builder(num_classes)
    builders: dict[str, Callable[[int], nn.Module]] = {}

    def build_model(self) -> nn.Module:
        model = self.builders[self.cfg.model](self.num_classes)
        if self.cfg.weights is not None:
            load_weights(model, self.cfg.weights)
        return model.to(self.cfg.device)

    def default_prune_set(self, model: nn.Module) -> list[str]:
        name = self.cfg.model
        if name in ("resnet18", "resnet56", "resnet110"):
            return block_convs(model)  # ✔ configs of the paper (8.71x / 6.5x / 6.53x / 9.74x)
        if name == "resnet50":
            # every conv incl. the 1x1 downsample convs, minus the stem; FC excluded (inferred from Table 1's 6.57x)
            return [n for n in conv_linear_weights(model) if dict(model.named_parameters())[n].dim() == 4]
        return conv_linear_weights(model)  # all conv + linear weights except the first conv and the classifier

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x.to(self.cfg.device, non_blocking=True)), y.to(self.cfg.device))

    def predict(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return model(batch[0].to(self.cfg.device, non_blocking=True))

    def evaluator(self) -> TopKAccuracy:
        return TopKAccuracy()

    def _loader(self, dataset: Dataset, train: bool, batch_size: int, seed: int = 0) -> DataLoader:
        # A generator per loader, seeded per epoch by the loop: each epoch gets its own order (and worker seeds).
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=False,
            num_workers=self.cfg.workers,
            pin_memory=self.cfg.device.type == "cuda",
            generator=gen if train else None,
            persistent_workers=self.cfg.workers > 0,
        )


# ---- digits (embedded default) ---------------------------------------------------------------------------------------
class DigitsTask(ClassificationTask):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real images): offline, CPU, seconds per run.

    Fixed split: 1,347 train / 450 test (stratified, seed 0). Light augmentation: random 1-pixel shifts.
    """

    name = "digits"
    input_shape = (1, 8, 8)
    models = ("cnn",)
    default_model = "cnn"
    builders = {"cnn": DigitsCNN}
    data_hint = "bundled with scikit-learn (no download)"
    default_rates = (4.0, 10.0, 20.0)

    def __init__(self, cfg):
        super().__init__(cfg)
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = (x - 0.3) / 0.4  # roughly zero-mean, unit-variance
        y = torch.tensor(digits.target, dtype=torch.long)
        idx_train, idx_test = train_test_split(
            np.arange(len(y)), test_size=450, random_state=0, stratify=digits.target
        )
        self._train = (x[idx_train], y[idx_train])
        self._test = (x[idx_test], y[idx_test])

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        return TrainRecipe(optimizer="adam", lr=2e-3, weight_decay=1e-4, epochs=15, retrain_epochs=5,
                           retrain_lr=1e-3, pretrain_epochs=20, pretrain_lr=5e-3, check_every=5, batch_size=64)

    def train_loader(self, seed: int) -> DataLoader:
        return self._loader(_ShiftAugment(*self._train), True, self.cfg.batch_size or 64, seed)

    def eval_loader(self) -> DataLoader:
        return self._loader(TensorDataset(*self._test), False, 512)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"dataset": "sklearn.datasets.load_digits", "train": 1347, "test": 450}


class _ShiftAugment(Dataset):
    """Random shifts of up to one pixel (zero fill): cheap augmentation for 8x8 digits.

    Draws from torch's generator, which the loop seeds per epoch (and DataLoader seeds per worker), so the
    augmentation of an epoch is the same whether or not the run was resumed before it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        dx, dy = torch.randint(-1, 2, (2,)).tolist()
        img = torch.roll(self.x[i], shifts=(int(dy), int(dx)), dims=(1, 2))
        return img, self.y[i]


# ---- CIFAR-10 -----------------------------------------------------------------------------------------------------
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)  # the authors' code's values
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def find_cifar_dir(root: Path | None) -> Path:
    """The `cifar-10-batches-py` folder under `root` (or `root` itself); DataError naming what is missing."""
    hint = "run `python data_scripts/cifar10_download.py --out DIR` and pass --data DIR"
    if root is None:
        raise DataError(f"CIFAR-10 needs --data DIR; {hint}")
    root = Path(root).expanduser()
    cand = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    require_dir(cand, "CIFAR-10 folder", DataError, hint)
    missing = [f for f in CIFAR_FILES if not (cand / f).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 folder {cand} lacks {', '.join(missing)} (python-pickle layout); {hint}")
    return cand


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes at protocol < 3 (always latin1); any other codec is refused."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not part of a CIFAR-10 batch")
    return text.encode("latin1")


def _cifar_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 python batch names: numpy's array reconstruction (under the module name of the
    numpy that wrote it: `numpy.core` for the official Python 2 files, `numpy._core` for numpy >= 2) and the latin1
    bytes helper Python 3 writes at protocol 2. Dicts, lists, bytes, str and ints need no global at all."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2; `numpy.core` is a deprecated alias there
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol-5 arrays (numpy re-saved files)
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Reads CIFAR-10 batches without executing anything else a doctored file might name (os.system, eval, ...)."""

    _allowed = _cifar_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-pickle CIFAR batch -> (uint8 N x 32 x 32 x 3, int64 labels), read by a restricted unpickler."""
    try:
        with open(path, "rb") as fh:
            d = _CifarUnpickler(fh, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a CIFAR-10 batch file") from None
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError, AttributeError, IndexError,
            OverflowError, MemoryError, UnicodeDecodeError) as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {first})") from None
    if len(data) != len(labels):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


class _CifarDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool):
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 N,3,32,32
        self.labels = torch.from_numpy(labels)
        self.train = train
        self.mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i].float().div_(255.0)
        if self.train:  # RandomCrop(32, padding=4) + horizontal flip
            img = F.pad(img, (4, 4, 4, 4))
            dx, dy = torch.randint(0, 9, (2,)).tolist()
            img = img[:, dy : dy + 32, dx : dx + 32]
            if torch.rand(()) < 0.5:
                img = img.flip(2)
        return (img - self.mean) / self.std, self.labels[i]


class Cifar10Task(ClassificationTask):
    name = "cifar10"
    models = ("resnet18", "resnet50", "resnet56", "resnet110", "vgg16_bn", "mobilenet_v2",
              "mobilenet_v3_small", "mobilenet_v3_large")
    default_model = "resnet18"
    data_hint = "data_scripts/cifar10_download.py"
    default_rates = (8.71,)
    builders = {
        "resnet18": lambda n: cifar_resnet(18, n),
        "resnet50": lambda n: cifar_resnet(50, n),
        "resnet56": lambda n: CifarResNetA(56, n),
        "resnet110": lambda n: CifarResNetA(110, n),
        "vgg16_bn": CifarVGG16BN,
        "mobilenet_v2": lambda n: torchvision.models.mobilenet_v2(num_classes=n),
        "mobilenet_v3_small": lambda n: torchvision.models.mobilenet_v3_small(num_classes=n),
        "mobilenet_v3_large": lambda n: torchvision.models.mobilenet_v3_large(num_classes=n),
    }

    def __init__(self, cfg):
        super().__init__(cfg)
        self.root = find_cifar_dir(cfg.data)
        self._train_set: _CifarDataset | None = None

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        # SLR paper Table 1: Adam lr 0.01, batch 128, wd 5e-4 (constant lr: the reference code's cosine schedule never
        # takes effect).
        epochs = {"resnet18": 40, "resnet50": 50, "vgg16_bn": 110, "resnet56": 30, "resnet110": 30}
        return TrainRecipe(optimizer="adam", lr=0.01, weight_decay=5e-4, epochs=epochs.get(model, 40),
                           retrain_epochs=0, pretrain_epochs=0, check_every=10, batch_size=128)

    def _split(self, train: bool):
        files = CIFAR_FILES[:5] if train else CIFAR_FILES[5:]
        parts = [read_cifar_batch(self.root / f) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def train_loader(self, seed: int) -> DataLoader:
        if self._train_set is None:  # decoded once, reshuffled every epoch
            self._train_set = _CifarDataset(*self._split(True), train=True)
        return self._loader(self._train_set, True, self.cfg.batch_size or 128, seed)

    def eval_loader(self) -> DataLoader:
        return self._loader(_CifarDataset(*self._split(False), train=False), False, 1000)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"dataset": str(self.root)}


# ---- ImageNet -----------------------------------------------------------------------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_imagefolder(root: Path | None) -> Path:
    hint = "lay it out with `python data_scripts/imagenet_prepare.py` (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG)"
    if root is None:
        raise DataError(f"ImageNet needs --data DIR; {hint}")
    root = require_dir(Path(root).expanduser(), "ImageNet folder", DataError, hint)
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            raise DataError(f"ImageNet folder {root} lacks {split}/; {hint}")
        classes = [p for p in d.iterdir() if p.is_dir()]
        if not classes:
            raise DataError(f"{d} has no class folders (val images must be sorted into <wnid>/ folders); {hint}")
    tr = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    va = sorted(p.name for p in (root / "val").iterdir() if p.is_dir())
    if tr != va:
        raise DataError(f"ImageNet train/ and val/ class folders differ ({len(tr)} vs {len(va)}); {hint}")
    for split in ("train", "val"):
        # torchvision's ImageFolder would raise a bare FileNotFoundError for a class folder without any image.
        empty = [c for c in tr if not _has_image(root / split / c)]
        if empty:
            raise DataError(f"{root / split} has {len(empty)} class folder(s) without images (first: {empty[0]}); "
                            f"an interrupted copy or extraction? {hint}")
    return root


def _has_image(folder: Path) -> bool:
    """True at the first file with an image extension torchvision's ImageFolder accepts (stops scanning there)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    with os.scandir(folder) as it:
        return any(e.name.lower().endswith(IMG_EXTENSIONS) and e.is_file() for e in it)


@dataclass
class ImageNetOptions:
    imgsz: int = setting(224, lo=32, help="Crop size of training and evaluation images (torchvision's 224).")


class ImageNetTask(ClassificationTask):
    name = "imagenet"
    Options = ImageNetOptions
    models = ("resnet18", "resnet50", "vgg16_bn", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
    default_model = "resnet18"
    data_hint = "data_scripts/imagenet_prepare.py"
    default_rates = (6.5,)
    builders = {name: (lambda n, _name=name: getattr(torchvision.models, _name)(num_classes=n)) for name in models}

    def __init__(self, cfg):
        super().__init__(cfg)
        self.root = check_imagefolder(cfg.data)
        self.input_shape = (3, self.opts.imgsz, self.opts.imgsz)
        self.num_classes = len([p for p in (self.root / "train").iterdir() if p.is_dir()])

    @classmethod
    def recipe(cls, model: str) -> TrainRecipe:
        # Paper: SGD lr 1e-4, batch 256; momentum 0.9, wd 1e-4, no decay.
        epochs = {"resnet18": 40, "resnet50": 30, "mobilenet_v2": 60}
        return TrainRecipe(optimizer="sgd", lr=1e-4, momentum=0.9, weight_decay=1e-4,
                           epochs=epochs.get(model, 40), check_every=5, batch_size=256)

    def _folder(self, split: str, train: bool) -> Dataset:
        t = torchvision.transforms
        norm = t.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        size = self.opts.imgsz
        tf = (t.Compose([t.RandomResizedCrop(size), t.RandomHorizontalFlip(), t.ToTensor(), norm]) if train else
              t.Compose([t.Resize(int(size * 256 / 224)), t.CenterCrop(size), t.ToTensor(), norm]))
        return torchvision.datasets.ImageFolder(str(self.root / split), transform=tf)

    def train_loader(self, seed: int) -> DataLoader:
        return self._loader(self._folder("train", True), True, self.cfg.batch_size or 256, seed)

    def eval_loader(self) -> DataLoader:
        return self._loader(self._folder("val", False), False, self.cfg.batch_size or 256)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"dataset": str(self.root), "classes": self.num_classes}
