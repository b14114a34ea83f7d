"""The one statistics of edgefarm: estimates, intervals and minimum claimable counts (standard library only).

The agent computes its metrics with these functions and the gate (harness/gate/stats.py) imports them, so for
the same samples both give the same estimate, interval and minimum count. `estimate` is the single entry point.

- Percentiles: linear between closest ranks (Hyndman-Fan type 7, numpy's default); interval: distribution-free
  binomial order statistics with equal tails, claimed only when both bounds are sample values.
- Serial dependence (outliers in bursts, drift): the lag-1 autocorrelation r of the series that matters for the
  statistic (a quantile: the indicators x <= q; a mean: the values; a rate: their logs), when significant
  (above 2/sqrt(n), white noise's 95% bound), gives an effective n = n (1 - r) / (1 + r); the binomial ranks
  are computed for the effective n and mapped onto exact ranks of the n samples, so the interval widens.
- Means: Student-t interval with the effective n. Rates (tokens/s): a log-scale interval for the mean of a
  positive quantity (Cox's method), so the bounds stay positive.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import List, NamedTuple, Optional, Sequence, Tuple

PERCENTILES = (50, 90, 95, 99)
KINDS = ("quantile", "mean", "rate")
ORDERED_BY_DESIGN = ("itl_ms",)  # per-token latencies rise with the position in a request: not noise, no effective n


def percentile_type7(sorted_xs: Sequence[float], p: float) -> float:
    """The p-quantile (0 <= p <= 1) of sorted data, linear between closest ranks (type 7, numpy default)."""
    n = len(sorted_xs)
    if n == 0:
        raise ValueError("no samples")
    h = (n - 1) * p
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    return float(sorted_xs[lo] + (h - lo) * (sorted_xs[hi] - sorted_xs[lo]))


def _binom_pmfs(n: int, p: float) -> Tuple[int, List[float]]:
    """(first k, pmf values) of Binomial(n, p) over a window that holds all but ~1e-30 of the mass."""
    if n <= 20000:
        lo, hi = 0, n
    else:
        sd = math.sqrt(n * p * (1.0 - p))
        lo, hi = max(0, int(n * p - 12 * sd - 12)), min(n, int(n * p + 12 * sd + 12))
    lgn = math.lgamma(n + 1)
    lp, lq = math.log(p), math.log1p(-p)
    return lo, [math.exp(lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
                for k in range(lo, hi + 1)]


@functools.lru_cache(maxsize=4096)  # a pure function of (n, p, confidence): a gate asks it ~once per cell
def quantile_ci_ranks(n: int, p: float, confidence: float = 0.95) -> Optional[Tuple[int, int]]:
    """1-based ranks (l, u) with P(X(l) <= q_p <= X(u)) >= confidence, equal tails; None if not inside 1..n.

    Distribution-free: the count of samples below the true p-quantile is Binomial(n, p).
    """
    if n < 1 or not 0.0 < p < 1.0:
        return None
    tail = (1.0 - confidence) / 2.0
    lo, pmf = _binom_pmfs(n, p)
    acc, l_rank = 0.0, 0
    for i, v in enumerate(pmf):  # l: the largest rank with P(B <= l-1) <= tail
        if acc + v > tail:
            l_rank = lo + i
            break
        acc += v
    acc, u_rank = 0.0, n + 1
    for i in range(len(pmf) - 1, -1, -1):  # u: the smallest rank with P(B >= u) <= tail, summed from the top
        if acc + pmf[i] > tail:
            u_rank = lo + i + 1
            break
        acc += pmf[i]
    if l_rank < 1 or u_rank > n:
        return None
    return l_rank, u_rank


@functools.lru_cache(maxsize=256)
def min_samples_for_percentile(p: float, confidence: float = 0.95) -> int:
    """Smallest n for which the p-quantile's interval (equal tails) lies inside the sample."""
    tail = (1.0 - confidence) / 2.0
    n = max(1, int(math.ceil(math.log(tail) / math.log(max(p, 1.0 - p)))) - 1)
    while quantile_ci_ranks(n, p, confidence) is None:
        n += 1
    return n


def mlperf_min_queries(p: float, confidence: float = 0.99, over: int = 1) -> int:
    """MLPerf LoadGen's early-stopping floor: the smallest n with P(Binomial(n, 1 - p) <= over) <= 1 - confidence.

    LoadGen's SingleStream rule takes over = 1 at 99%: p50 11, p90 64, p95 130, p99 662 runs.
    """
    n = over + 1
    q = 1.0 - p
    while math.fsum(math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                             + k * math.log(q) + (n - k) * math.log(p)) for k in range(over + 1)) > 1.0 - confidence:
        n += 1
    return n


