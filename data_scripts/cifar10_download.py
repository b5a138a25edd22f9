#!/usr/bin/env python3
"""Download CIFAR-10 (python version) and unpack it as `<out>/cifar-10-batches-py/` — the layout `--task cifar10` reads.

    python data_scripts/cifar10_download.py --out ~/data/cifar10
    benchmark run --task cifar10 --data ~/data/cifar10 ...

Needs internet. The archive's MD5 is checked before unpacking.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
import urllib.request
from pathlib import Path

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to create cifar-10-batches-py/ in")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    archive = args.out / "cifar-10-python.tar.gz"
    if not archive.exists():
        print(f"downloading {URL} -> {archive}")
        tmp = archive.with_suffix(".part")
        urllib.request.urlretrieve(URL, tmp)
        tmp.replace(archive)
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    if digest != MD5:
        print(f"error: {archive} has MD5 {digest}, expected {MD5}; delete it and retry", file=sys.stderr)
        return 1
    with tarfile.open(archive) as tar:
        tar.extractall(args.out, filter="data")
    print(f"CIFAR-10 ready: {args.out / 'cifar-10-batches-py'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
