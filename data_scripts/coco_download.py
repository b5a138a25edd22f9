#!/usr/bin/env python
"""Download and unpack the official COCO 2014 or 2017 detection data (+ Darknet's 5k / trainvalno5k lists for 2014).

    python data_scripts/coco_download.py --out /data/coco_raw --year 2014           # ~20 GB
    python data_scripts/coco_download.py --out /data/coco_raw --year 2014 --lists-only

Produces the "raw root" that data_scripts/coco_convert.py reads:
<out>/train<Y>/, <out>/val<Y>/, <out>/annotations/instances_{train,val}<Y>.json and, for 2014, <out>/5k.part and
<out>/trainvalno5k.part. Downloads resume (HTTP Range) and are skipped when the file is complete; archives are
unpacked only if their folder is missing. Needs internet access; nothing in the test suite runs it.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
import zipfile
from pathlib import Path

IMAGES = "http://images.cocodataset.org/zips/"
ANNOTATIONS = "http://images.cocodataset.org/annotations/"
# Darknet's split of COCO 2014 used by ultralytics/yolov3 (data/coco2014.data), the code SLR paper Table 3 cites.
DARKNET_LISTS = ("https://pjreddie.com/media/files/coco/5k.part",
                 "https://pjreddie.com/media/files/coco/trainvalno5k.part")

FILES = {
    "2014": {"zips": [IMAGES + "train2014.zip", IMAGES + "val2014.zip",
                      ANNOTATIONS + "annotations_trainval2014.zip"], "lists": DARKNET_LISTS},
    "2017": {"zips": [IMAGES + "train2017.zip", IMAGES + "val2017.zip",
                      ANNOTATIONS + "annotations_trainval2017.zip"], "lists": ()},
}


def download(url: str, dst: Path, chunk: int = 1 << 20) -> Path:
    """Fetch `url` to `dst`, resuming a partial file; skip if the size already matches the server's."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_suffix(dst.suffix + ".partial")
    head = urllib.request.Request(url, method="HEAD", headers={"Referer": "https://pjreddie.com"})
    with urllib.request.urlopen(head, timeout=60) as r:
        total = int(r.headers.get("Content-Length") or 0)
    if dst.is_file() and (total == 0 or dst.stat().st_size == total):
        print(f"have {dst.name}")
        return dst
    done = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={done}-", "Referer": "https://pjreddie.com"})
    with urllib.request.urlopen(req, timeout=60) as r, part.open("ab" if done else "wb") as f:
        if done and r.status != 206:  # server ignored the range: start over
            f.seek(0)
            f.truncate()
            done = 0
        while True:
            buf = r.read(chunk)
            if not buf:
                break
            f.write(buf)
            done += len(buf)
            if total:
                print(f"\r{dst.name}: {done / 2**20:,.0f} / {total / 2**20:,.0f} MiB", end="", flush=True)
    print()
    if total and done != total:
        raise OSError(f"{url}: got {done} of {total} bytes; run again to resume")
    part.replace(dst)
    return dst


def unpack(archive: Path, out: Path) -> None:
    """Unzip into `out` (the zips hold train2014/, val2014/ or annotations/ at their top level)."""
    with zipfile.ZipFile(archive) as z:
        top = {n.split("/", 1)[0] for n in z.namelist()}
        if all((out / t).exists() for t in top):
            print(f"already unpacked {archive.name}")
            return
        print(f"unpacking {archive.name} ...")
        z.extractall(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--year", default="2014", choices=["2014", "2017"])
    ap.add_argument("--lists-only", action="store_true", help="2014: only the 5k / trainvalno5k lists")
    ap.add_argument("--keep-zips", action="store_true", help="keep the archives after unpacking")
    args = ap.parse_args(argv)
    spec = FILES[args.year]
    try:
        for url in spec["lists"]:
            download(url, args.out / url.rsplit("/", 1)[-1])
        if not args.lists_only:
            for url in spec["zips"]:
                archive = download(url, args.out / "zips" / url.rsplit("/", 1)[-1])
                unpack(archive, args.out)
                if not args.keep_zips:
                    archive.unlink()
    except (OSError, zipfile.BadZipFile) as e:  # URLError is an OSError
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"done; next: python data_scripts/coco_convert.py --src {args.out} --year {args.year}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
