"""The statistics under the gate: intervals, Mann-Whitney, rank bootstrap, serial dependence; and the KPIs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthetic import latency_samples, make_record

from agents import stats as one
from agents.summary import mean_metric, series_metrics
from harness.gate import evaluate, load_policy
from harness.gate.kpis import compute
from harness.gate.policy import KpiConfig
from harness.gate.rules import SampleCache
from harness.gate.stats import (
    Estimator,
    estimator_for,
    inflation,
    interval,
    mann_whitney,
    mean_r_bracket,
    min_n_for_bounded,
    ratio_interval,
    samples_to_decide,
)
from harness.records import Metric


def test_estimators_follow_the_metric_registry() -> None:
    assert estimator_for("latency_ms_p95") == Estimator("latency_ms", "quantile", 0.95)
    assert estimator_for("itl_ms_p50") == Estimator("itl_ms", "quantile", 0.5)
    assert estimator_for("latency_ms_mean") == Estimator("latency_ms", "mean")
    assert estimator_for("decode_tokens_per_s") == Estimator("decode_tokens_per_s", "rate")
    assert estimator_for("ttft_ms") == Estimator("ttft_ms", "quantile", 0.5)
    assert estimator_for("latency_ms_max") is None and estimator_for("peak_rss_mib") is None


def test_mann_whitney_small_example_by_hand() -> None:
    # a = [1, 2, 3], b = [4, 5, 6]: U_a = 0, mean 4.5, var 3*3*7/12 = 5.25
    mw = mann_whitney(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    assert mw.u == 0
    z = (0 - 4.5 + 0.5) / math.sqrt(5.25)
    assert mw.z == pytest.approx(z) and mw.p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))


def test_mann_whitney_ties_and_symmetry() -> None:
    a, b = np.array([1.0, 1, 2, 2, 3]), np.array([1.0, 2, 2, 3, 3])
    ab, ba = mann_whitney(a, b), mann_whitney(b, a)
    assert ab.z == pytest.approx(-ba.z) and ab.p == pytest.approx(ba.p)
    assert mann_whitney(np.ones(5), np.ones(5)).p == 1.0


def test_percentile_interval_covers_the_true_value() -> None:
    rng = np.random.default_rng(0)
    true = float(np.exp(1.6448536 * 0.2))  # p95 of lognormal(0, 0.2)
    covered = 0
    for _ in range(300):
        x = np.sort(np.exp(rng.normal(0, 0.2, 400)))
        lo, hi = interval(Estimator("latency_ms", "quantile", 0.95), x, 0.95)
        covered += lo <= true <= hi
    assert covered / 300 > 0.90


def test_too_few_samples_leave_the_interval_open() -> None:
    """The gate's minimum claimable count is the agent's, exactly: one below it nothing is bounded."""
    for p, need in ((0.5, 6), (0.9, 36), (0.95, 72), (0.99, 368)):
        assert min_n_for_bounded(p, 0.95) == need == one.min_samples_for_percentile(p, 0.95)
        est = Estimator("latency_ms", "quantile", p)
        assert interval(est, np.arange(need - 1, dtype=np.float64), 0.95) == (-math.inf, math.inf)
        lo, hi = interval(est, np.arange(need, dtype=np.float64), 0.95)
        ranks = one.quantile_ci_ranks(need, p, 0.95)
        assert ranks is not None and (lo, hi) == (ranks[0] - 1.0, ranks[1] - 1.0)


def _series(rng: np.random.Generator, n: int, kind: str) -> list[float]:
    if kind == "bursty":
        return latency_samples(rng, n, 40.0, 0.05, outlier_rate=0.08, burst=12.0)
    if kind == "drift":  # a slow trend: strongly autocorrelated
        return [float(x) for x in 10.0 * np.exp(np.linspace(0, 0.5, n) + rng.normal(0, 0.02, n))]
    if kind == "ties":
        return [float(x) for x in rng.integers(1, 5, n)]
    return [float(x) for x in np.exp(rng.normal(1.0, 0.3, n))]


def test_agent_and_gate_give_identical_intervals_on_random_samples() -> None:
    """Property: for random sample sets the agent's metrics and the gate's recomputation agree exactly -
    value, interval (effective n included) and the count a claim needs."""
    rng = np.random.default_rng(12)
    checked = 0
    for trial in range(120):
        n = int(rng.choice([1, 2, 5, 7, 8, 12, 40, 75, 200, 400, 1500]))
        kind = ["iid", "bursty", "drift", "ties"][trial % 4]
        xs = _series(rng, n, kind)
        conf = float(rng.choice([0.9, 0.95, 0.99]))
        agent = series_metrics("latency_ms", xs, "ms", conf)
        sorted_x = np.sort(np.asarray(xs))
        for pct in (50, 90, 95, 99):
            est = Estimator("latency_ms", "quantile", pct / 100)
            m = agent[f"latency_ms_p{pct}"]
            gate = interval(est, sorted_x, conf, inflation(np.asarray(xs), est))
            if m["ci"] is None:
                assert gate == (-math.inf, math.inf), (n, kind, pct)
                need = int(m["note"].split(" < ")[1].split()[0])
                assert need == one.min_claimable(pct / 100, conf, n, one.effective_n(xs, "quantile", pct / 100))
            else:
                assert [round(v, 4) for v in gate] == m["ci"], (n, kind, pct, gate, m["ci"])
                assert round(est.point(sorted_x), 4) == m["value"]
                checked += 1
        def same(gate: tuple[float, float], ci: list[float] | None) -> bool:
            return gate == (-math.inf, math.inf) if ci is None else [round(v, 4) for v in gate] == ci

        mean_est = Estimator("latency_ms", "mean")
        assert same(interval(mean_est, sorted_x, conf, inflation(np.asarray(xs), mean_est)),
                    agent["latency_ms_mean"]["ci"] if n else None)
        rates = [1000.0 / x for x in xs]
        r = mean_metric(rates, "tok/s", conf, kind="rate")
        rate_est = Estimator("decode_tokens_per_s", "rate")
        gate_rate = interval(rate_est, np.sort(np.asarray(rates)), conf, inflation(np.asarray(rates), rate_est))
        assert same(gate_rate, r["ci"]) and (r["ci"] is None or gate_rate[0] > 0)
        itl = series_metrics("itl_ms", xs, "ms", conf)["itl_ms_p90"]  # per-token: no effective n, on both sides
        itl_est = Estimator("itl_ms", "quantile", 0.9)
        assert inflation(np.asarray(xs), itl_est) == 1.0
        assert same(interval(itl_est, sorted_x, conf, 1.0), itl["ci"])
    assert checked > 150


# n = 64 integers whose lag-1 autocorrelation is exactly 3/5: n (1 - r) / (1 + r) = 16 sits on an integer, so
# numpy's r (another summation order) cannot tell 16 from 15 and the gate must take the exact path
ON_THE_BOUNDARY = [-2, 1, -1, 1, 0, 1, 3, 4, 3, 5, -1, -2, 0, -1, 1, -2, -1, 0, 2, 2, 2, 1, 0, 0, 2, 1, -1, 1, 1, -1,
                   -2, 0, -1, 0, 1, 0, 1, -1, -2, -1, 0, -1, 0, 0, -1, 0, 2, 2, 2, 1, 2, 1, 1, 0, 0, 1, -1, -3, -2, -4,
                   -4, -5, -2, -3]


def test_the_gates_fast_effective_n_is_the_agents_exactly() -> None:
    """Property: a mean's effective n (numpy dot products, with the exact path at a boundary) equals the agent's
    (math.fsum) for random series of every kind and size, and for a series built to sit on the boundary."""
    rng = np.random.default_rng(7)
    fast = exact = 0
    series = [[float(v) for v in ON_THE_BOUNDARY]]
    for trial in range(300):
        n = int(rng.choice([8, 9, 30, 64, 200, 2000, 5000]))
        series.append(_series(rng, n, ["iid", "bursty", "drift", "ties"][trial % 4]))
    for xs in series:
        arr = np.asarray(xs)
        want = one.effective_n(xs, "mean")
        assert inflation(arr) == (len(xs) / want if want < len(xs) else 1.0), (len(xs), want)
        b = mean_r_bracket(arr)
        r = one.lag1_autocorrelation(xs)
        if b is not None:
            assert b[0] <= r <= b[1]
            same = one.effective_n_from_r(len(xs), b[0]) == one.effective_n_from_r(len(xs), b[1])
            fast, exact = fast + same, exact + (not same)
    lo, hi = mean_r_bracket(np.asarray(series[0], dtype=np.float64)) or (0.0, 0.0)
    assert one.effective_n_from_r(64, lo) != one.effective_n_from_r(64, hi)  # the boundary case takes the exact path
    assert one.lag1_autocorrelation(series[0]) == 0.6 and fast > 250 and exact >= 1, (fast, exact)


def test_the_gate_judges_a_record_on_its_own_interval(tmp_path: Path) -> None:
    """8 GGUF requests: TTFT median with the record's interval; the gate passes it against a far budget."""
    ttft = [82.1, 75.5, 98.0, 80.3, 79.9, 84.4, 81.0, 77.7]
    rec = make_record(samples=None)
    rec.samples["ttft_ms"] = ttft
    rec.metrics["ttft_ms"] = Metric.from_dict(series_metric_ttft(ttft))
    p = tmp_path / "p.toml"
    p.write_text('schema = 1\n[[budget]]\nmetric = "ttft_ms"\nmax = 3000\n')
    r = evaluate([rec], load_policy(p)).cells[0].rules[0]
    assert r.outcome == "pass", r.reason
    assert r.ci == rec.metrics["ttft_ms"].ci == (75.5, 98.0)


