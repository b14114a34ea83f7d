"""The agent's statistics: type-7 percentiles, order-statistic intervals, t-intervals, sample-size notes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from agents import stats as A
from agents import summary as S


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentile_is_type7_like_numpy(n: int, p: float) -> None:
    rng = random.Random(n)
    xs = sorted(rng.random() for _ in range(n))
    assert A.percentile_type7(xs, p) == pytest.approx(float(np.percentile(xs, p * 100)), rel=1e-12)


def _binom_cdf(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(0, k + 1)) if k >= 0 else 0.0


@pytest.mark.parametrize("n,p", [(72, 0.95), (100, 0.9), (400, 0.99), (50, 0.5), (1000, 0.95)])
def test_quantile_interval_covers_and_is_tight(n: int, p: float) -> None:
    lo, hi = A.quantile_ci_ranks(n, p, 0.95) or (0, 0)
    assert 1 <= lo < hi <= n
    # coverage P(l <= B <= u-1) >= 95%, each tail <= 2.5%, and neither bound can move inward
    assert _binom_cdf(lo - 1, n, p) <= 0.025 < _binom_cdf(lo, n, p)
    assert 1 - _binom_cdf(hi - 1, n, p) <= 0.025 < 1 - _binom_cdf(hi - 2, n, p)


def test_large_n_interval_uses_a_window_and_stays_sane() -> None:
    lo, hi = A.quantile_ci_ranks(200_000, 0.99, 0.95) or (0, 0)
    centre = 200_000 * 0.99
    assert lo < centre < hi and hi - lo < 200  # about +-1.96 sd (sd = 44.5)


@pytest.mark.parametrize("p,conf,need", [(0.5, 0.95, 6), (0.9, 0.95, 36), (0.95, 0.95, 72), (0.99, 0.95, 368),
                                         (0.9, 0.99, 51)])
def test_min_samples_for_percentile(p: float, conf: float, need: int) -> None:
    assert A.min_samples_for_percentile(p, conf) == need
    assert A.quantile_ci_ranks(need, p, conf) is not None
    assert A.quantile_ci_ranks(need - 1, p, conf) is None


def test_percentile_metric_is_null_with_a_note_when_samples_are_too_few() -> None:
    m = S.percentile_metric([float(i) for i in range(12)], 95, "ms", 0.95)
    assert m["value"] is None and m["ci"] is None and m["n"] == 12
    assert m["note"] == "insufficient samples: n=12 < 72 needed for p95 at 95% confidence"


def test_percentile_metric_claims_with_an_interval_inside_the_sample() -> None:
    xs = [float(i) for i in range(1, 101)]
    random.Random(3).shuffle(xs)  # run order matters: sorted, the samples would be one long drift
    m = S.percentile_metric(xs, 90, "ms", 0.95)
    assert m["value"] == pytest.approx(90.1)
    assert 1.0 <= m["ci"][0] < m["value"] < m["ci"][1] <= 100.0
    assert m["confidence"] == 0.95 and m["note"] is None


@pytest.mark.parametrize("df,q,t", [(1, 0.975, 12.7062047), (4, 0.975, 2.7764451), (9, 0.975, 2.2621572),
                                    (30, 0.995, 2.7499957), (200, 0.975, 1.9718962)])
def test_t_quantile_matches_tables(df: int, q: float, t: float) -> None:
    assert A.t_quantile(q, df) == pytest.approx(t, rel=1e-6)
    assert A.t_quantile(1 - q, df) == pytest.approx(-t, rel=1e-6)


def test_mean_ci_is_a_t_interval() -> None:
    xs = [10.0, 12.0, 11.0, 13.0, 9.0]
    lo, hi = A.mean_ci(xs, 0.95) or (0.0, 0.0)
    half = 2.7764451 * float(np.std(xs, ddof=1)) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((11.0 - half, 11.0 + half))
    assert A.mean_ci([1.0], 0.95) is None


def test_a_drift_is_serially_dependent_and_widens_or_refuses_the_claim() -> None:
    """The same 100 values in order (a drift) and shuffled: the ordered run cannot claim its p90."""
    xs = [float(i) for i in range(1, 101)]
    assert A.effective_n(xs, "quantile", 0.9) < 36 <= A.effective_n(random.Random(3).sample(xs, 100), "quantile", 0.9)
    m = S.percentile_metric(xs, 90, "ms", 0.95)
    assert m["value"] is None and "effective n=" in m["note"] and "serially dependent" in m["note"]


def test_series_metrics_names_and_nan_free() -> None:
    m = S.series_metrics("latency_ms", [1.0, 2.0, 3.0], "ms", 0.95)
    assert set(m) == {"latency_ms_" + s for s in ("mean", "std", "min", "max", "p50", "p90", "p95", "p99")}
    assert m["latency_ms_std"]["value"] == pytest.approx(1.0)
    assert S.series_metrics("itl_ms", [], "ms", 0.95)["itl_ms_p50"]["value"] is None


def test_indicator_autocorrelation_from_counts_equals_the_float_series_one() -> None:
    """The integer-count lag-1 r (the gate's hot path) is the float computation's r, and gives the same n_eff."""
    rng = random.Random(7)
    for _ in range(400):
        n = rng.choice([8, 9, 31, 200, 2000])
        rho, v, xs = rng.choice([0.0, 0.5, 0.9]), 0.0, []
        for _ in range(n):
            v = rho * v + rng.gauss(0.0, 1.0)
            xs.append(round(v, rng.choice([1, 6])))  # rounding makes ties, as timer resolution does
        for p in (0.5, 0.9, 0.95, 0.99):
            q = A.percentile_type7(sorted(xs), p)
            flags = [x <= q for x in xs]
            ref = A.lag1_autocorrelation(A.dependence_series(xs, "quantile", p))
            assert A.indicator_lag1_autocorrelation(flags) == pytest.approx(ref, abs=1e-12)
            thr = 2.0 / math.sqrt(n)
            want = n if n < 8 or ref <= thr else max(1, int(n * (1.0 - min(ref, 0.9)) / (1.0 + min(ref, 0.9))))
            assert A.effective_n(xs, "quantile", p) == want
            assert A.effective_n(xs, "quantile", p, sorted(xs)) == want
