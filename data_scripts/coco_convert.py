#!/usr/bin/env python
"""Convert a raw COCO download (official zips unpacked, + Darknet's 5k / trainvalno5k lists for 2014) into the
layout Ultralytics 8.x reads, with a data YAML that also tells the harness's COCO evaluator its ground truth.

    python data_scripts/coco_convert.py --src /data/coco_raw --out /data/coco2014 --year 2014
    python data_scripts/coco_convert.py --src /data/coco_raw --out /data/coco2017 --year 2017

The logic lives in adapters/detection/coco_data.py (`convert_coco`); see its docstring for the layouts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from adapters.detection.coco_data import check_coco_layout, convert_coco  # noqa: E402
from harness.errors import UserError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, type=Path, help="raw COCO root (train2014/, val2014/, annotations/)")
    ap.add_argument("--out", type=Path, default=None, help="output root (default: same as --src)")
    ap.add_argument("--year", default="2014", choices=["2014", "2017"])
    ap.add_argument("--minival-list", type=Path, default=None,
                    help="2014: Darknet 5k list (default <src>/5k.part or <src>/5k.txt)")
    ap.add_argument("--trainval-list", type=Path, default=None,
                    help="2014: Darknet trainvalno5k list (default <src>/trainvalno5k.part or .txt)")
    ap.add_argument("--images", default="symlink", choices=["symlink", "copy"],
                    help="link the image folders (default) or copy them")
    args = ap.parse_args(argv)
    out = args.out or args.src
    try:
        yml = convert_coco(args.src, out, args.year, minival_list=args.minival_list,
                           trainval_list=args.trainval_list, images=args.images)
        check_coco_layout(out, args.year)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"wrote {yml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
