"""Statistics over seeds: confidence intervals for one cell and paired comparisons between two methods.

* `summarize(values)`: mean, sample sd, n and a 95 % confidence interval of the mean: Student's t-interval
  (mean ± t_{0.975, n-1} · sd / √n) for 2 <= n < 10, a percentile bootstrap (seeded, so the same values always give
  the same interval) for n >= 10, none for n = 1.
* `paired(a, b)`: two methods run on the same seeds (and so from the same dense weights): the mean of the per-seed
  differences a - b with its t-interval, the paired t-test p-value, the Wilcoxon signed-rank p-value once n is large
  enough for it to reach 0.05, and a verdict string.
* `paired_verdicts(records)`: every pair of methods in every leaderboard cell, for printing after a multi-seed run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from harness.identity import cell_groups

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_MIN_N = 10
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# The exact two-sided signed-rank test cannot go below 2 / 2^n: it first reaches p < 0.05 at n = 6.
WILCOXON_MIN_N = 6


@dataclass(frozen=True)
class Summary:
    mean: float
    sd: float
    n: int
    ci_low: float | None  # None when n == 1: one seed says nothing about the spread
    ci_high: float | None
    ci_method: str  # "t" | "bootstrap" | "none"

    @property
    def half_width(self) -> float | None:
        """± of a symmetric (t) interval; for a bootstrap interval the larger side."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return max(self.mean - self.ci_low, self.ci_high - self.mean)

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "ci_method": self.ci_method}


def finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t confidence interval of the mean (needs n >= 2)."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        raise ValueError("a t-interval needs at least two values")
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    mean = float(x.mean())
    return mean - half, mean + half


def bootstrap_interval(values: Sequence[float], confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; seeded, so a table is reproducible."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def summarize(values: Sequence[Any]) -> Summary | None:
    """Mean, sd, n and the 95 % CI of the finite values; None when there are none."""
    x = finite(values)
    if not x:
        return None
    n = len(x)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    if n == 1:
        return Summary(mean, sd, n, None, None, "none")
    lo, hi = bootstrap_interval(x) if n >= BOOTSTRAP_MIN_N else t_interval(x)
    return Summary(mean, sd, n, lo, hi, "bootstrap" if n >= BOOTSTRAP_MIN_N else "t")


@dataclass(frozen=True)
class Paired:
    """a - b over n paired seeds. `p_t`: paired t-test; `p_wilcoxon`: signed-rank test (None below WILCOXON_MIN_N)."""

    name_a: str
    name_b: str
    n: int
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    p_t: float | None
    p_wilcoxon: float | None
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        return self.p_t is not None and self.p_t < ALPHA

    @property
    def winner(self) -> str | None:
        if not self.significant:
            return None
        a_ahead = self.mean_diff > 0 if self.higher_is_better else self.mean_diff < 0
        return self.name_a if a_ahead else self.name_b

    @property
    def verdict(self) -> str:
        if self.p_t is None:
            return f"not enough paired seeds to compare (n={self.n})"
        p = _fmt_p(self.p_t)
        return f"{self.winner} better (p={p})" if self.winner else f"no significant difference (p={p})"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def paired_p(diffs: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of mean(diffs) = 0. Zero spread is handled explicitly (scipy returns NaN):
    identical differences are a certain effect (p = 0) unless they are all zero (p = 1)."""
    d = np.asarray(diffs, dtype=float)
    if float(d.std(ddof=1)) == 0.0:
        return 1.0 if float(d.mean()) == 0.0 else 0.0
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def paired(a: Sequence[float], b: Sequence[float], name_a: str = "A", name_b: str = "B",
           higher_is_better: bool = True) -> Paired:
    """Compare two methods measured on the same seeds, value i of `a` paired with value i of `b`."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equally many values ({len(a)} vs {len(b)})")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n < 2:
        return Paired(name_a, name_b, n, float(d.mean()) if n else math.nan, None, None, None, None, higher_is_better)
    lo, hi = t_interval(d)
    p_w = None
    if n >= WILCOXON_MIN_N and np.any(d != 0):
        p_w = float(sps.wilcoxon(d).pvalue)
    return Paired(name_a, name_b, n, float(d.mean()), lo, hi, paired_p(d), p_w, higher_is_better)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p-value for unpaired samples (None below two values each or with no spread at all)."""
    x, y = np.asarray(finite(a)), np.asarray(finite(b))
    if x.size < 2 or y.size < 2:
        return None
    if x.std(ddof=1) == 0 and y.std(ddof=1) == 0:
        return 1.0 if x.mean() == y.mean() else 0.0
    return float(sps.ttest_ind(x, y, equal_var=False).pvalue)


# ---- comparisons of records ------------------------------------------------------------------------------------------
def _pair_id(rec: dict[str, Any]) -> tuple[Any, Any]:
    """Records pair when they share the seed and the dense starting point: the dense weights' sha256 when recorded,
    else the dense metric (the same dense model scores the same)."""
    dense_id = (rec.get("provenance") or {}).get("weights_sha256")
    if dense_id is None:
        dense = (rec.get("metrics") or {}).get("dense")
        dense_id = round(float(dense), 6) if isinstance(dense, (int, float)) else None
    return (rec.get("config") or {}).get("seed"), dense_id


def compare_records(recs_a: list[dict[str, Any]], recs_b: list[dict[str, Any]], phase: str, name_a: str,
                    name_b: str) -> Paired | None:
    """Paired comparison on the seeds (and dense weights) both sets share; None when fewer than two pairs exist."""
    va = {_pair_id(r): (r.get("metrics") or {}).get(phase) for r in recs_a}
    vb = {_pair_id(r): (r.get("metrics") or {}).get(phase) for r in recs_b}
    common = sorted((k for k in va if k in vb and finite([va[k]]) and finite([vb[k]])), key=str)
    if len(common) < 2:
        return None
    higher = (recs_a[0].get("higher_is_better", True) is not False)
    return paired([va[k] for k in common], [vb[k] for k in common], name_a, name_b, higher)


@dataclass(frozen=True)
class CellVerdict:
    task: str
    model: str
    rate: float | None
    label: str  # what distinguishes this cell's config from others at the same (task, model, rate); "" if nothing
    phase: str
    comparison: Paired

    def line(self) -> str:
        c = self.comparison
        rate = f"{self.rate:g}x" if self.rate is not None else "cfg"
        where = f"{self.task}/{self.model} {rate}" + (f" [{self.label}]" if self.label else "")
        ci = f" [{c.ci_low:+.2f}, {c.ci_high:+.2f}]" if c.ci_low is not None else ""
        wilcoxon = f"; Wilcoxon p={_fmt_p(c.p_wilcoxon)}" if c.p_wilcoxon is not None else ""
        return (f"{where} {self.phase}: {c.name_a} - {c.name_b} = {c.mean_diff:+.2f}{ci} (95% CI, n={c.n} paired "
                f"seeds): {c.verdict}{wilcoxon}")


def paired_verdicts(records: list[dict[str, Any]], metric_phase: str = "hardpruned") -> list[CellVerdict]:
    """Every pair of methods within each leaderboard cell (same task, model, rate and config apart from the method),
    compared on their shared seeds. Cells with fewer than two shared seeds are left out."""
    out = []
    for cell in cell_groups(records):
        methods = sorted(cell.methods)
        for a, b in itertools.combinations(methods, 2):
            cmp = compare_records(cell.methods[a], cell.methods[b], metric_phase, a, b)
            if cmp is not None:
                out.append(CellVerdict(cell.task, cell.model, cell.rate, cell.label, metric_phase, cmp))
    return out

