"""Statistics for evaluation and model comparison (numpy + :mod:`scipy.stats`, no hand-rolled tests).

What is here and where each number comes from:

* :func:`bootstrap_ci` / :func:`rate_ci` / :func:`cvar_ci`: seeded :func:`scipy.stats.bootstrap`
  confidence intervals (BCa for means and CVaR, percentile for rates). Degenerate samples (all
  values equal) get a zero-width interval for means; a rate of exactly 0 or 1 gets the Wilson
  interval of :meth:`scipy.stats.binomtest(...).proportion_ci`, because a bootstrap of a constant
  0/1 sample is the meaningless ``[0, 0]``. The method used is recorded in :class:`CI`.
* :func:`welch_ttest` (:func:`scipy.stats.ttest_ind` with ``equal_var=False``) and
  :func:`mann_whitney` (:func:`scipy.stats.mannwhitneyu`, two-sided).
* :func:`holm` (Holm-Bonferroni step-down adjusted p-values; a few lines, tested on a textbook
  example) and :func:`benjamini_hochberg` (:func:`scipy.stats.false_discovery_control`).
* Effect sizes :func:`cohens_d` (pooled standard deviation) and :func:`cliffs_delta`.
* :func:`cvar`: conditional value at risk of the upper tail of episode cost (CVaR(90 %) = mean of
  the worst 10 % of episodes), Rockafellar-Uryasev form.
* :func:`rank_models`: feasible models (mean cost, or the CI's upper bound, <= limit) first, then by
  mean return.

All functions take 1-D array-likes of per-episode values and return plain Python floats (NaN when a
quantity is undefined, e.g. a test on a sample of one episode).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "CI",
    "RankedModel",
    "TestResult",
    "benjamini_hochberg",
    "bootstrap_ci",
    "cliffs_delta",
    "cliffs_magnitude",
    "cohens_d",
    "cvar",
    "cvar_ci",
    "holm",
    "mann_whitney",
    "rank_models",
    "rate_ci",
    "welch_ttest",
]


@dataclass(frozen=True)
class CI:
    """A point estimate with a two-sided confidence interval.

    Attributes:
        estimate: the statistic on the full sample.
        low, high: interval bounds (NaN for an empty sample).
        confidence: confidence level, e.g. 0.95.
        n: sample size.
        method: ``"BCa"``, ``"percentile"``, ``"wilson"``, ``"degenerate"`` or ``"empty"``.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: statistic, two-sided p-value and (Welch) degrees of freedom."""

    test: str
    statistic: float
    pvalue: float
    df: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_1d(x: Any, name: str = "sample") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


# --------------------------------------------------------------------------------------------
# Confidence intervals
# --------------------------------------------------------------------------------------------


def bootstrap_ci(
    x: Any,
    statistic: Callable[..., Any] = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    method: str = "BCa",
) -> CI:
    """Seeded bootstrap confidence interval of ``statistic`` over a 1-D sample.

    Args:
        x: 1-D per-episode values (float64 after conversion; NaN/inf refused).
        statistic: vectorised statistic ``f(sample, axis=-1)`` (default the mean).
        confidence: two-sided confidence level in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling (same seed, same interval).
        method: ``"BCa"`` (default), ``"percentile"`` or ``"basic"``.

    Returns:
        :class:`CI`; a sample whose values are all equal gets ``[v, v]`` (method ``"degenerate"``),
        an empty sample NaNs (method ``"empty"``).
    """
    a = _as_1d(x)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if a.size == 0:
        return CI(math.nan, math.nan, math.nan, confidence, 0, "empty")
    est = float(statistic(a, axis=-1))
    if a.size == 1 or np.all(a == a[0]):
        return CI(est, est, est, confidence, int(a.size), "degenerate")
    with warnings.catch_warnings():
        # BCa warns (and returns NaN) on near-degenerate resampling distributions; handled below.
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (a,),
            statistic,
            n_resamples=int(n_resamples),
            confidence_level=confidence,
            method=method,
            vectorized=True,
            axis=-1,
            rng=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    used = method
    if not (np.isfinite(low) and np.isfinite(high)):
        res = stats.bootstrap(
            (a,),
            statistic,
            n_resamples=int(n_resamples),
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            axis=-1,
            rng=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        used = "percentile"
    return CI(est, low, high, confidence, int(a.size), used)


def rate_ci(
    flags: Any, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> CI:
    """Confidence interval of a rate (mean of 0/1 flags, e.g. the violation rate).

    Percentile bootstrap; when every flag is equal (rate 0 or 1) the Wilson score interval of
    :func:`scipy.stats.binomtest` is used instead, since the bootstrap would give ``[p, p]``.
    """
    a = _as_1d(flags, "flags")
    if a.size and not np.isin(a, (0.0, 1.0)).all():
        raise ValueError("flags: a rate needs 0/1 (or boolean) values")
    if a.size == 0:
        return CI(math.nan, math.nan, math.nan, confidence, 0, "empty")
    k = int(a.sum())
    if k in (0, a.size):
        ci = stats.binomtest(k, int(a.size)).proportion_ci(confidence, method="wilson")
        return CI(k / a.size, float(ci.low), float(ci.high), confidence, int(a.size), "wilson")
    return bootstrap_ci(
        a, confidence=confidence, n_resamples=n_resamples, seed=seed, method="percentile"
    )


# --------------------------------------------------------------------------------------------
# Tail risk
# --------------------------------------------------------------------------------------------


def cvar(x: Any, alpha: float = 0.9, *, axis: int = -1) -> Any:
    """Conditional value at risk of the *upper* tail: the mean of the worst ``1 - alpha`` share.

    Rockafellar-Uryasev form ``VaR + E[(X - VaR)+] / (1 - alpha)`` with ``VaR`` the empirical
    ``alpha``-quantile (inverted CDF). When ``n (1 - alpha)`` is an integer this is exactly the mean
    of the ``n (1 - alpha)`` largest values (CVaR(90 %) of 1..10 is 10; of 1..20 it is 19.5).
    Vectorised over ``axis`` (used by the bootstrap). Returns a float for 1-D input.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    a = np.asarray(x, dtype=np.float64)
    if a.shape[axis] == 0:
        return math.nan
    var = np.quantile(a, alpha, axis=axis, method="inverted_cdf", keepdims=True)
    excess = np.maximum(a - var, 0.0).mean(axis=axis, keepdims=True)
    out = np.squeeze(var + excess / (1.0 - alpha), axis=axis)
    return float(out) if out.ndim == 0 else out


