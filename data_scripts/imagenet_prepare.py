#!/usr/bin/env python3
"""Lay out ImageNet-1k (ILSVRC2012) as the ImageFolder tree `--task imagenet` reads:

    <out>/train/<wnid>/*.JPEG      from ILSVRC2012_img_train.tar (a tar of per-class tars)
    <out>/val/<wnid>/*.JPEG        from ILSVRC2012_img_val.tar + the devkit's validation ground truth

ImageNet cannot be downloaded anonymously: get the two tars and ILSVRC2012_devkit_t12.tar.gz from image-net.org
(after registering), then

    python data_scripts/imagenet_prepare.py --train-tar ILSVRC2012_img_train.tar --val-tar ILSVRC2012_img_val.tar \
        --devkit ILSVRC2012_devkit_t12.tar.gz --out ~/data/imagenet
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path

import scipy.io


def val_labels(devkit: Path) -> list[str]:
    """wnid of each validation image (1-based order of ILSVRC2012_val_000000NN.JPEG)."""
    with tarfile.open(devkit) as tar:
        meta_member = next(m for m in tar.getmembers() if m.name.endswith("data/meta.mat"))
        gt_member = next(m for m in tar.getmembers() if m.name.endswith("ILSVRC2012_validation_ground_truth.txt"))
        meta = scipy.io.loadmat(io.BytesIO(tar.extractfile(meta_member).read()), squeeze_me=True)["synsets"]
        ids = [int(x) for x in tar.extractfile(gt_member).read().decode().split()]
    id_to_wnid = {int(s[0]): str(s[1]) for s in meta if int(s[4]) == 0}  # leaf synsets (num_children == 0)
    return [id_to_wnid[i] for i in ids]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-tar", type=Path, required=True)
    ap.add_argument("--val-tar", type=Path, required=True)
    ap.add_argument("--devkit", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    for p in (a.train_tar, a.val_tar, a.devkit):
        if not p.is_file():
            print(f"error: {p} does not exist (download it from image-net.org)", file=sys.stderr)
            return 1
    train = a.out / "train"
    with tarfile.open(a.train_tar) as outer:
        for member in outer:
            wnid = Path(member.name).stem
            dest = train / wnid
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(dest, filter="data")
    labels = val_labels(a.devkit)
    with tarfile.open(a.val_tar) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            index = int(Path(member.name).stem.rsplit("_", 1)[-1]) - 1
            dest = a.out / "val" / labels[index]
            dest.mkdir(parents=True, exist_ok=True)
            (dest / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    print(f"ImageNet ready: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
