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


class PrepareError(Exception):
    """An archive that is not what its option names; main() prints it as one line."""


# Extraction filter "data" (no absolute paths, links out of the tree, devices) where this Python has it: the keyword
# only exists from 3.10.12 / 3.11.4 on, and this project supports 3.10+.
_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _open(path: Path) -> tarfile.TarFile:
    """tarfile.open, with a damaged or non-tar file reported by name (tarfile's own message does not say which)."""
    try:
        return tarfile.open(path)
    except tarfile.ReadError:  # its message lists every compression tried, one per line: too long for one line
        raise PrepareError(f"{path} is not a readable tar archive (damaged, or not the image-net.org file)") from None


def val_labels(devkit: Path) -> list[str]:
    """wnid of each validation image (1-based order of ILSVRC2012_val_000000NN.JPEG)."""
    with _open(devkit) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        missing = [n for n in ("meta.mat", "ILSVRC2012_validation_ground_truth.txt") if n not in members]
        if missing:
            raise PrepareError(f"{devkit} lacks {', '.join(missing)} (is it ILSVRC2012_devkit_t12.tar.gz?)")
        meta = scipy.io.loadmat(io.BytesIO(tar.extractfile(members["meta.mat"]).read()), squeeze_me=True)["synsets"]
        gt = tar.extractfile(members["ILSVRC2012_validation_ground_truth.txt"]).read()
        ids = [int(x) for x in gt.decode().split()]
    # Ground-truth numbers are ILSVRC2012_IDs (field 0), not positions in sorted-WNID order; classes are the
    # leaf synsets (field 4, num_children == 0).
    id_to_wnid = {int(s[0]): str(s[1]) for s in meta if int(s[4]) == 0}
    unknown = sorted(set(ids) - set(id_to_wnid))
    if unknown:
        raise PrepareError(f"{devkit}: ground-truth IDs {unknown[:5]} are not leaf synsets of its meta.mat")
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
            why = "is a directory, not an archive file" if p.is_dir() else "does not exist"
            print(f"error: {p} {why} (download it from image-net.org)", file=sys.stderr)
            return 1
    try:
        prepare(a.train_tar, a.val_tar, a.devkit, a.out)
    except (PrepareError, tarfile.TarError) as exc:  # a wrong or damaged archive: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ImageNet ready: {a.out}")
    return 0


def prepare(train_tar: Path, val_tar: Path, devkit: Path, out: Path) -> None:
    """Extract the per-class training tars to out/train/<wnid>/ and file the validation images under out/val/<wnid>/."""
    labels = val_labels(devkit)  # read first: a wrong devkit fails before gigabytes are extracted
    train = out / "train"
    with _open(train_tar) as outer:
        for member in outer:
            if not member.name.endswith(".tar"):
                raise PrepareError(f"{train_tar} holds {member.name}, not per-class <wnid>.tar files "
                                   "(is it ILSVRC2012_img_train.tar?)")
            wnid = Path(member.name).stem
            dest = train / wnid
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(dest, **_SAFE)
    with _open(val_tar) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            stem = Path(member.name).stem
            if not (member.isfile() and stem.startswith("ILSVRC2012_val_")):
                raise PrepareError(f"{val_tar} holds {member.name}, not ILSVRC2012_val_*.JPEG "
                                   "(is it ILSVRC2012_img_val.tar?)")
            index = int(stem.rsplit("_", 1)[-1]) - 1
            if not 0 <= index < len(labels):
                raise PrepareError(f"{member.name} has no line in the devkit's validation ground truth")
            dest = out / "val" / labels[index]
            dest.mkdir(parents=True, exist_ok=True)
            (dest / Path(member.name).name).write_bytes(tar.extractfile(member).read())


if __name__ == "__main__":
    sys.exit(main())
