#!/usr/bin/env python3
"""Download TuSimple lane detection and lay it out as the single root UFLD (and `--task tusimple`) reads.

    python data_scripts/tusimple_download.py --out ~/data/tusimple            # from the original URLs
    python data_scripts/tusimple_download.py --out ~/data/tusimple --kaggle   # from the Kaggle mirror
    python data_scripts/tusimple_download.py --out ~/data/tusimple --from-dir ~/Downloads/TUSimple
    python data_scripts/tusimple_convert.py --root ~/data/tusimple
    benchmark run --task tusimple --data ~/data/tusimple --weights tusimple_18.pth ...

Needs internet (except --from-dir). The benchmark's original S3 links (tusimple-benchmark issue #3) have been dead
for some time; `--kaggle` uses the `kaggle` CLI (`pip install kaggle`, an API token in ~/.kaggle/kaggle.json) to
fetch the mirror named in that issue, and `--from-dir` organises archives or folders you downloaded yourself.

Result (train and test clips merged under one `clips/`, the layout UFLD's
`scripts/convert_tusimple.py` reads):
    OUT/clips/{0313-1,0313-2,0531,0601,0530}/<clip>/{1..20}.jpg
    OUT/label_data_0313.json  label_data_0531.json  label_data_0601.json
    OUT/test_tasks_0627.json  test_label.json
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

BASE = "https://s3.us-east-2.amazonaws.com/benchmark-frontend"
URLS = {
    "train_set.zip": f"{BASE}/datasets/1/train_set.zip",
    "test_set.zip": f"{BASE}/datasets/1/test_set.zip",
    "test_label.json": f"{BASE}/truth/1/test_label.json",
}
KAGGLE_DATASET = "manideep1108/tusimple"
NEEDED = ("label_data_0313.json", "label_data_0531.json", "label_data_0601.json", "test_tasks_0627.json",
          "test_label.json")


def fetch(url: str, dest: Path) -> None:
    """Stream `url` to `dest` through a .part file, so an interrupted download is never mistaken for a finished one."""
    if dest.exists():
        print(f"have {dest}")
        return
    print(f"downloading {url} -> {dest}")
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
        shutil.copyfileobj(resp, fh, length=1 << 22)
    tmp.replace(dest)


def unpack_all(src: Path, work: Path) -> None:
    """Extract every zip under `src` into `work` (folders are used as they are)."""
    for z in sorted(src.rglob("*.zip")):
        print(f"extracting {z}")
        with zipfile.ZipFile(z) as zf:
            zf.extractall(work / z.stem)


def merge_into(out: Path, search: list[Path]) -> list[str]:
    """Move every `clips/` tree and the label JSON files found under `search` into `out`; returns what is missing."""
    (out / "clips").mkdir(parents=True, exist_ok=True)
    for base in search:
        for clips in sorted(base.rglob("clips")):
            if not clips.is_dir() or clips.resolve() == (out / "clips").resolve():
                continue
            for date in sorted(clips.iterdir()):
                target = out / "clips" / date.name
                if not target.exists():
                    shutil.move(str(date), target)
                else:  # a date present in both train and test (0531, 0601): merge the clip folders
                    for clip in sorted(date.iterdir()):
                        if not (target / clip.name).exists():
                            shutil.move(str(clip), target / clip.name)
        for name in NEEDED:
            if (out / name).exists():
                continue
            found = sorted(p for p in base.rglob(name) if p.is_file())
            if found:
                shutil.copy2(found[0], out / name)
    return [n for n in NEEDED if not (out / n).is_file()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="dataset root to create")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--kaggle", action="store_true", help=f"download the Kaggle mirror {KAGGLE_DATASET}")
    src.add_argument("--from-dir", type=Path, help="organise already-downloaded zips/folders from this directory")
    args = ap.parse_args()
    out = args.out.expanduser()
    work = out / "_download"
    work.mkdir(parents=True, exist_ok=True)
    if args.from_dir:
        search_src = args.from_dir.expanduser()
    elif args.kaggle:
        if shutil.which("kaggle") is None:
            print("error: the kaggle CLI is not installed (pip install kaggle; token in ~/.kaggle/kaggle.json)",
                  file=sys.stderr)
            return 1
        subprocess.run(["kaggle", "datasets", "download", "-d", KAGGLE_DATASET, "-p", str(work)], check=True)
        search_src = work
    else:
        try:
            for name, url in URLS.items():
                fetch(url, work / name)
        except OSError as exc:
            print(f"error: download failed ({exc}); the original links may be dead: retry with --kaggle, or "
                  "download the archives yourself and use --from-dir", file=sys.stderr)
            return 1
        search_src = work
    unpack_all(search_src, work)
    missing = merge_into(out, [search_src, work])
    if missing:
        print(f"error: {out} still lacks {', '.join(missing)}; check the archives", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"TuSimple ready in {out}; next: python data_scripts/tusimple_convert.py --root {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