def series_metric_ttft(xs: list[float]) -> dict[str, object]:
    from agents.summary import build_metrics

    out: dict[str, object] = build_metrics({}, {"latency_ms": xs, "itl_ms": xs, "ttft_ms": xs}, 0.95)["ttft_ms"]
    return out


def test_rate_intervals_stay_positive() -> None:
    """Decode tok/s over 4 widely spread requests: the t-interval goes below zero, the log-scale one cannot."""
    rates = [2.0, 400.0, 3.0, 5.0]
    lo, hi = one.rate_ci(rates, 0.95) or (0.0, 0.0)
    t_lo, _ = one.mean_ci(rates, 0.95) or (0.0, 0.0)
    assert t_lo < 0 < lo < sum(rates) / len(rates) < hi


def test_inflation_detects_bursts() -> None:
    rng = np.random.default_rng(1)
    iid = np.asarray(latency_samples(rng, 2000, 50.0, 0.1, outlier_rate=0.02, burst=1.0))
    bursty = np.asarray(latency_samples(rng, 2000, 50.0, 0.1, outlier_rate=0.05, burst=20.0))
    assert inflation(iid) == 1.0  # no significant autocorrelation: the effective n is n
    assert inflation(bursty) == 2000 / one.effective_n(bursty.tolist()) > 2.0
    p95 = Estimator("latency_ms", "quantile", 0.95)  # a p95's dependence: the bursts of exceedances
    assert 1.0 < inflation(bursty, p95) == 2000 / one.effective_n(bursty.tolist(), "quantile", 0.95)


