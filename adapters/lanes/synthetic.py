"""A small synthetic TuSimple dataset in the exact on-disk format, for tests and offline smoke runs.

Each frame is a 1280x720 JPEG of a road in perspective (vanishing point, optional curve shared by all lanes) with 2-5
lane markings (solid or dashed, white or yellow, width shrinking with distance), road edges, shadows, a few car-like
boxes and sensor noise. Labels are TuSimple JSON lines (`lanes` x pixel per `h_samples` row or -2, `raw_file`),
written to the real file names (`label_data_0313/0531/0601.json`, `test_tasks_0627.json`, `test_label.json`), with
frames at `clips/<date>/<clip>/20.jpg` (only the labelled 20th frame is written). Data then goes through the same
conversion as the real set (`adapters.lanes.convert`). Deterministic for a given seed.

Lanes are labelled along the marking centre line on every row where the line is in view, dashes included (TuSimple
annotates the lane, not the painted segments). Train files use 48 rows (240…710) for 0313 and 56 rows (160…710)
elsewhere, as both occur in the real set; test files always use 56 rows.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from adapters.lanes.constants import H_SAMPLES, IMG_H, IMG_W, TEST_LABEL_FILE, TEST_TASKS_FILE
from harness.progress import progress

TRAIN_H_SAMPLES_48 = tuple(range(240, 720, 10))
# (label file, clip folder, h_samples) of the three training files; clip folders as in the real archive.
TRAIN_SPLITS = (
    ("label_data_0313.json", "0313-1", TRAIN_H_SAMPLES_48),
    ("label_data_0531.json", "0531", H_SAMPLES),
    ("label_data_0601.json", "0601", H_SAMPLES),
)
TEST_DATES = ("0530", "0531", "0601")


@dataclass
class Lane:
    bottom_x: float  # x where the straight (un-bent) line would cross the bottom row
    dashed: bool
    color: tuple[int, int, int]  # BGR
    width: float  # marking width in px at the bottom row


@dataclass
class Scene:
    horizon: float  # row of the vanishing point
    vp_x: float
    top: float  # first row where markings are painted/labelled
    bend: float  # horizontal offset at the horizon from the road curve (0: straight)
    lanes: list[Lane]
    road_edges: tuple[float, float]  # bottom x of the left/right road edge

    def depth(self, y: np.ndarray) -> np.ndarray:
        """0 at the horizon, 1 at the bottom row: the perspective scale of a row."""
        return (np.asarray(y, dtype=np.float64) - self.horizon) / (IMG_H - self.horizon)

    def x_at(self, bottom_x: float, y: np.ndarray) -> np.ndarray:
        t = self.depth(y)
        return self.vp_x + (bottom_x - self.vp_x) * t + self.bend * (1.0 - t) ** 2


def random_scene(rng: np.random.Generator) -> Scene:
    horizon = rng.uniform(245, 300)
    lane_w = rng.uniform(520, 800)
    n = int(rng.integers(2, 6))
    n_left = int(rng.integers(1, n)) if n > 2 else 1  # at least one lane line on each side of the car
    centre = IMG_W / 2 + rng.uniform(-0.25, 0.25) * lane_w
    bend = 0.0 if rng.random() < 0.4 else rng.uniform(-220, 220)
    lanes = []
    for k in range(n):
        yellow = k == 0 and rng.random() < 0.3
        lanes.append(Lane(
            bottom_x=centre + (k - n_left + 0.5) * lane_w,
            dashed=bool(rng.random() < (0.6 if 0 < k < n - 1 else 0.2)),  # inner lines are mostly dashed
            color=(40, 200, 230) if yellow else tuple(int(v) for v in rng.integers(215, 256, 3)),
            width=rng.uniform(10, 24),
        ))
    edges = (lanes[0].bottom_x - rng.uniform(0.2, 0.6) * lane_w, lanes[-1].bottom_x + rng.uniform(0.2, 0.6) * lane_w)
    return Scene(horizon=horizon, vp_x=IMG_W / 2 + rng.uniform(-90, 90), top=horizon + rng.uniform(12, 40),
                 bend=bend, lanes=lanes, road_edges=edges)


def lane_labels(scene: Scene, h_samples: tuple[int, ...]) -> list[list[int]]:
    """TuSimple `lanes`: rounded x of each lane's centre line per row, -2 above `top` or outside the frame."""
    ys = np.asarray(h_samples, dtype=np.float64)
    out = []
    for lane in scene.lanes:
        xs = scene.x_at(lane.bottom_x, ys)
        ok = (ys >= scene.top) & (xs >= 0) & (xs <= IMG_W - 1)
        out.append([int(round(x)) if v else -2 for x, v in zip(xs, ok)])
    return out


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The BGR uint8 frame of a scene."""
    h, w = IMG_H, IMG_W
    rows = np.arange(h, dtype=np.float64)[:, None]
    img = np.empty((h, w, 3), dtype=np.float64)
    # Sky (above the horizon) and ground with vertical gradients; colours vary per frame.
    sky_top, sky_bot = rng.uniform(150, 230, 3), rng.uniform(180, 250, 3)
    ground = rng.uniform(40, 120, 3) * np.array([0.8, 1.1, 0.9])
    t_sky = np.clip(rows / max(scene.horizon, 1), 0, 1)[..., None]
    img[:] = (sky_top * (1 - t_sky) + sky_bot * t_sky)
    below = rows[:, 0] >= scene.horizon
    img[below] = ground
    # Road surface: the polygon between the two edges, asphalt grey with a distance gradient.
    ys = np.arange(int(np.ceil(scene.horizon)), h)
    left = scene.x_at(scene.road_edges[0], ys)
    right = scene.x_at(scene.road_edges[1], ys)
    grey = rng.uniform(65, 125)
    cols = np.arange(w)[None, :]
    road = (cols >= left[:, None]) & (cols <= right[:, None])
    shade = grey * (0.85 + 0.25 * scene.depth(ys))[:, None, None] * rng.uniform(0.95, 1.05, 3)
    img[ys[0]:] = np.where(road[..., None], shade, img[ys[0]:])
    # Painted markings: segments between consecutive rows, thickness following the perspective scale.
    period, duty, phase = rng.uniform(1.2, 2.0), rng.uniform(0.35, 0.55), rng.uniform(0, 1)
    yy = np.arange(int(np.ceil(scene.top)), h, dtype=np.float64)
    dist = 1.0 / np.maximum(scene.depth(yy), 1e-3)  # ground distance up to scale (1 at the bottom row)
    for lane in scene.lanes:
        xs = scene.x_at(lane.bottom_x, yy)
        thick = np.maximum(1, np.round(lane.width * scene.depth(yy))).astype(int)
        on = ((dist / period + phase) % 1.0 < duty) if lane.dashed else np.ones_like(yy, dtype=bool)
        for i in range(len(yy) - 1):
            if on[i] and -50 < xs[i] < w + 50:
                cv2.line(img, (int(round(xs[i])), int(yy[i])), (int(round(xs[i + 1])), int(yy[i + 1])),
                         lane.color, int(thick[i]))
    # Car-like boxes on the road (they occlude markings, as in real traffic; labels go through them).
    for _ in range(int(rng.integers(0, 3))):
        y1 = rng.uniform(scene.top + 20, h - 60)
        s = scene.depth(np.array([y1]))[0]
        bw, bh = 260 * s, 180 * s
        lo, hi = scene.x_at(scene.road_edges[0], np.array([y1]))[0], scene.x_at(scene.road_edges[1], np.array([y1]))[0]
        x1 = rng.uniform(lo, max(lo + 1, hi - bw))
        cv2.rectangle(img, (int(x1), int(y1 - bh)), (int(x1 + bw), int(y1)), tuple(rng.uniform(10, 200, 3)), -1)
    # Shadows: dark quadrilaterals across the road (tree/bridge shadows).
    for _ in range(int(rng.integers(0, 4))):
        y1 = rng.uniform(scene.horizon + 10, h - 20)
        y2 = min(h, y1 + rng.uniform(15, 140))
        x1 = rng.uniform(-200, w)
        pts = np.array([[x1, y1], [x1 + rng.uniform(150, 700), y1], [x1 + rng.uniform(100, 800), y2],
                        [x1 + rng.uniform(-150, 100), y2]], dtype=np.int32)
        mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(mask, [pts], 1)
        img[mask.astype(bool)] *= rng.uniform(0.45, 0.75)
    img += rng.normal(0.0, rng.uniform(2, 8), img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def _record(scene: Scene, raw_file: str, h_samples: tuple[int, ...]) -> dict:
    return {"lanes": lane_labels(scene, h_samples), "h_samples": list(h_samples), "raw_file": raw_file}


def _render_frame(job: tuple[str, str, int, tuple[int, ...], int]) -> str:
    """Draw, render and write one frame from its own seed; returns its label line (JSON). Runs in pool workers."""
    out, raw_file, frame_seed, h_samples, quality = job
    rng = np.random.default_rng(frame_seed)
    scene = random_scene(rng)
    path = Path(out) / raw_file
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render(scene, rng), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")
    return json.dumps(_record(scene, raw_file, h_samples))


def make_synthetic_tusimple(out: Path, n_train: int = 12, n_test: int = 6, seed: int = 0, quality: int = 90,
                            workers: int = 1) -> dict:
    """Write a synthetic TuSimple root at `out`; returns counts per file. The train frames are spread over the three
    label files (0313 gets the remainder first); existing files of the same names are overwritten.

    Every frame is drawn from its own seed (taken from `seed`'s generator), so the set is the same for any number of
    `workers` (processes rendering frames in parallel: about 0.15 s per frame on one core).
    """
    if n_train < 3 or n_test < 1:
        raise ValueError("need at least 3 training frames (one per label file) and 1 test frame")
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}

    per_file = [n_train // 3 + (1 if i < n_train % 3 else 0) for i in range(3)]
    clip_id = 6000
    jobs: list[tuple[str, str, int, tuple[int, ...], int]] = []
    for (fname, folder, h_samples), n in zip(TRAIN_SPLITS, per_file):
        for _ in range(n):
            clip_id += int(rng.integers(1, 60))
            # 0313 clips are numbered (e.g. 0313-1/6040); the later dates use 19-digit timestamps.
            clip = str(clip_id) if folder.startswith("0313") else f"149262{clip_id:013d}"
            jobs.append((str(out), f"clips/{folder}/{clip}/20.jpg", int(rng.integers(2**63)), h_samples, quality))
    for i in range(n_test):
        raw = f"clips/{TEST_DATES[i % 3]}/149262{clip_id + 1000 + i:013d}_0/20.jpg"
        jobs.append((str(out), raw, int(rng.integers(2**63)), H_SAMPLES, quality))

    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            lines = list(progress(pool.imap(_render_frame, jobs, chunksize=4), total=len(jobs), desc="frames"))
    else:
        lines = [_render_frame(job) for job in progress(jobs, desc="frames")]

    start = 0
    for (fname, _, _), n in zip(TRAIN_SPLITS, per_file):
        (out / fname).write_text("".join(line + "\n" for line in lines[start:start + n]))
        counts[fname] = n
        start += n
    labels = lines[start:]
    # The submission template: same rows, no lanes (UFLD reads only raw_file from it).
    tasks = [json.dumps({"lanes": [], "h_samples": list(H_SAMPLES), "raw_file": job[1]}) for job in jobs[start:]]
    (out / TEST_TASKS_FILE).write_text("".join(t + "\n" for t in tasks))
    (out / TEST_LABEL_FILE).write_text("".join(t + "\n" for t in labels))
    counts[TEST_TASKS_FILE] = counts[TEST_LABEL_FILE] = n_test
    return counts


def random_submission(rng: np.random.Generator, n_images: int) -> tuple[list[dict], list[dict]]:
    """A small random (predictions, ground truth) pair that reaches every rule of the TuSimple metric: 0-6 GT lanes,
    0 to GT+3 predicted lanes, 48/56/24/28 rows, slopes whose thresholds are exactly 20/25/52 px with offsets at those
    values (ties), float and integer x, -2 rows, run_time 10/200/250. Predictions come in shuffled order.

    For checking an evaluator against the official one (tests and `benchmarks/perf/bench_tusimple_eval.py --fuzz`).
    """
    gts, preds = [], []
    for i in range(n_images):
        step = int(rng.choice([10, 20]))
        h = list(range(160 if rng.random() < 0.7 else 240, 720, step))
        ys = np.array(h, float)
        n_gt = int(rng.choice(7, p=[0.04, 0.1, 0.2, 0.25, 0.25, 0.12, 0.04]))
        gl = []
        for _ in range(n_gt):
            if rng.random() < 0.3:  # Pythagorean slopes: 3/4 -> 25 px, 12/5 -> 52 px, 0 -> 20 px (exact-threshold ties)
                x = rng.integers(0, 600) + float(rng.choice([0.75, -0.75, 2.4, -2.4, 0.0])) * (ys - ys[0])
            else:
                x = rng.uniform(0, 1280) + rng.uniform(-3, 3) * (ys - 400) + rng.normal(0, 3, len(h))
                if rng.random() < 0.7:
                    x = np.rint(x)
            x[: int(rng.integers(0, len(h) // 2))] = -2
            x[rng.random(len(h)) < 0.05] = -2
            x[(x < 0) | (x > 1279)] = -2
            gl.append(x)
        pl = []
        for j in range(int(rng.integers(0, n_gt + 4))):
            if j < len(gl) and rng.random() < 0.8:
                off = rng.choice([0, 19, 20, 21, 24, 25, 26, 51, 52, 53], size=len(h)) * rng.choice([-1, 1], size=len(h))
                noise = rng.normal(0, 4, len(h)) if rng.random() < 0.3 else np.rint(rng.normal(0, 6, len(h)))
                p = np.where(rng.random(len(h)) < 0.5, gl[j] + off, gl[j] + noise)
                p[gl[j] < 0] = -2
                p[rng.random(len(h)) < 0.05] = -2
            else:
                p = np.full(len(h), -2.0) if rng.random() < 0.3 else np.rint(rng.uniform(-50, 1280, len(h)))
            pl.append(p)
        gts.append({"raw_file": f"img{i}.jpg", "lanes": [_json_numbers(x) for x in gl], "h_samples": h})
        preds.append({"raw_file": f"img{i}.jpg", "lanes": [_json_numbers(p) for p in pl], "h_samples": h,
                      "run_time": float(rng.choice([10, 10, 10, 200, 250]))})
    return [preds[k] for k in rng.permutation(n_images)], gts


def _json_numbers(a: np.ndarray) -> list:
    """x values as a JSON writer would give them: whole numbers as int, the rest as float."""
    return [int(v) if float(v).is_integer() else float(v) for v in a]
