#!/usr/bin/env python3
"""Write a tiny ILSVRC2012 lookalike as the three official archives, in their exact formats:

* ``ILSVRC2012_img_train.tar``: a tar of per-class tars ``<wnid>.tar`` (no folders), each holding flat
  ``<wnid>_<n>.JPEG`` files of varied sizes (one grayscale and one CMYK JPEG, as the real training set has);
* ``ILSVRC2012_img_val.tar``: flat ``ILSVRC2012_val_000000NN.JPEG``, classes interleaved;
* ``ILSVRC2012_devkit_t12.tar.gz``: ``ILSVRC2012_devkit_t12/data/meta.mat``, a MATLAB struct array ``synsets`` with
  the fields ILSVRC2012_ID, WNID, words, gloss, num_children, children, wordnet_height, num_train_images (in that
  order; torchvision reads them by position). As in the real file the leaf synsets (the classes) come first with
  ILSVRC2012_ID 1..N, in WordNet order rather than sorted-WNID order (ID 1 is n02119789 "kit fox"), followed by
  non-leaf synsets (num_children > 0, `children` = their children's IDs); integers load as uint8/uint16 as the
  real file's do. ``.../data/ILSVRC2012_validation_ground_truth.txt`` holds one ILSVRC2012_ID per validation image,
  in file-number order.

Because ID order differs from the sorted-WNID order ImageFolder uses, a prepare script that confuses ILSVRC2012_ID
with a class's position files validation images into the wrong folders, which the tests catch.

Besides the archives it writes ``val_wnids.txt`` (the WNID of each validation image, in order): the answer key for
tests, not part of the official release. Output is byte-identical for the same arguments and seed.

For offline tests of data_scripts/imagenet_prepare.py and the ImageFolder loader; not a substitute for ImageNet.

    python data_scripts/make_synthetic_imagenet.py --out /tmp/ilsvrc --classes 3 --train 4 --val 2
"""

from __future__ import annotations

import argparse
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# The first ILSVRC2012 synsets in ILSVRC2012_ID order (IDs 1..5 of the real meta.mat): wnid, words, gloss, parent.
LEAVES = [
    ("n02119789", "kit fox, Vulpes macrotis", "small grey fox of southwestern United States", "fox"),
    ("n02100735", "English setter", "an English breed having a plumed tail and a soft silky coat", "dog"),
    ("n02110185", "Siberian husky", "breed of sled dog developed in northeastern Siberia", "dog"),
    ("n02096294", "Australian terrier", "small wiry-coated rough-haired terrier of Australian origin", "dog"),
    ("n02102040", "English springer, English springer spaniel", "a breed of springer spaniel", "dog"),
]
# Real non-leaf synsets above those leaves (hierarchy simplified): key -> wnid, words, gloss, parent.
NON_LEAVES = {
    "fox": ("n02118333", "fox", "alert carnivorous mammal with pointed muzzle and ears and a bushy tail", "canine"),
    "dog": ("n02084071", "dog, domestic dog, Canis familiaris", "a member of the genus Canis", "canine"),
    "canine": ("n02083346", "canine, canid", "any of various fissiped mammals with nonretractile claws", None),
}
FIELDS = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images")
# A fixed 116-byte MAT-file header text: scipy stamps the current time there, which would break reproducibility.
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2012".ljust(116, b" ")


def _jpeg(rng: np.random.Generator, label: int, mode: str = "RGB") -> bytes:
    """A small JPEG of random size whose dominant colour channel encodes `label` (learnable, if anyone cares)."""
    h, w = int(rng.integers(36, 100)), int(rng.integers(36, 100))
    img = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
    img[..., label % 3] += np.uint8(120)
    pil = Image.fromarray(img).convert(mode)  # "L" and "CMYK" occur in the real archives; loaders must cope
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a regular file with fixed metadata (mtime 0), so archives are reproducible."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _mat_int(value: int) -> np.ndarray:
    """A 1x1 integer as the real meta.mat stores it: MATLAB saves doubles compactly and scipy loads uint8/uint16."""
    return np.array([[value]], dtype=np.uint8 if value < 256 else np.uint16)


