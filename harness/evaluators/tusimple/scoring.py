"""Scoring: the official TuSimple `LaneEval.bench` / `bench_one_submit` rules on packed arrays (see the package doc).

Input is what `reading.pack_gt` / `reading.pack_pred` built; output the submission's Accuracy, FP and FN as
fractions, the official tool's unit (callers that report them convert to percent).
"""

from __future__ import annotations

import numpy as np

from harness.evaluators.tusimple.reading import GT, Pred, ranges

PIXEL_THRESH = 20  # px, horizontal tolerance for a vertical lane (official `pixel_thresh`)
POINT_THRESH = 0.85  # point accuracy a GT lane needs to count as matched (official `pt_thresh`)
MAX_RUN_TIME_MS = 200  # images whose prediction took longer score zero (official `bench`)
MAX_COUNTED_LANES = 4  # scores are averaged over at most this many GT lanes
EXTRA_LANES_ALLOWED = 2  # more than len(gt) + this many predicted lanes scores the image zero
ABSENT = -100.0  # what the official substitutes for every negative x before comparing
# A comparison |p - g| < thresh is re-done with the official scikit-learn slope when |p - g| lies within this relative
# distance of our closed-form threshold: the two slopes differ by a few ulps, which matters only in such ties
# (e.g. slope 3/4 gives a threshold of exactly 25 px, and integer pixel offsets of 25 are common).
TIE_RTOL = 1e-9
PAIR_CHUNK = 8192  # lane pairs scored per numpy pass; bounds memory at ~ chunk * rows * 8 bytes per temporary


def _official_threshold(xs: np.ndarray, ys: np.ndarray) -> float:
    """The tolerance exactly as the official computes it, with scikit-learn's `LinearRegression` slope.

    Used only to settle ties (see `TIE_RTOL`), so the cost of a fit is paid on a handful of lanes. Without
    scikit-learn (an installed dependency, so this is unexpected) the closed form is the best available answer.
    """
    mask = xs >= 0
    xv, yv = xs[mask], ys[mask]
    if len(xv) <= 1:
        return PIXEL_THRESH / np.cos(0)
    try:
        from sklearn.linear_model import LinearRegression
    except ImportError:  # pragma: no cover - scikit-learn is a declared dependency
        return float(_thresholds(xs[None], ys[None], np.ones((1, len(xs)), bool))[0])
    k = LinearRegression().fit(yv[:, None], xv).coef_[0]
    return PIXEL_THRESH / np.cos(np.arctan(k))


def _thresholds(x: np.ndarray, y: np.ndarray, row_ok: np.ndarray) -> np.ndarray:
    """Per-lane tolerance 20 / cos(atan(k)), k = least-squares slope of x on y over valid points (x >= 0).

    x, y: (n_lanes, rows) with y broadcast per lane; row_ok masks padding rows. The closed form
    k = sum((y - ybar)(x - xbar)) / sum((y - ybar)^2), with two passes for accuracy, equals scikit-learn's
    `LinearRegression().fit(y[:, None], x).coef_[0]` to ~1e-15 relative on pixel data. A lane with fewer than two
    valid points, or all of them on one row (scikit-learn then returns slope 0), gets k = 0, i.e. 20 px.
    """
    m = (x >= 0) & row_ok
    n = m.sum(axis=1)
    safe_n = np.maximum(n, 1)
    ybar = np.where(m, y, 0.0).sum(axis=1) / safe_n
    xbar = np.where(m, x, 0.0).sum(axis=1) / safe_n
    dy = np.where(m, y - ybar[:, None], 0.0)
    dx = np.where(m, x - xbar[:, None], 0.0)
    syy = (dy * dy).sum(axis=1)
    sxy = (dy * dx).sum(axis=1)
    fitted = (n >= 2) & (syy > 0)
    k = np.divide(sxy, syy, out=np.zeros_like(sxy), where=fitted)
    return PIXEL_THRESH / np.cos(np.arctan(k))


def score(gt: GT, pred: Pred) -> dict[str, float]:
    """Official per-image scores, summed in prediction order and divided by the number of GT images."""
    n_gt = gt.lane_counts[pred.gt_pos]
    n_pr = pred.lane_counts
    # Official `bench` returns (0, 0, 1) for these before forming any lane pair, so they cost no pair memory here.
    zeroed = (pred.run_time > MAX_RUN_TIME_MS) | (n_gt + EXTRA_LANES_ALLOWED < n_pr)
    active = np.flatnonzero(~zeroed)
    g_img, best = _best_per_gt_lane(gt, pred, active)
    img_acc, img_fp, img_fn = _image_scores(g_img, best, n_gt, n_pr, active, zeroed)
    num = len(gt.raw_files)
    # cumsum adds left to right like the official loop, so the totals normally match it bit for bit.
    return {
        "Accuracy": float(np.cumsum(img_acc)[-1] / num),
        "FP": float(np.cumsum(img_fp)[-1] / num),
        "FN": float(np.cumsum(img_fn)[-1] / num),
    }


