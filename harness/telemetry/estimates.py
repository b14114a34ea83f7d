"""Field estimates with intervals, built on the one statistics module (agents/stats.py).

- Percentiles from histogram bucket counts: the count of requests below the true p-quantile is
  Binomial(n, p), so the statistics module's distribution-free ranks (l, u) bound it among the order
  statistics; a bucket histogram only says which bucket each order statistic fell in, so the interval is
  widened to the lower edge of rank l's bucket and the upper edge of rank u's bucket. Both the sampling
  error and the bucket resolution are inside it; a rank in the +Inf bucket leaves the upper side unbounded.
  The point is Prometheus' histogram_quantile (linear within the bucket), so it matches Grafana.
- Proportions (OOM rate): the exact Clopper-Pearson interval, from the statistics module's incomplete beta.
  (General; it belongs in the statistics module and moves there when that module has one.)
- Means of per-prompt similarities: the statistics module's Student-t interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agents.stats import betainc_reg, mean_ci, quantile_ci_ranks


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval; lo/hi are +-inf on a side the data cannot bound. n: observations behind it."""

    value: float | None
    lo: float
    hi: float
    n: int
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        def fin(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, 9)
        return {"value": fin(self.value), "ci": [fin(self.lo), fin(self.hi)], "n": self.n, "note": self.note}


def _bucket_of_rank(cum: Sequence[float], rank: int) -> int:
    """Index of the bucket holding the rank-th smallest observation (1-based rank), cum = cumulative counts."""
    for i, c in enumerate(cum):
        if c >= rank:
            return i
    return len(cum) - 1


def histogram_quantile(bounds: Sequence[float], counts: Sequence[float], p: float, confidence: float) -> Estimate:
    """p-quantile (0 < p < 1) of a histogram: `bounds` are finite upper edges, `counts` per bucket with one
    more entry for +Inf (not cumulative)."""
    if len(counts) != len(bounds) + 1:
        raise ValueError("counts need one entry per bound plus +Inf")
    counts_i = [max(0, int(round(c))) for c in counts]
    n = sum(counts_i)
    if n == 0:
        return Estimate(None, -math.inf, math.inf, 0, "no observations")
    cum: list[float] = []
    acc = 0
    for c in counts_i:
        acc += c
        cum.append(acc)
    edges = [0.0, *bounds, math.inf]
    target = p * n
    i = next(k for k, c in enumerate(cum) if c >= target)
    if i == len(bounds):  # in +Inf: Prometheus answers the last finite edge; we say it is unbounded above
        point = bounds[-1]
    else:
        below = cum[i - 1] if i else 0
        inside = counts_i[i]
        point = edges[i] + (edges[i + 1] - edges[i]) * ((target - below) / inside if inside else 1.0)
    ranks = quantile_ci_ranks(n, p, confidence)
    if ranks is None:
        return Estimate(point, -math.inf, math.inf, n, f"n={n} too few to bound p{p * 100:g}")
    lo = edges[_bucket_of_rank(cum, ranks[0])]
    hi = edges[_bucket_of_rank(cum, ranks[1]) + 1]
    return Estimate(point, lo, hi, n, None if math.isfinite(hi) else "upper bound in the +Inf bucket")


def _beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection on the statistics module's regularized incomplete beta."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if betainc_reg(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def proportion(events: float, n: float, confidence: float) -> Estimate:
    """Proportion events/n with its exact (Clopper-Pearson) binomial interval: never below nominal coverage,
    where Wilson's dips to ~92% at a handful of events (measured: tests/test_telemetry_estimates.py), and a
    rollback should not fire on an interval that undercovers."""
    k, m = int(round(events)), int(round(n))
    if m <= 0:
        return Estimate(None, 0.0, 1.0, 0, "no requests")
    tail = (1.0 - confidence) / 2.0
    lo = 0.0 if k == 0 else _beta_quantile(tail, k, m - k + 1)
    hi = 1.0 if k == m else _beta_quantile(1.0 - tail, k + 1, m - k)
    return Estimate(k / m, lo, hi, m)


def mean_estimate(xs: Sequence[float], confidence: float) -> Estimate:
    """Mean with the statistics module's t-interval (unbounded below two values)."""
    if not xs:
        return Estimate(None, -math.inf, math.inf, 0, "no values")
    m = math.fsum(xs) / len(xs)
    ci = mean_ci(list(xs), confidence)
    if ci is None:
        return Estimate(m, -math.inf, math.inf, len(xs), "one value: no interval")
    return Estimate(m, ci[0], ci[1], len(xs))