def _synset(sid: int, wnid: str, words: str, gloss: str, children: list[int], height: int, n_train: int) -> tuple:
    kids = np.array([children], dtype=np.uint16) if children else np.zeros((1, 0), dtype=np.uint8)
    return (_mat_int(sid), wnid, words, gloss, _mat_int(len(children)), kids, _mat_int(height), _mat_int(n_train))


def meta_mat(classes: int, train: int) -> bytes:
    """meta.mat bytes: the first `classes` leaves (IDs 1..classes), then the non-leaves that have chosen children."""
    leaves = LEAVES[:classes]
    rows = [_synset(i, wnid, words, gloss, [], 0, train) for i, (wnid, words, gloss, _) in enumerate(leaves, 1)]
    # Non-leaf IDs follow the leaves (as 1001..1860 follow 1..1000 in the real file); keep only synsets with
    # children, since a non-leaf with num_children == 0 would be read as an extra class.
    kids: dict[str, list[int]] = {key: [] for key in NON_LEAVES}
    for i, leaf in enumerate(leaves, 1):
        kids[leaf[3]].append(i)
    ids: dict[str, int] = {}
    for key in ("fox", "dog", "canine"):  # bottom-up, so a parent knows its children's IDs
        if key == "canine":
            kids[key] = [ids[k] for k in ("fox", "dog") if k in ids]
        if kids[key]:
            ids[key] = classes + len(ids) + 1
    for key, sid in ids.items():
        wnid, words, gloss, _ = NON_LEAVES[key]
        height = 2 if key == "canine" else 1
        n_train = train * (classes if key == "canine" else len(kids[key]))
        rows.append(_synset(sid, wnid, words, gloss, kids[key], height, n_train))
    synsets = np.empty((len(rows), 1), dtype=[(f, "O") for f in FIELDS])  # loadmat gives shape (1860, 1)
    for r, row in enumerate(rows):
        synsets[r, 0] = row
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": synsets})
    data = buf.getvalue()
    return MAT_HEADER + data[len(MAT_HEADER):]


def make(out: Path, classes: int = 3, train: int = 4, val: int = 2, seed: int = 0) -> dict[str, Path]:
    """Write the three archives (and the val_wnids.txt answer key) under `out`; returns their paths."""
    if not 1 <= classes <= len(LEAVES):
        raise ValueError(f"classes must be 1..{len(LEAVES)}")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chosen = LEAVES[:classes]
    paths = {"train": out / "ILSVRC2012_img_train.tar", "val": out / "ILSVRC2012_img_val.tar",
             "devkit": out / "ILSVRC2012_devkit_t12.tar.gz"}
    with tarfile.open(paths["train"], "w") as outer:
        for label in rng.permutation(classes):  # member order in the real tar is not ID order either
            wnid = chosen[label][0]
            numbers = sorted(int(n) for n in rng.choice(np.arange(1, 20000), size=train, replace=False))
            inner_buf = io.BytesIO()
            with tarfile.open(fileobj=inner_buf, mode="w") as inner:
                for j, number in enumerate(numbers):
                    # one grayscale and one CMYK JPEG, in different classes, as in the real training set
                    mode = "L" if (label, j) == (0, 1) else "CMYK" if (label, j) == (min(1, classes - 1), 2) else "RGB"
                    _add(inner, f"{wnid}_{number}.JPEG", _jpeg(rng, int(label), mode))
            _add(outer, f"{wnid}.tar", inner_buf.getvalue())
    labels = [int(i) for i in rng.permutation(np.repeat(np.arange(classes), val))]  # every class, interleaved
    with tarfile.open(paths["val"], "w") as tar:
        for idx, label in enumerate(labels, start=1):
            _add(tar, f"ILSVRC2012_val_{idx:08d}.JPEG", _jpeg(rng, label))
    # tarfile's "w:gz" stamps the current time into the gzip header; mtime=0 keeps the bytes reproducible.
    with open(paths["devkit"], "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            _add(tar, "ILSVRC2012_devkit_t12/data/meta.mat", meta_mat(classes, train))
            truth = "".join(f"{label + 1}\n" for label in labels)  # ILSVRC2012_ID = position in LEAVES + 1
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
