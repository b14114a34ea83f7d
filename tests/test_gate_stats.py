"""The statistics under the gate: intervals, Mann-Whitney, rank bootstrap, serial dependence; and the KPIs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

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
    min_n_for_bounded,
    ratio_interval,
    samples_to_decide,
)
from harness.gate.synthetic import latency_samples, make_record
from harness.records import Metric


def test_estimators_follow_the_metric_registry() -> None:
    assert estimator_for("latency_ms_p95") == Estimator("latency_ms", "quantile", 0.95)
    assert estimator_for("itl_ms_p50") == Estimator("itl_ms", "quantile", 0.5)
    assert estimator_for("latency_ms_mean") == Estimator("latency_ms", "mean")
    assert estimator_for("decode_tokens_per_s") == Estimator("decode_tokens_per_s", "mean")
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
    x = np.sort(np.arange(10, dtype=np.float64))
    lo, hi = interval(Estimator("latency_ms", "quantile", 0.95), x, 0.95)
    assert math.isinf(hi)
    n = min_n_for_bounded(0.95, 0.95)
    assert 59 <= n <= 120
    assert not math.isinf(interval(Estimator("s", "quantile", 0.95), np.arange(n, dtype=np.float64), 0.95)[1])


def test_inflation_detects_bursts() -> None:
    rng = np.random.default_rng(1)
    iid = np.asarray(latency_samples(rng, 2000, 50.0, 0.1, outlier_rate=0.02, burst=1.0))
    bursty = np.asarray(latency_samples(rng, 2000, 50.0, 0.1, outlier_rate=0.05, burst=20.0))
    assert inflation(iid) < 1.3 and inflation(bursty) > 2.0


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


def test_bursty_samples_widen_the_recorded_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    rec = make_record(samples=latency_samples(rng, 1500, 100.0, 0.05, outlier_rate=0.1, burst=10.0))
    assert inflation(np.asarray(rec.samples["latency_ms"])) > 1.5
    recorded = rec.metrics["latency_ms_p95"].ci
    assert recorded is not None
    p = tmp_path / "p.toml"
    p.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmax = 1000\n')
    r = evaluate([rec], load_policy(p)).cells[0].rules[0]
    assert r.ci is not None and r.ci[0] <= recorded[0] and r.ci[1] >= recorded[1]
    assert r.ci[1] - r.ci[0] > recorded[1] - recorded[0]
