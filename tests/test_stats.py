"""Statistics: known answers for the CI and the paired tests (values by hand, cross-checked with scipy)."""

from __future__ import annotations

import math

import pytest

from harness import stats
from tests.records_factory import make_record


def test_t_interval_known_answer():
    # mean 3, sd sqrt(2.5) = 1.5811; t(0.975, 4) = 2.7764; half-width 2.7764 * 1.5811 / sqrt(5) = 1.9632
    s = stats.summarize([1, 2, 3, 4, 5])
    assert s.ci_method == "t" and s.n == 5 and s.mean == 3.0
    assert s.half_width == pytest.approx(1.963243, abs=1e-6)
    assert (s.ci_low, s.ci_high) == pytest.approx((1.036757, 4.963243), abs=1e-6)
    # n = 2: t(0.975, 1) = 12.706; sd of [90, 92] = sqrt(2); half-width 12.706 * sqrt(2) / sqrt(2) = 12.706
    assert stats.summarize([90, 92]).half_width == pytest.approx(12.706205, abs=1e-6)


def test_single_value_and_non_finite_values():
    s = stats.summarize([7.0, float("nan"), None])
    assert (s.n, s.mean, s.ci_low, s.ci_method) == (1, 7.0, None, "none")
    assert stats.summarize([float("nan")]) is None


def test_bootstrap_from_ten_values_is_seeded_and_sane():
    values = [90.0, 91.5, 89.0, 92.0, 90.5, 88.0, 93.0, 91.0, 90.0, 89.5]
    a, b = stats.summarize(values), stats.summarize(values)
    assert a.ci_method == "bootstrap" and (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    t_lo, t_hi = stats.t_interval(values)
    assert a.ci_low < a.mean < a.ci_high
    assert abs(a.ci_low - t_lo) < 0.5 and abs(a.ci_high - t_hi) < 0.5  # close to the t-interval for tame data
    assert stats.bootstrap_interval([5.0] * 12) == (5.0, 5.0)


def test_paired_known_answer():
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [0.5, 1.4, 2.7, 3.2, 4.6]  # differences 0.5 0.6 0.3 0.8 0.4: mean 0.52, sd 0.19235
    p = stats.paired(a, b, "slr", "admm")
    assert p.n == 5 and p.mean_diff == pytest.approx(0.52)
    # t = 0.52 / (0.19235 / sqrt 5) = 6.0449, df 4 -> p = 2 * integral of the t(4) density beyond t = 0.0037779
    assert p.p_t == pytest.approx(0.0037779, rel=1e-4)
    half = 2.776445 * 0.192354 / math.sqrt(5)
    assert (p.ci_low, p.ci_high) == pytest.approx((0.52 - half, 0.52 + half), abs=1e-5)
    assert p.p_wilcoxon is None  # n = 5: the signed-rank test cannot reach 0.05
    assert p.verdict == "slr better (p=0.0038)"
    assert stats.paired(a, b, "slr", "admm", higher_is_better=False).verdict == "admm better (p=0.0038)"


def test_paired_no_difference_and_wilcoxon():
    p = stats.paired([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5], "A", "B")
    assert p.mean_diff == 0.0 and p.p_t == pytest.approx(1.0)
    assert p.verdict == "no significant difference (p=1)"
    six = stats.paired([2.0, 3, 4, 5, 6, 7.5], [1.0, 1.5, 2.5, 3.5, 4.0, 5.5], "A", "B")
    assert six.p_wilcoxon == pytest.approx(2 / 64)  # exact: all six differences positive
    same = stats.paired([1.0, 2.0], [0.0, 1.0], "A", "B")  # constant difference: certain, p = 0
    assert same.p_t == 0.0 and same.winner == "A"
    assert stats.paired([1.0], [0.0]).verdict.startswith("not enough paired seeds")


def test_welch_known_answer():
    # means 2.5 / 5, variances 5/3 / 5/2: se = sqrt(5/12 + 1/2), t = -2.6112, Welch df = 6.9808,
    # p = 2 * integral of the t(6.98) density beyond 2.6112 = 0.034939
    assert stats.welch_p([1, 2, 3, 4], [3, 4, 5, 6, 7]) == pytest.approx(0.034939, rel=1e-4)
    assert stats.welch_p([1.0], [2.0, 3.0]) is None


def test_paired_verdicts_pair_on_seed_and_dense_model():
    recs = []
    for seed, dense in ((0, 97.0), (1, 96.0), (2, 98.0)):
        recs.append(make_record("slr", seed=seed, dense=dense, hardpruned=90.0 + seed))
        recs.append(make_record("admm", seed=seed, dense=dense, hardpruned=85.0 + seed + 0.1 * seed))
    (v,) = stats.paired_verdicts(recs)
    assert (v.comparison.name_a, v.comparison.name_b, v.comparison.n) == ("admm", "slr", 3)
    assert v.comparison.winner == "slr" and "slr better (p=" in v.line() and "4x" in v.line()
    # another dense model for one seed: that pair is not a pair, and two are left
    recs[-1]["metrics"]["dense"] = 50.0
    (v2,) = stats.paired_verdicts(recs)
    assert v2.comparison.n == 2
    # two seeds that say opposite things: no significant difference
    flat = [make_record("slr", seed=0, hardpruned=90.0), make_record("admm", seed=0, hardpruned=89.0),
            make_record("slr", seed=1, hardpruned=88.0), make_record("admm", seed=1, hardpruned=90.0)]
    assert "no significant difference" in stats.paired_verdicts(flat)[0].comparison.verdict


def test_verdict_line_adds_wilcoxon_from_six_seeds():
    recs = [make_record(m, seed=s, dense=97.0 + s, hardpruned=80.0 + s + (2.0 + 0.1 * s if m == "slr" else 0.0))
            for m in ("slr", "admm") for s in range(6)]
    (v,) = stats.paired_verdicts(recs)
    assert v.comparison.p_wilcoxon == pytest.approx(2 / 64) and v.line().endswith("; Wilcoxon p=0.031")
    assert "admm - slr = -2.25" in v.line() and "slr better" in v.line()
