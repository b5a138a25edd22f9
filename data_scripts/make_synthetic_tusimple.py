#!/usr/bin/env python3
"""Write a small synthetic TuSimple dataset in the exact TuSimple format (1280x720 JPEG road frames with 2-5 lanes,
label JSON lines, test tasks and test GT), deterministic by seed:

    python data_scripts/make_synthetic_tusimple.py --out /tmp/tusimple_syn --train 12 --test 6 --seed 0
    python data_scripts/tusimple_convert.py --root /tmp/tusimple_syn
    benchmark run --task tusimple --data /tmp/tusimple_syn --opt input_size=[64,160] ...

For offline smoke runs and tests; it says nothing about accuracy on the real benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from adapters.lanes.synthetic import make_synthetic_tusimple  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="dataset root to write")
    ap.add_argument("--train", type=int, default=12, help="labelled training frames (spread over 3 label files)")
    ap.add_argument("--test", type=int, default=6, help="test frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1,
                    help="processes rendering frames (about 0.15 s per frame each); the set does not depend on it")
    args = ap.parse_args()
    if args.train < 3 or args.test < 1:
        ap.error("need --train >= 3 (one frame per label file) and --test >= 1")
    counts = make_synthetic_tusimple(args.out.expanduser(), n_train=args.train, n_test=args.test, seed=args.seed,
                                     workers=max(1, args.workers))
    print(f"wrote {counts} under {args.out}; next: python data_scripts/tusimple_convert.py --root {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
