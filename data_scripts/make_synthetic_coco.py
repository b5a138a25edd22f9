#!/usr/bin/env python
"""Write a small synthetic dataset in the exact layout and json schema of the official COCO downloads.

Output (same as unzipping the official zips, so it goes through the same converter as real data):

    <out>/train2014/COCO_train2014_<id:012d>.jpg, <out>/val2014/COCO_val2014_<id:012d>.jpg   (2017: <id:012d>.jpg)
    <out>/annotations/instances_train2014.json, instances_val2014.json
    <out>/5k.part, <out>/trainvalno5k.part     (2014 only; Darknet-style lines `/images/val2014/COCO_...jpg`)

Images are JPEGs of filled shapes (one shape per class: circle, square, triangle, octagon, tall rectangle,
ellipse) in random colours and sizes on textured backgrounds (gradient + stripes + noise). Each class uses a real
COCO-91 category id and name, so the coco80 mapping of the converter and evaluator is exercised. Annotations carry
every field of the real schema: polygon segmentation, area = polygon area (smaller than the box, as in COCO),
`bbox` [x, y, w, h] with 2 decimals, iscrowd; optional crowd annotations are clusters of small shapes annotated
once with an uncompressed-RLE mask, as COCO does. Some images have no objects. Deterministic for a given seed.

    python data_scripts/make_synthetic_coco.py --out /tmp/coco_syn --year 2014 --train 16 --val 8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# shape -> (real COCO category id, name, supercategory)
CLASSES: dict[str, tuple[int, str, str]] = {
    "circle": (37, "sports ball", "sports"),
    "square": (72, "tv", "electronic"),
    "triangle": (38, "kite", "sports"),
    "octagon": (13, "stop sign", "outdoor"),
    "tall_rect": (44, "bottle", "kitchen"),
    "ellipse": (34, "frisbee", "sports"),
}


def _polygon(shape: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Vertices of one shape of radius ~r centred at (cx, cy); round shapes are 32-gons (COCO polygons too)."""
    rot = rng.uniform(0, 2 * math.pi)
    if shape in ("circle", "ellipse"):
        ax, ay = (r, r) if shape == "circle" else (r, r * rng.uniform(0.45, 0.7))
        pts = [(ax * math.cos(t), ay * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    elif shape == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
        rot = rng.uniform(-0.3, 0.3)
    elif shape == "tall_rect":
        pts = [(-0.4 * r, -r), (0.4 * r, -r), (0.4 * r, r), (-0.4 * r, r)]
        rot = rng.uniform(-0.2, 0.2)
    elif shape == "triangle":
        pts = [(r * math.cos(t), r * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "octagon":
        pts = [(r * math.cos(t), r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 8, endpoint=False) + math.pi / 8]
        rot = 0.0
    else:
        raise ValueError(shape)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]


def _poly_area(pts: list[tuple[float, float]]) -> float:
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1])))


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / max(w, h)
    img = c0 + (c1 - c0) * ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None]
    ang, freq = rng.uniform(0, math.pi), rng.uniform(0.05, 0.4)
    img += rng.uniform(5, 30) * np.sin(freq * (xx * math.cos(ang) + yy * math.sin(ang)))[..., None]
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (column-major runs, starting with a run of zeros), the format of COCO's crowd masks."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _round2(v: float) -> float:
    return float(round(v, 2))


def _draw_image(w: int, h: int, rng: np.random.Generator, crowd_prob: float, empty_prob: float,
                max_objects: int) -> tuple[Image.Image, list[dict]]:
    """One image and its annotations (without ids)."""
    img = Image.fromarray(_background(w, h, rng))
    draw = ImageDraw.Draw(img)
    shapes = list(CLASSES)
    anns: list[dict] = []
    n = 0 if rng.random() < empty_prob else int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        shape = shapes[int(rng.integers(len(shapes)))]
        r = float(np.exp(rng.uniform(math.log(4), math.log(0.3 * min(w, h)))))  # small, medium and large
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        pts = _polygon(shape, cx, cy, r, rng)
        pts = [(min(max(x, 0.0), w - 1e-3), min(max(y, 0.0), h - 1e-3)) for x, y in pts]
        draw.polygon(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                     outline=tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.random() < 0.5 else None)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        anns.append({
            "segmentation": [[_round2(v) for p in pts for v in p]],
            "area": _poly_area(pts),
            "iscrowd": 0,
            "bbox": [_round2(min(xs)), _round2(min(ys)), _round2(max(xs) - min(xs)), _round2(max(ys) - min(ys))],
            "category_id": CLASSES[shape][0],
        })
    if rng.random() < crowd_prob:
        # A crowd: many small same-class shapes in one region, annotated once with an RLE mask (like COCO crowds).
        shape = shapes[int(rng.integers(len(shapes)))]
        mask_img = Image.new("L", (w, h), 0)
        mdraw = ImageDraw.Draw(mask_img)
        rx, ry = rng.uniform(0.15, 0.35) * w, rng.uniform(0.15, 0.35) * h
        ox, oy = rng.uniform(0, w - rx), rng.uniform(0, h - ry)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        for _ in range(int(rng.integers(5, 12))):
            r = rng.uniform(2, 5)
            pts = _polygon(shape, ox + rng.uniform(r, max(rx - r, r + 1)), oy + rng.uniform(r, max(ry - r, r + 1)),
                           r, rng)
            draw.polygon(pts, fill=colour)
            mdraw.polygon(pts, fill=1)
        mask = np.asarray(mask_img, dtype=np.uint8)
        if mask.any():
            ys_, xs_ = np.nonzero(mask)
            x0, y0 = int(xs_.min()), int(ys_.min())
            anns.append({"segmentation": _rle(mask), "area": int(mask.sum()), "iscrowd": 1,
                         "bbox": [float(x0), float(y0), float(xs_.max() + 1 - x0), float(ys_.max() + 1 - y0)],
                         "category_id": CLASSES[shape][0]})
    return img, anns