def lag1_autocorrelation(values: Sequence[float]) -> float:
    """Lag-1 autocorrelation of a series (0.0 below 8 values or for a constant series)."""
    n = len(values)
    if n < 8:
        return 0.0
    mean = math.fsum(values) / n
    d = [v - mean for v in values]
    den = math.fsum(map(operator.mul, d, d))  # map over C operators: the same products, ~3x faster than a genexpr
    if den <= 0.0:
        return 0.0
    return math.fsum(map(operator.mul, d[1:], d[:-1])) / den


def indicator_lag1_autocorrelation(flags: Sequence[bool]) -> float:
    """Lag-1 autocorrelation of a 0/1 series, from integer counts (exact up to the final division).

    With k ones, S adjacent 1-1 pairs, A = k - x[0] and B = k - x[n-1]: r = (n^2 S - n k (A + B) + (n-1) k^2)
    / (n k (n - k)), the same quantity lag1_autocorrelation computes with float roundings on the way.
    """
    if len(flags) < 8:
        return 0.0
    return indicator_r(len(flags), int(sum(flags)), int(sum(map(operator.and_, flags[1:], flags[:-1]))),
                       bool(flags[0]), bool(flags[-1]))


def indicator_r(n: int, k: int, pairs: int, first: bool, last: bool) -> float:
    """r of a 0/1 series of length n from its counts: k ones, `pairs` adjacent 1-1 pairs, its first and last
    values (integers throughout, so a vectorised count gives the very same r)."""
    if k == 0 or k == n:
        return 0.0
    a_plus_b = 2 * k - int(first) - int(last)
    return (n * n * pairs - n * k * a_plus_b + (n - 1) * k * k) / float(n * k * (n - k))


def dependence_series(run_order: Sequence[float], kind: str = "mean", p: float = 0.5) -> List[float]:
    """The series whose serial dependence matters for a statistic: for a p-quantile the indicators
    [x <= sample p-quantile] (what the binomial ranks count), for a rate the logs, for a mean the values."""
    if kind == "quantile":
        q = percentile_type7(sorted(run_order), p) if run_order else 0.0
        return [1.0 if x <= q else 0.0 for x in run_order]
    if kind == "rate":
        return [math.log(x) if x > 0 else 0.0 for x in run_order]
    return [float(x) for x in run_order]


def effective_n(run_order: Sequence[float], kind: str = "mean", p: float = 0.5,
                sorted_xs: Optional[Sequence[float]] = None) -> int:
    """n, or n (1 - r) / (1 + r) when the statistic's lag-1 autocorrelation r is significantly positive
    (above 2/sqrt(n), white noise's 95% bound; r clipped to 0.9). sorted_xs: the same values sorted, where
    the caller already has them (saves a sort per quantile)."""
    n = len(run_order)
    if n < 8:
        return n
    if kind == "quantile":  # the indicators' r from integer counts: the hot path of a big gate
        q = percentile_type7(sorted(run_order) if sorted_xs is None else sorted_xs, p)
        r = indicator_lag1_autocorrelation([x <= q for x in run_order])
    else:
        r = lag1_autocorrelation(dependence_series(run_order, kind, p))
    return effective_n_from_r(n, r)


def effective_n_from_r(n: int, r: float) -> int:
    """n, or n (1 - r) / (1 + r) when r is above 2/sqrt(n) (white noise's 95% bound; r clipped to 0.9)."""
    if n < 8 or r <= 2.0 / math.sqrt(n):
        return n
    r = min(r, 0.9)
    return max(1, int(n * (1.0 - r) / (1.0 + r)))


def percentile_ci(sorted_xs: Sequence[float], p: float, confidence: float,
                  n_eff: Optional[int] = None) -> Optional[Tuple[float, float]]:
    """Order-statistic interval of the p-quantile; with n_eff < n, ranks for n_eff mapped onto the n samples."""
    n = len(sorted_xs)
    m = n if n_eff is None else max(1, min(n, n_eff))
    ranks = quantile_ci_ranks(m, p, confidence)
    if ranks is None:
        return None
    lo = max(1, int(math.floor(ranks[0] * n / m))) if m < n else ranks[0]
    hi = min(n, int(math.ceil(ranks[1] * n / m))) if m < n else ranks[1]
    return float(sorted_xs[lo - 1]), float(sorted_xs[hi - 1])


