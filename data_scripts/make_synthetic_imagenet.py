#!/usr/bin/env python3
"""Write a tiny ILSVRC2012 lookalike as the three official archives, in their exact formats:

* ``ILSVRC2012_img_train.tar``: a tar of per-class tars ``<wnid>.tar``, each holding ``<wnid>_<n>.JPEG``;
* ``ILSVRC2012_img_val.tar``: flat ``ILSVRC2012_val_000000NN.JPEG``;
* ``ILSVRC2012_devkit_t12.tar.gz``: ``ILSVRC2012_devkit_t12/data/meta.mat`` (struct array ``synsets`` with fields
  ILSVRC2012_ID, WNID, words, gloss, num_children, children, wordnet_height, num_train_images; leaf synsets first,
  then non-leaf ones, as in the real file) and ``.../ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012_ID per
  validation image, in file order).

For offline tests of data_scripts/imagenet_prepare.py and the ImageFolder loader; not a substitute for ImageNet.

    python data_scripts/make_synthetic_imagenet.py --out /tmp/ilsvrc --classes 3 --train 4 --val 2
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# Real leaf WNIDs (the first ILSVRC2012 classes) and a real non-leaf one.
LEAVES = [("n01440764", "tench, Tinca tinca"), ("n01443537", "goldfish, Carassius auratus"),
          ("n01484850", "great white shark"), ("n01491361", "tiger shark, Galeocerdo cuvieri"),
          ("n01494475", "hammerhead, hammerhead shark")]
NON_LEAF = ("n02512053", "fish")


def _jpeg(rng: np.random.Generator, label: int) -> bytes:
    h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
    img = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
    img[..., label % 3] += np.uint8(120)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _meta_mat(classes: list[tuple[str, str]]) -> bytes:
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"),
             ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    rows = np.zeros((len(classes) + 1, 1), dtype=dtype)
    for i, (wnid, words) in enumerate(classes):
        rows[i, 0] = (i + 1, wnid, words, f"synthetic gloss of {words}", 0, np.zeros((1, 0)), 0, 1300)
    n = len(classes) + 1
    rows[n - 1, 0] = (n, NON_LEAF[0], NON_LEAF[1], "a non-leaf synset", len(classes),
                      np.arange(1, n, dtype=np.float64).reshape(1, -1), 1, 0)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": rows})
    return buf.getvalue()


def make(out: Path, classes: int = 3, train: int = 4, val: int = 2, seed: int = 0) -> dict[str, Path]:
    """Write the three archives under `out`; returns their paths and the per-image validation WNIDs."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chosen = LEAVES[:classes]
    paths = {"train": out / "ILSVRC2012_img_train.tar", "val": out / "ILSVRC2012_img_val.tar",
             "devkit": out / "ILSVRC2012_devkit_t12.tar.gz"}
    with tarfile.open(paths["train"], "w") as outer:
        for label, (wnid, _) in enumerate(chosen):
            inner_buf = io.BytesIO()
            with tarfile.open(fileobj=inner_buf, mode="w") as inner:
                for j in range(train):
                    _add(inner, f"{wnid}_{j + 1}.JPEG", _jpeg(rng, label))
            _add(outer, f"{wnid}.tar", inner_buf.getvalue())
    labels = [int(i) for i in rng.permutation(np.repeat(np.arange(classes), val))]  # every class, shuffled order
    with tarfile.open(paths["val"], "w") as tar:
        for idx, label in enumerate(labels, start=1):
            _add(tar, f"ILSVRC2012_val_{idx:08d}.JPEG", _jpeg(rng, label))
    with tarfile.open(paths["devkit"], "w:gz") as tar:
        _add(tar, "ILSVRC2012_devkit_t12/data/meta.mat", _meta_mat(chosen))
        truth = "".join(f"{label + 1}\n" for label in labels)
        _add(tar, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", truth.encode())
    (out / "val_wnids.txt").write_text("".join(chosen[label][0] + "\n" for label in labels))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--classes", type=int, default=3, choices=range(1, len(LEAVES) + 1))
    ap.add_argument("--train", type=int, default=4, help="training images per class")
    ap.add_argument("--val", type=int, default=2, help="validation images per class")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for name, path in make(a.out, a.classes, a.train, a.val, a.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
