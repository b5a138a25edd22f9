#!/usr/bin/env python3
"""Convert a TuSimple root to UFLD's training files (what UFLD's scripts/convert_tusimple.py does):

    python data_scripts/tusimple_convert.py --root ~/data/tusimple

writes `clips/…/20.png` lane-id labels (slots 1..4 = outer-left, ego-left, ego-right, outer-right; 16-px lines),
`train_gt.txt` (`<image> <label png> e1 e2 e3 e4`) from label_data_0601/0531/0313.json, and `test.txt` from
test_tasks_0627.json. Synthetic sets from make_synthetic_tusimple.py go through the same conversion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from adapters.lanes.convert import convert_test, convert_train  # noqa: E402
from harness.errors import UserError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="TuSimple root (clips/ and the label JSON files)")
    args = ap.parse_args()
    root = args.root.expanduser()
    try:
        from tqdm import tqdm

        n_train = convert_train(root, progress=lambda it: tqdm(it, desc="label PNGs", unit="img"))
        n_test = convert_test(root)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n_train} label PNGs + {root / 'train_gt.txt'}, and {n_test} lines in {root / 'test.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
