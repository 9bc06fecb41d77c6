"""Statistics checked against independently computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from saferl.training.evaluation import stats


def test_welch_ttest_matches_textbook_formula_and_scipy():
    a = np.array([19.1, 21.3, 22.0, 18.7, 20.5, 23.1, 19.9, 21.8])
    b = np.array([17.2, 18.9, 16.5, 19.4, 18.1, 17.7])
    res = stats.welch_ttest(a, b)
    # Welch's t and Welch-Satterthwaite df written out by hand.
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    p = 2 * sps.t.sf(abs(t), df)
    assert res.statistic == pytest.approx(t, rel=1e-12)
    assert res.df == pytest.approx(df, rel=1e-12)
    assert res.pvalue == pytest.approx(p, rel=1e-9)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_mann_whitney_u_counts_pairs_and_matches_scipy():
    a = np.array([1.0, 4.0, 6.0, 7.0, 9.0])
    b = np.array([2.0, 3.0, 5.0, 8.0])
    res = stats.mann_whitney(a, b)
    u_by_hand = sum((x > y) + 0.5 * (x == y) for x in a for y in b)  # 0+2+3+3+4
    assert res.statistic == u_by_hand == 12
    assert res.pvalue == pytest.approx(
        sps.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12
    )


def test_holm_on_textbook_example():
    # Four hypotheses at alpha = 0.05: sorted 0.005, 0.01, 0.03, 0.04 against thresholds
    # 0.05/4, 0.05/3, 0.05/2, 0.05/1 -> the first two are rejected, then the procedure stops
    # (0.03 > 0.025) even though 0.04 < 0.05.
    p = [0.01, 0.04, 0.03, 0.005]
    adj = stats.holm(p)
    # adjusted: 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(0.06, 1*0.04)=0.06
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(adj <= 0.05, [True, False, False, True])


def test_holm_caps_at_one_and_keeps_nan():
    adj = stats.holm([0.5, np.nan, 0.4])
    # NaN counts as 1 in m = 3: 3*0.4 = 1.2 -> 1, then 1
    np.testing.assert_allclose(adj[[0, 2]], [1.0, 1.0])
    assert np.isnan(adj[1])


def test_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005,0.01,0.03,0.04 -> m p/i = 0.02, 0.02, 0.04, 0.04 (already monotone)
    np.testing.assert_allclose(stats.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])


def test_cohens_d_hand_computed():
    a = [1, 2, 3, 4, 5]
    b = [3, 4, 5, 6, 7]
    # means 3 and 5, both sample variances 2.5 -> pooled sd sqrt(2.5)
    assert stats.cohens_d(a, b) == pytest.approx(-2 / math.sqrt(2.5))
    assert math.isnan(stats.cohens_d([1, 1], [1, 1]))


def test_cliffs_delta_hand_computed():
    a = [1, 2, 3]
    b = [2, 2, 4]
    # a > b pairs: (3,2),(3,2) = 2; a < b pairs: (1,2),(1,2),(1,4),(2,4),(3,4) = 5 -> -3/9
    assert stats.cliffs_delta(a, b) == pytest.approx(-1 / 3)
    assert stats.cliffs_delta(b, a) == pytest.approx(1 / 3)
    assert stats.cliffs_delta([5, 6], [1, 2]) == 1.0
    assert stats.cliffs_magnitude(-1 / 3) == "medium"
    assert stats.cliffs_magnitude(0.1) == "negligible"


def test_cliffs_delta_agrees_with_mann_whitney_u():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 40).astype(float)  # many ties
    b = rng.integers(1, 7, 30).astype(float)
    u = sps.mannwhitneyu(a, b).statistic
    assert stats.cliffs_delta(a, b) == pytest.approx(2 * u / (a.size * b.size) - 1)


def test_cvar_is_mean_of_worst_tail():
    assert stats.cvar(np.arange(1, 11), 0.9) == pytest.approx(10.0)
    assert stats.cvar(np.arange(1, 21), 0.9) == pytest.approx(19.5)
    assert stats.cvar(np.arange(1, 101)[::-1], 0.9) == pytest.approx(np.mean(np.arange(91, 101)))
    assert stats.cvar([3.0, 3.0, 3.0], 0.9) == pytest.approx(3.0)
    # alpha = 0 is the mean
    assert stats.cvar([1.0, 2.0, 6.0], 0.0) == pytest.approx(3.0)


def test_bootstrap_ci_covers_true_mean_at_stated_rate():
    # 400 independent synthetic experiments, each 60 draws from a skewed distribution with a known
    # mean; the 90 % interval must contain it in about 90 % of them (binomial sd 1.5 %).
    rng = np.random.default_rng(12345)
    true_mean = 2.0
    hits = 0
    reps = 400
    for r in range(reps):
        x = rng.gamma(shape=4.0, scale=true_mean / 4.0, size=60)
        ci = stats.bootstrap_ci(x, confidence=0.90, n_resamples=1000, seed=r)
        hits += ci.low <= true_mean <= ci.high
    coverage = hits / reps
    assert 0.85 <= coverage <= 0.95, coverage


def test_bootstrap_ci_is_seeded_and_handles_degenerate_samples():
    x = np.random.default_rng(0).normal(size=30)
    assert stats.bootstrap_ci(x, seed=7, n_resamples=500) == stats.bootstrap_ci(
        x, seed=7, n_resamples=500
    )
    ci = stats.bootstrap_ci([2.0, 2.0, 2.0])
    assert (ci.estimate, ci.low, ci.high, ci.method) == (2.0, 2.0, 2.0, "degenerate")
    assert stats.bootstrap_ci([]).method == "empty"
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_ci([1.0, np.nan])


def test_rate_ci_bootstrap_and_wilson_at_the_edges():
    ci = stats.rate_ci([0] * 20)
    ref = sps.binomtest(0, 20).proportion_ci(0.95, method="wilson")
    assert ci.method == "wilson" and ci.low == 0.0 and ci.high == pytest.approx(ref.high)
    flags = np.r_[np.ones(30), np.zeros(70)]
    ci = stats.rate_ci(flags, n_resamples=2000)
    assert ci.estimate == pytest.approx(0.3) and ci.low < 0.3 < ci.high
    # percentile bootstrap of a proportion ~ normal approximation
    se = math.sqrt(0.3 * 0.7 / 100)
    assert ci.low == pytest.approx(0.3 - 1.96 * se, abs=0.02)
    with pytest.raises(ValueError, match="0/1"):
        stats.rate_ci([0.5, 1.0])


def test_cvar_ci_contains_estimate():
    x = np.random.default_rng(1).exponential(size=200)
    ci = stats.cvar_ci(x, 0.9, n_resamples=1000)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(stats.cvar(x, 0.9))


def test_ranking_puts_infeasible_high_return_model_below_feasible_one():
    models = {
        "reckless": {"mean_return": 100.0, "mean_cost": 30.0, "cost_high": 35.0, "limit": 10.0},
        "careful": {"mean_return": 40.0, "mean_cost": 5.0, "cost_high": 8.0, "limit": 10.0},
        "borderline": {"mean_return": 60.0, "mean_cost": 9.0, "cost_high": 12.0, "limit": 10.0},
    }
    ranked = stats.rank_models(models)
    assert [r.name for r in ranked] == ["borderline", "careful", "reckless"]
    assert [r.feasible for r in ranked] == [True, True, False]
    # conservative: the CI's upper bound must be within the limit; the infeasible ones then
    # rank by their excess over it (borderline 2 over, reckless 25 over), not by return
    ranked = stats.rank_models(models, use_upper_bound=True)
    assert [r.name for r in ranked] == ["careful", "borderline", "reckless"]
    assert [r.rank for r in ranked] == [1, 2, 3]
