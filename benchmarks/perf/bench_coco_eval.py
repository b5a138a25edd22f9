#!/usr/bin/env python
"""Time pycocotools vs the harness's COCO evaluator (faster-coco-eval backend) on one COCO-like bbox workload.

Workload (deterministic by --seed): --images images (default 5,000, the size of the 5k minival) with 80 COCO
categories, Poisson(7) GT boxes per image (about COCO's 7.3; ~1 % crowd), and --dets detections per image (default
100): 1-4 jittered copies of each GT (mostly the right class, some confusions, IoU spread over the thresholds)
plus background false positives, scores rounded to 5 decimals as Ultralytics writes them. Both sides read the same
two JSON files from disk and run the whole standard pipeline:

* pycocotools: `COCO(gt) -> loadRes(pred) -> COCOeval(bbox) -> evaluate/accumulate/summarize` (phases timed);
* ours: `harness.evaluators.coco.eval_files(pred, gt)` (validation + faster-coco-eval, no loadRes);
* for context, faster-coco-eval used the standard way (`COCO`, `loadRes`, `COCOeval_faster`).

The 12 stats must agree to 1e-6 or the script exits 1. Times are wall clock (time.perf_counter) in this process.

    python benchmarks/perf/bench_coco_eval.py [--images 5000] [--dets 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.evaluators.coco import COCO80_TO_COCO91, eval_files  # noqa: E402


def make_workload(n_images: int, dets_per_image: int, seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    cats = list(COCO80_TO_COCO91)
    images, anns, dets = [], [], []
    ann_id = 1
    for img_id in range(1, n_images + 1):
        W, H = int(rng.integers(320, 641)), int(rng.integers(240, 481))
        images.append({"id": img_id, "file_name": f"{img_id:012d}.jpg", "width": W, "height": H})
        img_cats = rng.choice(cats, size=int(rng.integers(1, 5)), replace=False)
        gts = []
        for _ in range(int(rng.poisson(7))):
            s = float(np.exp(rng.uniform(np.log(8), np.log(0.8 * min(W, H)))))
            w, h = s * rng.uniform(0.6, 1.4), s * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, max(W - w, 1)), rng.uniform(0, max(H - h, 1))
            c = int(rng.choice(img_cats))
            anns.append({"id": ann_id, "image_id": img_id, "category_id": c, "bbox": [x, y, w, h],
                         "area": w * h * rng.uniform(0.5, 0.9), "iscrowd": int(rng.random() < 0.01)})
            ann_id += 1
            gts.append((x, y, w, h, c))
        img_dets = []
        for x, y, w, h, c in gts:
            for k in range(int(rng.integers(1, 5))):
                j = rng.normal(0, 0.04 + 0.06 * k, 4) * [w, h, w, h]
                cc = c if rng.random() < 0.85 else int(rng.choice(cats))
                img_dets.append((cc, [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                                 float(np.clip(rng.normal(0.75 - 0.15 * k, 0.15), 0.001, 1))))
        while len(img_dets) < dets_per_image:
            s = float(np.exp(rng.uniform(np.log(4), np.log(min(W, H)))))
            c = int(rng.choice(img_cats)) if rng.random() < 0.5 else int(rng.choice(cats))
            img_dets.append((c, [rng.uniform(0, W - 1), rng.uniform(0, H - 1), s, s * rng.uniform(0.5, 2)],
                             float(rng.uniform(0.001, 0.4))))
        for c, bb, sc in img_dets[:dets_per_image]:
            dets.append({"image_id": img_id, "category_id": c, "bbox": [round(v, 3) for v in bb],
                         "score": round(sc, 5)})
    gt = {"info": {}, "licenses": [], "images": images, "annotations": anns,
          "categories": [{"id": c, "name": str(c), "supercategory": ""} for c in cats]}
    return gt, dets


def run_pycocotools(gt_path: Path, pred_path: Path) -> tuple[np.ndarray, dict[str, float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    t = {}
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(str(gt_path))
        t1 = time.perf_counter()
        dt = gt.loadRes(str(pred_path))
        t2 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        t3 = time.perf_counter()
        ev.accumulate()
        t4 = time.perf_counter()
        ev.summarize()
        t5 = time.perf_counter()
    t.update(load_gt=t1 - t0, loadRes=t2 - t1, evaluate=t3 - t2, accumulate=t4 - t3, summarize=t5 - t4,
             total=t5 - t0)
    return np.asarray(ev.stats), t


def run_faster_plain(gt_path: Path, pred_path: Path) -> tuple[np.ndarray, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    t0 = time.perf_counter()
    gt = COCO(str(gt_path))
    dt = gt.loadRes(str(pred_path))
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats[:12]), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets", type=int, default=100, help="detections per image")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each fast variant (pycocotools: --ref-repeats)")
    ap.add_argument("--ref-repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    print(f"python {platform.python_version()}, numpy {np.__version__}, pycocotools {version('pycocotools')}, "
          f"faster-coco-eval {version('faster-coco-eval')}, cpus {os.cpu_count()}, {platform.processor() or ''}")
    # Import both libraries before any timing so no variant pays the (one-off) import cost.
    import faster_coco_eval  # noqa: F401
    import pycocotools.cocoeval  # noqa: F401

    t0 = time.perf_counter()
    gt, dets = make_workload(args.images, args.dets, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = Path(tmp) / "instances_val.json", Path(tmp) / "predictions.json"
        gt_path.write_text(json.dumps(gt))
        pred_path.write_text(json.dumps(dets))
        print(f"workload: {len(gt['images'])} images, {len(gt['categories'])} categories, {len(gt['annotations'])} "
              f"GT ({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(dets)} detections; GT json "
              f"{gt_path.stat().st_size / 2**20:.1f} MiB, predictions json {pred_path.stat().st_size / 2**20:.1f} "
              f"MiB (built in {time.perf_counter() - t0:.1f} s)")
        del gt, dets

        ref_times, ref_stats = [], None
        for _ in range(args.ref_repeats):
            gc.collect()
            ref_stats, t = run_pycocotools(gt_path, pred_path)
            ref_times.append(t)
            print("pycocotools       " + "  ".join(f"{k} {v:.2f}s" for k, v in t.items()))

        ours, plain = [], []
        for _ in range(args.repeats):
            gc.collect()
            t1 = time.perf_counter()
            res = eval_files(pred_path, gt_path, backend="faster-coco-eval")
            ours.append(time.perf_counter() - t1)
            diff = float(np.max(np.abs(np.asarray(res["stats"]) - ref_stats)))
            print(f"ours (fce)        total {ours[-1]:.2f}s   max|stats diff| vs pycocotools {diff:.1e}")
            if diff > 1e-6:
                print("FAIL: stats differ from pycocotools")
                return 1
            gc.collect()
            fstats, tf = run_faster_plain(gt_path, pred_path)
            plain.append(tf)
            print(f"faster-coco-eval  total {tf:.2f}s   (standard COCO/loadRes/COCOeval_faster, diff "
                  f"{float(np.max(np.abs(fstats - ref_stats))):.1e})")

    ref = statistics.median(t["total"] for t in ref_times)
    print(f"\nAP50 = {res['AP50']:.6f}, AP = {res['stats'][0]:.6f}")
    print(f"pycocotools total (median of {len(ref_times)}): {ref:.2f} s")
    print(f"ours (faster-coco-eval backend), median of {len(ours)}: {statistics.median(ours):.2f} s "
          f"(min {min(ours):.2f}) -> speed-up {ref / statistics.median(ours):.2f}x")
    print(f"faster-coco-eval standard use, median of {len(plain)}: {statistics.median(plain):.2f} s "
          f"-> speed-up {ref / statistics.median(plain):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
