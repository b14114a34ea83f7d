"""Integrating traces over phases: trapezoids, edges, gaps, cumulative counters, the summary and its metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.energy import Trace, integrate, phases_from_events, summarise
from harness.metrics import METRICS


def power_trace(t: np.ndarray, p: np.ndarray, **kw: object) -> Trace:
    return Trace("scpi", "calibrated", "power", t.astype(float), p.astype(float), float(t[0]), float(t[-1]),
                 **kw)  # type: ignore[arg-type]


def test_trapezoid_with_interpolated_edges() -> None:
    t = np.arange(0.0, 10.01, 0.5)
    tr = power_trace(t, 2.0 * t)  # a ramp: trapezoids are exact
    w = integrate(tr, 1.25, 3.75)
    assert w.energy_j == pytest.approx(3.75**2 - 1.25**2)
    assert w.power_w_avg == pytest.approx((3.75**2 - 1.25**2) / 2.5)
    assert w.power_w_peak == pytest.approx(7.0)  # the largest sample inside, not the interpolated edge
    assert w.unseen_s == 0.0


def test_peak_uses_bin_maxima_when_present() -> None:
    t = np.arange(0.0, 1.0, 0.001)
    peak = np.full(t.size, 1.0)
    peak[500] = 9.0
    tr = power_trace(t, np.ones_like(t), peak=peak)
    assert integrate(tr, 0.1, 0.9).power_w_peak == 9.0
    assert integrate(tr, 0.6, 0.9).power_w_peak == 1.0


def test_gaps_and_edges_are_bridged_and_reported() -> None:
    t = np.concatenate([np.arange(0.0, 4.0, 0.1), np.arange(6.0, 10.0, 0.1)])  # 2 s without samples
    tr = power_trace(t, np.full(t.size, 3.0))
    w = integrate(tr, 1.0, 9.0)
    assert w.energy_j == pytest.approx(24.0)  # constant power: the bridge is right
    assert w.unseen_s == pytest.approx(2.1, abs=0.01)
    late = integrate(tr, 9.5, 12.0)  # mostly after the trace ended
    assert late.energy_j is None and late.unseen_s > 2.0
    energy, _ = summarise(tr, [{"name": "measure", "t_start": 1.0, "t_end": 9.0}], n_inferences=8,
                          idle_window=(0.1, 0.9))
    assert any("missed" in w for w in energy["warnings"])


def test_cumulative_energy_trace() -> None:
    t = np.arange(0.0, 10.01, 0.25)
    tr = Trace("rapl", "calibrated", "energy", t, 5.0 * t + np.where(t > 5, 10.0 * (t - 5), 0.0), 0.0, 10.0)
    assert integrate(tr, 1.1, 4.1).energy_j == pytest.approx(15.0)
    w = integrate(tr, 6.0, 8.0)
    assert w.energy_j == pytest.approx(30.0) and w.power_w_peak == pytest.approx(15.0)
    assert integrate(tr, 9.0, 10.2).energy_j == pytest.approx(1.2 * 15.0)  # beyond the end: last rate held


def test_summary_metrics_and_record_form() -> None:
    t = np.arange(0.0, 10.0, 0.01)
    p = np.where((t >= 4.0) & (t < 8.0), 3.0, 1.0)
    tr = power_trace(t, p, tainted=["charging: test"], info={"meter": "x"})
    events = [("load", 2.0), ("first", 3.0), ("warmup", 3.5), ("measure", 4.0), ("done", 8.0)]
    phases = phases_from_events(events, t_end=8.5)
    assert phases[3] == {"name": "measure", "t_start": 4.0, "t_end": 8.0}
    assert phases[-1] == {"name": "done", "t_start": 8.0, "t_end": 8.5}
    energy, metrics = summarise(tr, phases, n_inferences=100, n_tokens=400, idle_window=(0.5, 1.5))
    assert energy["idle"]["power_w"] == pytest.approx(1.0)
    assert energy["measured"]["energy_j_net"] == pytest.approx(8.0, rel=2e-3)
    assert set(metrics) == {"energy_j_per_inference", "energy_j_per_token", "power_w_avg", "power_w_peak"}
    for name, m in metrics.items():
        assert m.unit == METRICS[name].unit
    assert metrics["energy_j_per_inference"].value == pytest.approx(0.08, rel=2e-3)
    assert metrics["energy_j_per_token"].value == pytest.approx(0.02, rel=2e-3)
    assert metrics["power_w_avg"].value == pytest.approx(3.0, rel=2e-3)
    assert metrics["power_w_peak"].value == 3.0
    assert "1 W subtracted" in (metrics["power_w_avg"].note or "")
    assert energy["tainted"] == ["charging: test"]
    json.dumps(energy, allow_nan=False)  # goes into Record.energy as it is


def test_summary_without_measure_phase_or_baseline() -> None:
    t = np.arange(0.0, 5.0, 0.01)
    tr = power_trace(t, np.full(t.size, 2.0))
    energy, metrics = summarise(tr, [{"name": "load", "t_start": 1.0, "t_end": 2.0}], n_inferences=None)
    assert metrics == {} and energy["measured"] is None
    assert energy["phases"][0]["energy_j"] == pytest.approx(2.0)
    assert any("no idle baseline" in w for w in energy["warnings"])
    energy, metrics = summarise(tr, [{"name": "measure", "t_start": 1.0, "t_end": 2.0}], n_inferences=4,
                                idle_window=(0.2, 0.8))
    assert any("no more than the idle baseline" in w for w in energy["warnings"])


def test_empty_trace_gives_no_figures_and_says_why() -> None:
    empty = np.zeros(0)
    tr = Trace("ppk2", "calibrated", "power", empty, empty, 0.0, 5.0, peak=empty,
               warnings=["PPK2 on /dev/x: no samples arrived after AVERAGE_START"])
    energy, metrics = summarise(tr, [{"name": "measure", "t_start": 1.0, "t_end": 2.0}], n_inferences=4,
                                idle_window=(0.1, 0.9))
    assert metrics["energy_j_per_inference"].value is None and metrics["power_w_peak"].value is None
    assert energy["measured"]["energy_j_net"] is None
    assert any("no samples arrived" in w for w in energy["warnings"])
    json.dumps(energy, allow_nan=False)
