"""The gate's statistics. Estimates, their intervals and minimum claimable counts come from agents/stats.py, the
one definition the agent uses too (so for the same samples the gate and the record agree exactly); this module
adds only what the gate alone needs:

- Ratios of two runs (candidate / baseline) get a bootstrap interval. Resampling n values and taking the
  p-quantile lands on the order statistic of rank ~ Binomial(n-1, p), so the bootstrap draws ranks
  instead of whole resamples: one sort per series, O(B) per comparison (cheap enough for 1000 cells).
  Means are bootstrapped from their normal approximation (rates from their log-normal one).
- Mann-Whitney U with the normal approximation and tie correction, as asv uses it for "significant".
- Serial dependence enters through the effective n of agents.stats (inflation = n / n_eff).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from collections.abc import Sequence
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from agents import stats as one
from agents.summary import ORDERED_BY_DESIGN, SELF_SERIES
from harness.metrics import METRICS

FloatArray = npt.NDArray[np.float64]
Kind = Literal["quantile", "mean", "rate"]


def sorted_quantile(sorted_x: FloatArray, q: float) -> float:
    """Type 7 quantile of already sorted values: agents.stats.percentile_type7 (charts use it too)."""
    return one.percentile_type7(cast(Sequence[float], sorted_x), q)


@dataclass(frozen=True)
class Estimator:
    """How a metric is computed from a raw-sample series."""

    series: str
    kind: Kind
    p: float = 0.0  # quantile in [0, 1] when kind == "quantile"

    def point(self, sorted_x: FloatArray) -> float:
        if self.kind != "quantile":
            return float(sorted_x.mean())
        return sorted_quantile(sorted_x, self.p)


@functools.lru_cache(maxsize=None)
def estimator_for(metric: str) -> Estimator | None:
    """The estimator behind a metric, or None when the metric is not a statistic of raw samples."""
    if metric in SELF_SERIES:
        kind, p = SELF_SERIES[metric]
        return Estimator(metric, kind, p)  # type: ignore[arg-type]
    d = METRICS.get(metric)
    if d is None or d.sampled_from is None:
        return None
    suffix = metric[len(d.sampled_from) + 1:]
    if suffix.startswith("p") and suffix[1:].isdigit():
        return Estimator(d.sampled_from, "quantile", int(suffix[1:]) / 100.0)
    if suffix == "mean":
        return Estimator(d.sampled_from, "mean")
    return None  # min / max / std: no interval worth claiming


def z_of(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def inflation(run_order: FloatArray, est: Estimator | None = None) -> float:
    """Variance inflation n / n_eff of a series in run order for the estimator's statistic (agents.stats.
    effective_n; a mean's without one); 1.0 when independent."""
    n = len(run_order)
    if est is not None and est.series in ORDERED_BY_DESIGN:
        return 1.0
    m = n if n < 8 else _effective_n(run_order, est)
    return n / m if 0 < m < n else 1.0


_U = 2.0 ** -53  # unit roundoff of a float64


def _effective_n(run_order: FloatArray, est: Estimator | None) -> int:
    """one.effective_n of the series, exactly, at numpy speed where that is provably the same count.

    A mean's r from numpy dot products differs from agents.stats' (math.fsum of the same products) only in
    summation order: both lie within 4 (n + 2) u den of the exact sums (num's terms sum to at most den, by
    Cauchy-Schwarz). effective_n_from_r is monotone in r, so when both ends of that range give one count,
    it is the agent's count; otherwise (a boundary case) the exact path decides."""
    n = len(run_order)
    if est is None or est.kind == "mean":
        bracket = mean_r_bracket(run_order)
        if bracket is not None:
            m = one.effective_n_from_r(n, bracket[1])
            if m == one.effective_n_from_r(n, bracket[0]):
                return m
    return one.effective_n_from_r(n, _lag1_r(run_order, est))