def _best_per_gt_lane(gt: GT, pred: Pred, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image of each GT lane, its best point accuracy over the image's predicted lanes) for the scored images."""
    n_gt = gt.lane_counts[pred.gt_pos]
    rows = gt.rows[pred.gt_pos]
    # GT lanes of the scored images, stacked in prediction order; `g_img` is each lane's image.
    g_img = np.repeat(active, n_gt[active])
    G = gt.x[ranges(gt.lane_start[pred.gt_pos[active]], n_gt[active])]
    row_ok = np.arange(G.shape[1])[None, :] < rows[g_img][:, None]  # padding rows of shorter images are off
    thresh = _thresholds(G, gt.y[pred.gt_pos[g_img]], row_ok)

    # All (GT lane, pred lane) pairs of each image, grouped by GT lane so that per-lane maxima are contiguous.
    pairs_per_g = pred.lane_counts[g_img]
    seg_start = np.cumsum(pairs_per_g) - pairs_per_g
    pair_g = np.repeat(np.arange(len(g_img)), pairs_per_g)
    pair_p = ranges(pred.lane_start[g_img], pairs_per_g)  # every pred lane of the GT lane's image
    hits = _pair_hits(G, pred.x, row_ok, thresh, pair_g, pair_p)
    for lane in _tied_lanes(G, pred.x, row_ok, thresh, pair_g, pair_p):
        # Settle a tie with the official slope (see TIE_RTOL): re-threshold every pair of this GT lane.
        r = int(rows[g_img[lane]])
        thresh[lane] = _official_threshold(G[lane, :r], gt.y[pred.gt_pos[g_img[lane]], :r])
        sel = np.arange(seg_start[lane], seg_start[lane] + pairs_per_g[lane])
        hits[sel] = (np.abs(_official_x(pred.x[pair_p[sel], :r]) - _official_x(G[lane, :r])) < thresh[lane]).sum(1)

    # Point accuracy of a pair: correct rows over all rows (count / len(gt), the same float division as official).
    pair_acc = hits / rows[g_img][pair_g].astype(np.float64)
    best = np.zeros(len(g_img))  # a GT lane with no predictions scores 0
    has_pairs = pairs_per_g > 0
    if len(pair_acc):
        best[has_pairs] = np.maximum.reduceat(pair_acc, seg_start[has_pairs])
    return g_img, best


def _official_x(x: np.ndarray) -> np.ndarray:
    """x with every negative value replaced by -100, as the official compares them."""
    return np.where(x >= 0, x, ABSENT)


def _pair_hits(G: np.ndarray, P: np.ndarray, row_ok: np.ndarray, thresh: np.ndarray, pair_g: np.ndarray,
               pair_p: np.ndarray) -> np.ndarray:
    """Rows where each (GT lane, pred lane) pair is within the GT lane's threshold, PAIR_CHUNK pairs at a time."""
    Gc, Pc = _official_x(G), _official_x(P)
    hits = np.empty(len(pair_g), dtype=np.int64)
    for lo in range(0, len(pair_g), PAIR_CHUNK):
        gi, pi = pair_g[lo : lo + PAIR_CHUNK], pair_p[lo : lo + PAIR_CHUNK]
        hits[lo : lo + PAIR_CHUNK] = ((np.abs(Pc[pi] - Gc[gi]) < thresh[gi][:, None]) & row_ok[gi]).sum(axis=1)
    return hits


def _tied_lanes(G: np.ndarray, P: np.ndarray, row_ok: np.ndarray, thresh: np.ndarray, pair_g: np.ndarray,
                pair_p: np.ndarray) -> list[int]:
    """GT lanes (sorted) with a pair distance within TIE_RTOL of the closed-form threshold, where it could differ."""
    if np.all(G == np.rint(G)) and np.all(P == np.rint(P)):
        # Integer pixels give integer distances, so a tie needs a threshold within TIE_RTOL of an integer.
        tie_prone = np.abs(thresh - np.rint(thresh)) <= TIE_RTOL * thresh
    else:
        tie_prone = np.ones(len(thresh), dtype=bool)
    # A lane with fewer than two valid points gets exactly 20.0 in both implementations: nothing to settle.
    tie_prone &= ((G >= 0) & row_ok).sum(axis=1) >= 2
    prone = np.flatnonzero(tie_prone[pair_g])
    if not len(prone):
        return []
    Gc, Pc = _official_x(G), _official_x(P)
    tied: set[int] = set()
    for lo in range(0, len(prone), PAIR_CHUNK):
        sel = prone[lo : lo + PAIR_CHUNK]
        gi = pair_g[sel]
        th = thresh[gi][:, None]
        near = (np.abs(np.abs(Pc[pair_p[sel]] - Gc[gi]) - th) <= TIE_RTOL * th) & row_ok[gi]
        tied.update(gi[near.any(axis=1)].tolist())
    return sorted(tied)


def _image_scores(g_img: np.ndarray, best: np.ndarray, n_gt: np.ndarray, n_pr: np.ndarray, active: np.ndarray,
                  zeroed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image (accuracy, FP, FN) from the best accuracy of each GT lane, with the official >4-lane rules."""
    n_img = len(n_gt)
    matched = best >= POINT_THRESH
    acc_sum = np.bincount(g_img, weights=best, minlength=n_img)  # adds in lane order, like the official sum()
    n_matched = np.bincount(g_img, weights=matched.astype(np.float64), minlength=n_img)
    fn = n_gt - n_matched
    over = n_gt > MAX_COUNTED_LANES
    fn = np.where(over & (fn > 0), fn - 1, fn)  # one FN forgiven on images with more than 4 GT lanes
    over_active = np.flatnonzero(over & ~zeroed)
    if len(over_active):
        # The worst GT lane's accuracy is dropped (once) on images with more than 4 GT lanes.
        first = np.cumsum(n_gt[active]) - n_gt[active]
        starts = first[np.searchsorted(active, over_active)]
        acc_sum[over_active] -= [best[s : s + c].min() for s, c in zip(starts.tolist(), n_gt[over_active].tolist())]
    denom = np.maximum(np.minimum(float(MAX_COUNTED_LANES), n_gt), 1.0)
    img_acc = acc_sum / denom
    img_fp = np.divide(n_pr - n_matched, n_pr, out=np.zeros(n_img), where=n_pr > 0)
    img_fn = fn / denom
    img_acc[zeroed], img_fp[zeroed], img_fn[zeroed] = 0.0, 0.0, 1.0
    return img_acc, img_fp, img_fn
