"""The field intervals hold what they claim: coverage of the true value over repeated draws."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from harness.telemetry import contract as c
from harness.telemetry.estimates import histogram_quantile, proportion
from harness.telemetry.window import bucket_index


def test_histogram_percentile_interval_covers_the_true_percentile() -> None:
    rng = np.random.default_rng(11)
    med, sigma, p = 0.18, 0.35, 0.95
    truth = med * math.exp(sigma * NormalDist().inv_cdf(p))
    hits, widths = 0, []
    trials = 400
    for _ in range(trials):
        x = np.exp(rng.normal(math.log(med), sigma, 300))
        counts = [0.0] * (len(c.LATENCY_BUCKETS_S) + 1)
        for v in x:
            counts[bucket_index(c.LATENCY_BUCKETS_S, float(v))] += 1
        est = histogram_quantile(c.LATENCY_BUCKETS_S, counts, p, 0.95)
        hits += est.lo <= truth <= est.hi
        widths.append(est.hi - est.lo)
    assert hits / trials >= 0.95  # widened to bucket edges: at least the nominal coverage
    assert float(np.median(widths)) < truth  # and still informative


def test_too_few_observations_leave_the_percentile_unbounded() -> None:
    counts = [0.0] * (len(c.LATENCY_BUCKETS_S) + 1)
    counts[5] = 20
    est = histogram_quantile(c.LATENCY_BUCKETS_S, counts, 0.99, 0.95)
    assert est.value is not None and math.isinf(est.hi) and est.note


def test_rank_in_the_inf_bucket_is_unbounded_above() -> None:
    counts = [0.0] * (len(c.LATENCY_BUCKETS_S) + 1)
    counts[3], counts[-1] = 900, 100  # 10% slower than the last edge
    est = histogram_quantile(c.LATENCY_BUCKETS_S, counts, 0.95, 0.95)
    assert est.hi == math.inf and est.lo == c.LATENCY_BUCKETS_S[-1]


def test_oom_interval_covers_small_rates() -> None:
    # Coverage computed exactly: the sum of P(K = k) over the k whose interval holds the true rate.
    for rate, n in ((0.002, 2000), (0.01, 300), (0.02, 5000)):
        def pmf(k: int) -> float:
            return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                            + k * math.log(rate) + (n - k) * math.log1p(-rate))
        kmax = int(n * rate + 12 * math.sqrt(n * rate) + 12)
        cover = sum(pmf(k) for k in range(kmax) if (e := proportion(k, n, 0.95)).lo <= rate <= e.hi)
        assert cover >= 0.95, (rate, n, cover)  # exact: never below nominal
    zero = proportion(0, 500, 0.95)
    assert zero.lo == 0.0 and 0 < zero.hi < 0.01
    # Clopper-Pearson's known value: 2 of 100 at 95% -> [0.00243, 0.07039]
    two = proportion(2, 100, 0.95)
    assert math.isclose(two.lo, 0.002431, abs_tol=2e-6) and math.isclose(two.hi, 0.070383, abs_tol=2e-6)