def mean_r_bracket(run_order: FloatArray) -> tuple[float, float] | None:
    """(lo, hi) holding agents.stats.lag1_autocorrelation of the values, from numpy alone; None for a constant
    (or near-constant) series.

    The agent's deviations d = x - mean use math.fsum's mean; numpy's mean differs by at most delta =
    2 (n + 4) u sum|x| / n, so each deviation here differs from the agent's by at most eps = 2 delta + 3 u |d|max.
    The sums of products then differ by at most 2 eps sum|d| + n eps^2, and each summation order adds at most
    4 (n + 2) u den (num's terms sum to at most den, by Cauchy-Schwarz)."""
    n = len(run_order)
    mean = float(run_order.mean())
    d = run_order - mean
    a = np.abs(d)
    delta = 2.0 * (n + 4) * _U * float(np.abs(run_order).sum()) / n
    eps = 2.0 * delta + 3.0 * _U * float(a.max())
    den = float(np.dot(d, d))
    e = 4.0 * (n + 2) * _U * den + 3.0 * (2.0 * eps * float(a.sum()) + n * eps * eps)
    if den <= 0.0 or den <= 2.0 * e:
        return None
    num = float(np.dot(d[1:], d[:-1]))
    lo, hi = num - e, num + e
    r_lo = lo / (den + e if lo >= 0 else den - e)
    r_hi = hi / (den - e if hi >= 0 else den + e)
    return r_lo - abs(r_lo) * 8.0 * _U, r_hi + abs(r_hi) * 8.0 * _U  # and the divisions' rounding


def _lag1_r(run_order: FloatArray, est: Estimator | None) -> float:
    """agents.stats' r for the statistic, vectorised: a quantile's from the same integer counts
    (one.indicator_r), a mean's / rate's with the same elementwise IEEE operations summed by math.fsum;
    so one.effective_n and the gate agree exactly (tests/test_gate_stats.py)."""
    if est is not None and est.kind == "quantile":
        flags = run_order <= sorted_quantile(np.sort(run_order), est.p)
        pairs = int(np.count_nonzero(flags[1:] & flags[:-1]))
        return one.indicator_r(len(flags), int(np.count_nonzero(flags)), pairs, bool(flags[0]), bool(flags[-1]))
    if est is not None and est.kind == "rate":
        return one.lag1_autocorrelation(one.dependence_series(run_order.tolist(), "rate"))
    xs = run_order.tolist()
    d = run_order - math.fsum(xs) / len(xs)
    den = math.fsum((d * d).tolist())
    return 0.0 if den <= 0.0 else math.fsum((d[1:] * d[:-1]).tolist()) / den


def interval(est: Estimator, sorted_x: FloatArray, confidence: float, infl: float = 1.0) -> tuple[float, float]:
    """The statistic's interval from agents.stats (effective n = n / infl); (-inf, inf) where none is claimable."""
    xs = sorted_x.tolist()
    n_eff = int(round(len(xs) / infl)) if infl > 1.0 else None
    if not xs:
        ci = None
    elif est.kind == "quantile":
        ci = one.percentile_ci(xs, est.p, confidence, n_eff)
    else:
        ci = (one.rate_ci if est.kind == "rate" else one.mean_ci)(xs, confidence, n_eff)
    return ci if ci is not None else (-math.inf, math.inf)


def min_n_for_bounded(p: float, confidence: float, n: int = 0, infl: float = 1.0) -> int:
    """Fewest samples whose order-statistic interval for the p-quantile is bounded (agents.stats), scaled up
    by the inflation of serially dependent samples: the count the agent's note names."""
    return one.min_claimable(p, confidence, n, int(round(n / infl)) if infl > 1.0 and n else None)