def test_ratio_interval_contains_one_for_identical_distributions_and_not_for_a_slowdown() -> None:
    rng = np.random.default_rng(2)
    est = Estimator("latency_ms", "quantile", 0.95)
    a = np.sort(np.exp(rng.normal(0, 0.1, 1000)))
    b = np.sort(np.exp(rng.normal(0, 0.1, 1000)))
    lo, hi = ratio_interval(est, b, a, 0.95, 400, rng)
    assert lo < 1.0 < hi
    lo, hi = ratio_interval(est, b * 1.15, a, 0.95, 400, rng)
    assert 1.05 < lo < 1.15 < hi


def test_samples_to_decide_scales_with_the_square() -> None:
    assert samples_to_decide(100, 2.0, 1.0) == 300  # 4x the samples halve the width
    assert samples_to_decide(100, 1.0, 0.0) is None


# --- KPIs -----------------------------------------------------------------------------------------------------

def test_kpis_are_computed_only_when_their_inputs_exist() -> None:
    rng = np.random.default_rng(3)
    cache = SampleCache()
    bare = make_record(samples=None, peak_rss_mib=None, ram_mib=None)
    assert compute(bare, KpiConfig(sla_latency_ms=100, price_per_hour=1.0), cache) == []
    rec = make_record(samples=latency_samples(rng, 1000, 80.0, 0.1), peak_rss_mib=1024.0, ram_mib=4096,
                      artifact_bytes=20_000_000, workload={"quality": 0.8, "behaviour_stability": 0.95})
    rec.metrics["throughput_per_s"] = Metric(10.0, "1/s")
    k = {x.name: x for x in compute(rec, KpiConfig(sla_latency_ms=100, price_per_hour=3.6), cache)}
    assert k["model_efficiency_ratio"].value == pytest.approx(0.8 / 20.0)
    lat = np.asarray(rec.samples["latency_ms"])
    assert k["sla_compliance_pct"].value == pytest.approx(100 * float((lat <= 100).mean()))
    assert k["memory_headroom_pct"].value == pytest.approx(75.0)
    assert k["behaviour_stability_pct"].value == pytest.approx(95.0)
    assert k["cost_per_1k_requests"].value == pytest.approx(3.6 * 0.1 * 1000 / 3600)