def min_claimable(p: float, confidence: float, n: int = 0, n_eff: Optional[int] = None) -> int:
    """Samples a p-quantile claim needs, scaled up by n / n_eff for serially dependent samples."""
    need = min_samples_for_percentile(p, confidence)
    if n_eff is not None and 0 < n_eff < n:
        need = int(math.ceil(need * n / float(n_eff)))
    return need


def percentile_rel_width(run_order: Sequence[float], pct: float, confidence: float) -> Optional[float]:
    """(hi - lo) / value of the pct-th percentile's interval as `estimate` gives it (effective n for serially
    dependent samples, so in run order); None while it is not claimable."""
    e = estimate("quantile", run_order, pct / 100.0, confidence)
    if e.ci is None or e.value is None or e.value <= 0.0:
        return None
    return (e.ci[1] - e.ci[0]) / e.value


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 3000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            de = d * c
            h *= de
        if abs(de - 1.0) < 1e-14:
            break
    return h


def betainc_reg(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student t cumulative distribution."""
    tail = 0.5 * betainc_reg(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=1024)  # bisection costs ~200 incomplete betas; (q, df) repeat across cells
def t_quantile(q: float, df: float) -> float:
    """Student t quantile (0 < q < 1) by bisection on t_cdf."""
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    hi = 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def mean_std(xs: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (n-1; None below two samples)."""
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def mean_ci(xs: Sequence[float], confidence: float = 0.95, n_eff: Optional[int] = None) -> Optional[Tuple[float, float]]:
    """Student-t interval for the mean (effective n where given); None below two (effective) samples."""
    m = len(xs) if n_eff is None else min(len(xs), n_eff)
    if len(xs) < 2 or m < 2:
        return None
    mean, sd = mean_std(xs)
    assert sd is not None
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, m - 1) * sd / math.sqrt(m)
    return mean - half, mean + half


def rate_ci(xs: Sequence[float], confidence: float = 0.95, n_eff: Optional[int] = None) -> Optional[Tuple[float, float]]:
    """Interval for the mean of a positive quantity (a rate), on the log scale (Cox's method): always > 0.

    None below two samples or when a value is not positive.
    """
    m = len(xs) if n_eff is None else min(len(xs), n_eff)
    if len(xs) < 2 or m < 2 or min(xs) <= 0.0:
        return None
    ys = [math.log(x) for x in xs]
    mu, sd = mean_std(ys)
    assert sd is not None
    s2 = sd * sd
    centre = mu + s2 / 2.0
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, m - 1) * math.sqrt(s2 / m + s2 * s2 / (2.0 * (m - 1)))
    return math.exp(centre - half), math.exp(centre + half)


class Estimate(NamedTuple):
    """A statistic of one sample series: value, interval (None: not claimable or one sample), counts, why."""

    value: Optional[float]
    ci: Optional[Tuple[float, float]]
    n: int
    n_eff: int
    need: Optional[int]  # samples a quantile claim needs, when value is None for want of them
    note: Optional[str]


def estimate(kind: str, run_order: Sequence[float], p: float, confidence: float,
             dependence: bool = True) -> Estimate:
    """The statistic `kind` (quantile at p, mean, rate) of samples given in run order: the one definition.

    dependence=False for a series whose run order is a design, not noise (per-token latencies: their trend
    with the position in a request would read as serial dependence)."""
    xs = [float(x) for x in run_order if math.isfinite(x)]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, 0, 0, None, "no samples")
    m = effective_n(xs, kind, p) if dependence else n
    dep = "" if m == n else " (effective n=%d: serially dependent samples)" % m
    if kind == "quantile":
        s = sorted(xs)
        ci = percentile_ci(s, p, confidence, m)
        if ci is None:
            need = min_claimable(p, confidence, n, m)
            return Estimate(None, None, n, m, need, "insufficient samples: n=%d < %d needed for p%g at %g%% confidence%s"
                            % (n, need, round(p * 100, 6), confidence * 100, dep))
        return Estimate(percentile_type7(s, p), ci, n, m, None, dep.strip(" ()") or None)
    if kind not in ("mean", "rate"):
        raise ValueError("unknown statistic %r" % kind)
    value = mean_std(xs)[0]
    ci = (rate_ci if kind == "rate" else mean_ci)(xs, confidence, m)
    note = "one sample: no interval" if n == 1 else None if ci is not None or kind == "mean" \
        else "no interval: a rate that is not positive"
    return Estimate(value, ci, n, m, None, note or (dep.strip(" ()") or None))