def bootstrap_draws(est: Estimator, sorted_x: FloatArray, b: int, rng: np.random.Generator,
                    infl: float = 1.0) -> FloatArray:
    """B bootstrap replicates of the statistic (rank bootstrap for quantiles, normal for the mean).

    With an inflation > 1 the draws use the effective sample size n / inflation.
    """
    n = len(sorted_x)
    if est.kind == "rate" and n > 1 and float(sorted_x[0]) > 0:
        logs = np.log(sorted_x)
        sd = float(logs.std(ddof=1))
        return np.asarray(sorted_x.mean() * np.exp(rng.standard_normal(b) * sd * math.sqrt(infl / n)),
                          dtype=np.float64)
    if est.kind != "quantile":
        sd = float(sorted_x.std(ddof=1)) if n > 1 else 0.0
        return np.asarray(sorted_x.mean() + rng.standard_normal(b) * sd * math.sqrt(infl / n), dtype=np.float64)
    m = max(1, int(round((n - 1) / infl)))
    var = m * est.p * (1.0 - est.p)
    scale = (n - 1) / m
    if var >= 25.0:  # the binomial's normal approximation: the same draws at a seventh of the cost
        k = rng.standard_normal(b)
        k *= math.sqrt(var) * scale
        k += m * est.p * scale + 0.5
    else:
        k = rng.binomial(m, est.p, size=b).astype(np.float64) * scale + 0.5
    ranks = k.astype(np.intp)
    np.clip(ranks, 0, n - 1, out=ranks)
    return sorted_x[ranks]


def ratio_interval(
    est: Estimator, cand: FloatArray, base: FloatArray, confidence: float, b: int, rng: np.random.Generator,
    infl_c: float = 1.0, infl_b: float = 1.0,
) -> tuple[float, float]:
    """Bootstrap interval of statistic(cand) / statistic(base), both series sorted."""
    rc = bootstrap_draws(est, cand, b, rng, infl_c)
    rb = bootstrap_draws(est, base, b, rng, infl_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = rc / rb
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return (-math.inf, math.inf)
    r.sort()
    tail = (1.0 - confidence) / 2.0
    return (sorted_quantile(r, tail), sorted_quantile(r, 1.0 - tail))


@dataclass(frozen=True)
class MannWhitney:
    u: float
    z: float  # > 0: the candidate tends to be larger
    p: float  # two-sided
    n_a: int
    n_b: int


def mann_whitney(a: FloatArray, b: FloatArray, infl: float = 1.0) -> MannWhitney:
    """Two-sided Mann-Whitney U of a against b (both sorted), normal approximation, ties averaged and corrected.

    U is counted by binary search of each a in b (O(n log n), no pooled ranking). `infl` > 1 widens the
    null variance for serially dependent samples (see `inflation`).
    """
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return MannWhitney(math.nan, 0.0, 1.0, na, nb)
    less = np.searchsorted(b, a, side="left")
    less_eq = np.searchsorted(b, a, side="right")
    u = float(less.sum()) + 0.5 * float((less_eq - less).sum())
    n = na + nb
    tie = 0.0
    if (less_eq != less).any() or (np.diff(a) == 0).any() or (np.diff(b) == 0).any():
        _, counts = np.unique(np.concatenate([a, b]), return_counts=True)
        tie = float((counts.astype(np.float64) ** 3 - counts).sum())
    var = infl * na * nb / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return MannWhitney(u, 0.0, 1.0, na, nb)
    diff = u - na * nb / 2.0
    z = (diff - math.copysign(0.5, diff)) / math.sqrt(var) if diff != 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return MannWhitney(u, z, min(1.0, p), na, nb)


def samples_to_decide(n: int, half_width: float, margin: float, cap: int = 1_000_000) -> int | None:
    """More samples needed (estimate) for an interval of half-width `half_width` at n to clear `margin`.

    Interval widths shrink like 1/sqrt(n). None when the point sits on the line (no n decides).
    """
    if margin <= 0 or not math.isfinite(half_width) or n <= 0:
        return None
    need = math.ceil(n * (half_width / margin) ** 2)
    return max(1, min(cap, need) - n)