def make_synthetic_coco(
    out: str | Path,
    year: str = "2014",
    n_train: int = 16,
    n_val: int = 8,
    image_size: tuple[int, int] = (160, 120),
    seed: int = 0,
    crowd_prob: float = 0.2,
    empty_prob: float = 0.1,
    max_objects: int = 6,
    n_minival: int | None = None,
) -> dict[str, Any]:
    """Write the dataset under `out`; return {"root", "annotations": {split: path}, "minival", "trainvalno5k"}.

    `image_size` = (max width, max height); each image gets a random size in [0.7, 1] x that, like COCO's varied
    sizes. 2014 also writes Darknet-style `5k.part` (the first `n_minival` val images, default half of them) and
    `trainvalno5k.part` (all train images + the other val images).
    """
    year = str(year)
    if year not in ("2014", "2017"):
        raise ValueError(f"year must be 2014 or 2017, got {year!r}")
    if n_train < 0 or n_val < 1:
        raise ValueError("need n_train >= 0 and n_val >= 1")
    out = Path(out)
    rng = np.random.default_rng(seed)
    # COCO image ids are unique across train and val of a year (the trainvalno5k list mixes both); not contiguous.
    ids = (rng.choice(np.arange(1, 600_000), size=n_train + n_val, replace=False)).tolist()
    splits = {f"train{year}": sorted(ids[:n_train]), f"val{year}": sorted(ids[n_train:])}
    categories = [{"supercategory": sc, "id": cid, "name": name} for cid, name, sc in
                  sorted(CLASSES.values())]
    info = {"description": "prunebench synthetic COCO", "url": "", "version": "1.0", "year": int(year),
            "contributor": "data_scripts/make_synthetic_coco.py", "date_created": f"{year}/01/01"}
    licenses = [{"url": "", "id": 1, "name": "synthetic, no license needed"}]
    ann_id = 1
    result: dict[str, Any] = {"root": out, "annotations": {}}
    for split, split_ids in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for img_id in split_ids:
            W, H = (int(round(s * rng.uniform(0.7, 1.0))) for s in image_size)
            img, img_anns = _draw_image(W, H, rng, crowd_prob, empty_prob, max_objects)
            fname = f"COCO_{split}_{img_id:012d}.jpg" if year == "2014" else f"{img_id:012d}.jpg"
            img.save(out / split / fname, quality=90)
            images.append({"license": 1, "file_name": fname, "coco_url": "", "height": H, "width": W,
                           "date_captured": f"{year}-01-01 00:00:00", "flickr_url": "", "id": int(img_id)})
            for a in img_anns:
                anns.append({**a, "image_id": int(img_id), "id": ann_id})
                ann_id += 1
        doc = {"info": info, "licenses": licenses, "images": images, "annotations": anns, "categories": categories}
        path = out / "annotations" / f"instances_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
        result["annotations"][split] = path
    if year == "2014":
        val_names = [f"COCO_val2014_{i:012d}.jpg" for i in splits["val2014"]]
        k = len(val_names) // 2 if n_minival is None else n_minival
        if not 1 <= k <= len(val_names):
            raise ValueError(f"n_minival must be in 1..{len(val_names)}")
        minival = val_names[:k]
        rest = [f"/images/train2014/COCO_train2014_{i:012d}.jpg" for i in splits["train2014"]]
        rest += [f"/images/val2014/{n}" for n in val_names[k:]]
        (out / "5k.part").write_text("".join(f"/images/val2014/{n}\n" for n in minival))
        (out / "trainvalno5k.part").write_text("".join(f"{p}\n" for p in rest))
        result["minival"], result["trainvalno5k"] = out / "5k.part", out / "trainvalno5k.part"
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder to write (raw COCO layout)")
    ap.add_argument("--year", default="2014", choices=["2014", "2017"])
    ap.add_argument("--train", type=int, default=16, help="number of train images (default 16)")
    ap.add_argument("--val", type=int, default=8, help="number of val images (default 8)")
    ap.add_argument("--width", type=int, default=160, help="max image width (default 160)")
    ap.add_argument("--height", type=int, default=120, help="max image height (default 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crowd-prob", type=float, default=0.2, help="chance of a crowd annotation per image")
    ap.add_argument("--minival", type=int, default=None, help="2014: val images in 5k.part (default half)")
    args = ap.parse_args(argv)
    try:
        res = make_synthetic_coco(args.out, args.year, args.train, args.val, (args.width, args.height), args.seed,
                                  args.crowd_prob, n_minival=args.minival)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote synthetic COCO {args.year} to {res['root']} ({args.train} train, {args.val} val images); "
          f"convert it with data_scripts/coco_convert.py --src {res['root']} --year {args.year}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
