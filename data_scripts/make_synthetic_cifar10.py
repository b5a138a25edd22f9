#!/usr/bin/env python3
"""Write a small CIFAR-10 lookalike in the exact python-pickle layout (`cifar-10-batches-py/`: data_batch_1..5,
test_batch, batches.meta; each batch a pickled dict with b'data' uint8 [N, 3072] (R, G, B planes), b'labels',
b'batch_label', b'filenames'). Images are class-dependent colour blobs on noise, so a model can learn them.
For offline tests of the real loader; not a substitute for CIFAR-10.

    python data_scripts/make_synthetic_cifar10.py --out /tmp/cifar --per-batch 100 --test 100
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, 10, size=n)
    yy, xx = np.mgrid[0:32, 0:32]
    imgs = rng.integers(0, 60, size=(n, 3, 32, 32)).astype(np.float32)
    for i, c in enumerate(labels):
        cy, cx = 8 + 16 * (c // 5), 4 + 6 * (c % 5)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
        colour = np.array([(c * 37) % 256, (c * 91) % 256, (c * 53) % 256], dtype=np.float32)
        imgs[i] += blob[None] * colour[:, None, None]
    return np.clip(imgs, 0, 255).astype(np.uint8).reshape(n, 3072), [int(c) for c in labels]


def write_batch(path: Path, name: str, n: int, rng: np.random.Generator) -> None:
    data, labels = make_images(n, rng)
    doc = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
           b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(n)]}
    with open(path, "wb") as fh:
        pickle.dump(doc, fh, protocol=2)


def make(out: Path, per_batch: int = 100, test: int = 100, seed: int = 0) -> Path:
    root = out / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        write_batch(root / f"data_batch_{i}", f"training batch {i} of 5", per_batch, rng)
    write_batch(root / "test_batch", "testing batch 1 of 1", test, rng)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CLASSES],
                     b"num_vis": 3072}, fh, protocol=2)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-batch", type=int, default=100, help="images per training batch file (5 files)")
    ap.add_argument("--test", type=int, default=100, help="test images")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(make(a.out, a.per_batch, a.test, a.seed))


if __name__ == "__main__":
    main()
