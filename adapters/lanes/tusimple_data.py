"""TuSimple on disk for UFLD: layout checks, list files, ground truth, and the train/test torch Datasets.

Expected layout (one root holding train and test clips), after `data_scripts/tusimple_convert.py`:

    ROOT/clips/<date>/<clip>/20.jpg (+ 20.png label written by the conversion)
    ROOT/label_data_0313.json, label_data_0531.json, label_data_0601.json   (train labels)
    ROOT/test_tasks_0627.json, test_label.json                              (test template, test GT)
    ROOT/train_gt.txt, test.txt                                             (written by the conversion)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from adapters.lanes.constants import (
    GRIDING_NUM,
    INPUT_SIZE,
    TEST_LABEL_FILE,
    TEST_LIST,
    TEST_TASKS_FILE,
    TRAIN_LABEL_FILES,
    TRAIN_LIST,
)
from adapters.lanes.convert import read_json_lines
from adapters.lanes.targets import classification_target, segmentation_target
from adapters.lanes.transforms import augment, preprocess
from harness.errors import DataError
from harness.userfiles import read_text, require_dir

DOWNLOAD_HINT = (
    "download TuSimple with `python data_scripts/tusimple_download.py --out DIR` (or make a small synthetic set "
    "with `python data_scripts/make_synthetic_tusimple.py --out DIR`), then run "
    "`python data_scripts/tusimple_convert.py --root DIR` and pass --data DIR"
)


def convert_hint(root: Path) -> str:
    return f"run `python data_scripts/tusimple_convert.py --root {root}` to write it"


def check_layout(root: Path | None, train: bool = True, test: bool = True) -> Path:
    """Return the dataset root if the files UFLD needs are there; else a DataError naming the first missing file
    and the data script that makes it."""
    if root is None:
        raise DataError(f"TuSimple needs --data DIR; {DOWNLOAD_HINT}")
    root = require_dir(Path(root).expanduser(), "TuSimple folder", DataError, hint=DOWNLOAD_HINT)
    if train and not (root / TRAIN_LIST).is_file():
        raw = [f for f in TRAIN_LABEL_FILES if not (root / f).is_file()]
        if raw:
            raise DataError(f"TuSimple folder {root} lacks {raw[0]} (and {TRAIN_LIST}); {DOWNLOAD_HINT}")
        raise DataError(f"TuSimple folder {root} lacks {TRAIN_LIST} (UFLD training list); {convert_hint(root)}")
    if test:
        if not (root / TEST_LIST).is_file():
            if not (root / TEST_TASKS_FILE).is_file():
                raise DataError(f"TuSimple folder {root} lacks {TEST_TASKS_FILE} (and {TEST_LIST}); {DOWNLOAD_HINT}")
            raise DataError(f"TuSimple folder {root} lacks {TEST_LIST} (UFLD test list); {convert_hint(root)}")
        if not (root / TEST_LABEL_FILE).is_file():
            raise DataError(f"TuSimple folder {root} lacks {TEST_LABEL_FILE} (test ground truth); {DOWNLOAD_HINT}")
    return root


def _check_files(root: Path, rel_paths: Sequence[str], list_name: str, hint: str) -> None:
    missing = [p for p in rel_paths if not (root / p).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} file(s) named in {root / list_name} are missing, e.g. {root / missing[0]}; {hint}"
        )


def read_train_list(root: Path) -> list[tuple[str, str]]:
    """(image, label PNG) relative paths from train_gt.txt; the existence flags are not used by UFLD v1."""
    pairs = []
    for lineno, line in enumerate(read_text(root / TRAIN_LIST, "TuSimple list", DataError).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{root / TRAIN_LIST}, line {lineno}: expected '<image> <label png> e1 e2 e3 e4'")
        pairs.append((parts[0].lstrip("/"), parts[1].lstrip("/")))  # a leading '/' is tolerated upstream
    if not pairs:
        raise DataError(f"{root / TRAIN_LIST} is empty; {convert_hint(root)}")
    _check_files(root, [p for pair in pairs for p in pair], TRAIN_LIST, convert_hint(root))
    return pairs


def read_test_list(root: Path) -> list[str]:
    """raw_file entries of test.txt, in order (the order predictions are written in)."""
    text = read_text(root / TEST_LIST, "TuSimple list", DataError)
    names = [line.split()[0].lstrip("/") for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{root / TEST_LIST} is empty; {convert_hint(root)}")
    _check_files(root, names, TEST_LIST, DOWNLOAD_HINT)
    return names


def load_test_gt(root: Path, names: Sequence[str]) -> list[dict]:
    """GT records of test_label.json for exactly the listed images, in list order (DataError if one is absent)."""
    by_name = {rec["raw_file"]: rec for rec in read_json_lines(root / TEST_LABEL_FILE)}
    absent = [n for n in names if n not in by_name]
    if absent:
        raise DataError(f"{len(absent)} test image(s) of {root / TEST_LIST} have no entry in "
                        f"{root / TEST_LABEL_FILE}, e.g. {absent[0]}")
    return [by_name[n] for n in names]


class TuSimpleTrain(Dataset):
    """Augmented frames with UFLD targets: (image, cls target rows x lanes) or (image, cls, seg) when `use_aux`.

    Augmentation randomness comes from a numpy Generator seeded per DataLoader worker (torch's per-worker seed,
    itself derived from the loader's seeded generator), or from `seed` in the main process, so runs repeat.
    """

    def __init__(
        self,
        root: Path,
        griding_num: int = GRIDING_NUM,
        input_size: tuple[int, int] = INPUT_SIZE,
        use_aux: bool = False,
        augment: bool = True,
        seed: int = 0,
    ):
        self.root = Path(root)
        self.items = read_train_list(self.root)
        self.griding_num = griding_num
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.use_aux = use_aux
        self.augment = augment
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_owner: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        owner = -1 if info is None else info.seed
        if self._rng is None or self._rng_owner != owner:
            self._rng = np.random.default_rng(self.seed if info is None else info.seed)
            self._rng_owner = owner
        return self._rng

    def __getitem__(self, index: int):
        img_rel, label_rel = self.items[index]
        try:
            img = Image.open(self.root / img_rel).convert("RGB")
            label = Image.open(self.root / label_rel)
            label.load()
        except OSError as exc:
            raise DataError(f"cannot read {self.root / img_rel} or its label: {exc}") from None
        if label.mode != "L":
            label = label.convert("L")
        if self.augment:
            img, label = augment(img, label, self._generator())
        cls = classification_target(np.asarray(label), self.griding_num)
        x = preprocess(img, self.input_size)
        if self.use_aux:
            # The aux map is 1/8 of the input (36 x 100 for 288 x 800), the resolution of layer2.
            seg = segmentation_target(label, (self.input_size[0] // 8, self.input_size[1] // 8))
            return x, cls, seg
        return x, cls


class TuSimpleTest(Dataset):
    """Test frames in test.txt order: (normalised image, raw_file)."""

    def __init__(self, root: Path, input_size: tuple[int, int] = INPUT_SIZE, names: Sequence[str] | None = None):
        self.root = Path(root)
        self.names = list(names) if names is not None else read_test_list(self.root)
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        name = self.names[index]
        try:
            img = Image.open(self.root / name)
            img.load()
        except OSError as exc:
            raise DataError(f"cannot read test image {self.root / name}: {exc}") from None
        return preprocess(img, self.input_size), name