def cvar_ci(
    x: Any,
    alpha: float = 0.9,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> CI:
    """Bootstrap (percentile) interval of :func:`cvar` (tail statistics make BCa unstable)."""

    def stat(s: np.ndarray, axis: int = -1) -> np.ndarray:
        return cvar(s, alpha, axis=axis)

    return bootstrap_ci(
        x, stat, confidence=confidence, n_resamples=n_resamples, seed=seed, method="percentile"
    )


# --------------------------------------------------------------------------------------------
# Two-sample tests and effect sizes
# --------------------------------------------------------------------------------------------


def welch_ttest(a: Any, b: Any) -> TestResult:
    """Welch's unequal-variance t-test (two-sided) via :func:`scipy.stats.ttest_ind`.

    NaN statistic/p-value when either sample has fewer than 2 values or both have zero variance
    (scipy's convention); :func:`holm` counts a NaN p-value as 1.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.size < 2 or y.size < 2:
        return TestResult("welch_t", math.nan, math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # zero variance -> NaN
        res = stats.ttest_ind(x, y, equal_var=False)
    df = float(getattr(res, "df", math.nan))
    return TestResult("welch_t", float(res.statistic), float(res.pvalue), df)


def mann_whitney(a: Any, b: Any) -> TestResult:
    """Two-sided Mann-Whitney U test via :func:`scipy.stats.mannwhitneyu` (U of sample ``a``)."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.size == 0 or y.size == 0:
        return TestResult("mann_whitney_u", math.nan, math.nan)
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult("mann_whitney_u", float(res.statistic), float(res.pvalue))


def cohens_d(a: Any, b: Any) -> float:
    """Cohen's d of ``a`` minus ``b`` with the pooled (n-1 weighted) standard deviation.

    NaN when the pooled standard deviation is 0 or undefined.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    nx, ny = x.size, y.size
    if nx + ny <= 2 or nx == 0 or ny == 0:
        return math.nan
    vx = x.var(ddof=1) if nx > 1 else 0.0
    vy = y.var(ddof=1) if ny > 1 else 0.0
    pooled = math.sqrt(((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2))
    if pooled == 0.0:
        return math.nan
    return float((x.mean() - y.mean()) / pooled)


def cliffs_delta(a: Any, b: Any) -> float:
    """Cliff's delta ``(#{a_i > b_j} - #{a_i < b_j}) / (n_a n_b)`` in [-1, 1] (O(n log n))."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.size == 0 or y.size == 0:
        return math.nan
    ys = np.sort(y)
    less = np.searchsorted(ys, x, side="left")  # count of b_j < a_i
    greater = ys.size - np.searchsorted(ys, x, side="right")  # count of b_j > a_i
    return float((less.sum() - greater.sum()) / (x.size * ys.size))


def cliffs_magnitude(delta: float) -> str:
    """Romano et al. (2006) labels: negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large."""
    if not np.isfinite(delta):
        return "n/a"
    d = abs(delta)
    if d < 0.147:
        return "negligible"
    if d < 0.33:
        return "small"
    if d < 0.474:
        return "medium"
    return "large"


# --------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as the input).

    With ``m`` p-values sorted ascending, ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``;
    a hypothesis is rejected at level ``alpha`` iff its adjusted p-value is ``<= alpha``. NaN
    p-values (untestable comparisons) are treated as 1 for the others and stay NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return p.copy()
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    filled = np.where(np.isnan(p), 1.0, p)
    m = filled.size
    order = np.argsort(filled, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * filled[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    adjusted[np.isnan(p)] = np.nan
    return adjusted


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate) via scipy; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


# --------------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedModel:
    """One row of :func:`rank_models`."""

    rank: int
    name: str
    feasible: bool
    mean_return: float
    mean_cost: float
    cost_bound: float
    limit: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_models(
    models: Mapping[str, Mapping[str, float]], *, use_upper_bound: bool = False
) -> list[RankedModel]:
    """Rank models: feasible ones first, by mean return (descending); then infeasible ones by
    their excess over the limit (``cost - limit``, smallest first), ties by mean return.

    Args:
        models: name -> ``{"mean_return", "mean_cost", "limit"}`` and, for
            ``use_upper_bound=True``, ``"cost_high"`` (upper bound of the cost CI).
        use_upper_bound: a model is feasible only if its cost CI's upper bound is <= limit
            (conservative); otherwise the mean cost is compared with the limit.

    Remaining ties keep the order of ``models``. Among infeasible models the return does not
    buy a larger violation: a model 10 % over the limit ranks above one at 12x it.
    """
    rows = []
    for order, (name, m) in enumerate(models.items()):
        bound = float(m["cost_high"]) if use_upper_bound else float(m["mean_cost"])
        limit = float(m["limit"])
        feasible = bool(np.isfinite(bound) and bound <= limit)
        excess = 0.0 if feasible else (bound - limit if np.isfinite(bound) else math.inf)
        key = (not feasible, excess, -float(m["mean_return"]), order)
        rows.append((key, name, feasible, bound, m))
    rows.sort(key=lambda r: r[0])
    return [
        RankedModel(
            rank=i + 1,
            name=name,
            feasible=feasible,
            mean_return=float(m["mean_return"]),
            mean_cost=float(m["mean_cost"]),
            cost_bound=bound,
            limit=float(m["limit"]),
        )
        for i, (_, name, feasible, bound, m) in enumerate(rows)
    ]