def test_quality_from_the_policy_table(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text('schema = 1\n[kpis]\nquality = {"student-int8" = 0.5}\n')
    rep = evaluate([make_record(samples=None, artifact_bytes=10_000_000)], load_policy(p))
    assert [k.value for k in rep.cells[0].kpis if k.name == "model_efficiency_ratio"] == [pytest.approx(0.05)]


def test_bursty_samples_widen_the_recorded_interval_and_the_gate_keeps_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    rec = make_record(samples=latency_samples(rng, 1500, 100.0, 0.05, outlier_rate=0.1, burst=10.0))
    xs = rec.samples["latency_ms"]
    assert inflation(np.asarray(xs), Estimator("latency_ms", "quantile", 0.95)) > 1.5
    recorded = rec.metrics["latency_ms_p95"].ci
    iid = one.percentile_ci(sorted(xs), 0.95, 0.95)  # as if the samples were independent
    assert recorded is not None and iid is not None
    assert recorded[0] <= iid[0] and recorded[1] >= iid[1] and recorded[1] - recorded[0] > iid[1] - iid[0]
    p = tmp_path / "p.toml"
    p.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmax = 1000\n')
    r = evaluate([rec], load_policy(p)).cells[0].rules[0]
    assert r.ci == recorded


def test_gate_inflation_is_exactly_the_agents_effective_n() -> None:
    """The gate's vectorised serial dependence gives one.effective_n's n_eff, bit for bit, for every statistic."""
    rng = np.random.default_rng(11)
    for _ in range(150):
        n = int(rng.choice([8, 12, 64, 500, 2000]))
        rho = float(rng.choice([0.0, 0.4, 0.9]))
        noise = rng.standard_normal(n)
        xs = np.empty(n)
        v = 0.0
        for i in range(n):
            v = rho * v + noise[i]
            xs[i] = 50.0 + v
        xs = np.round(xs, int(rng.choice([1, 6])))  # ties, as a timer's resolution makes
        for est in (Estimator("latency_ms", "quantile", 0.5), Estimator("latency_ms", "quantile", 0.95),
                    Estimator("latency_ms", "quantile", 0.99), Estimator("latency_ms", "mean"),
                    Estimator("tokens_per_s", "rate")):
            m = one.effective_n(xs.tolist(), est.kind, est.p)
            assert inflation(xs, est) == (n / m if m < n else 1.0), (n, rho, est)
