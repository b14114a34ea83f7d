"""Adaptive stopping: the loop on a simulated clock (exact, deterministic), then the real agent on a real model,
and the settings from a profile and the command line into the spec."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_helpers import run_spec

from agents.loops import adaptive_loop
from agents.spec import SpecError, WorkloadSpec, parse_spec
from agents.stats import min_samples_for_percentile, mlperf_min_queries
from agents.summary import percentile_metric
from harness.commands.run_cmd import parse_adaptive
from harness.errors import UserError
from harness.profiles import load_profile
from harness.runner import RunOverrides, build_spec


class SimClock:
    """perf_counter for the loop: each call of `run` advances it by one drawn latency (seconds)."""

    def __init__(self, draw: Callable[[], float]) -> None:
        self.t, self.draw, self.calls = 0.0, draw, 0

    def __call__(self) -> float:
        return self.t

    def run(self) -> None:
        self.calls += 1
        self.t += self.draw()


def lognormal(sigma: float, median_s: float = 0.001, seed: int = 1) -> SimClock:
    rng = random.Random(seed)
    return SimClock(lambda: median_s * math.exp(rng.gauss(0.0, sigma)))


def loop(clk: SimClock, pcts: list[float], width: float, min_runs: int = 1, min_s: float = 0.0,
         max_s: float = 1e6) -> tuple[list[float], dict[str, object]]:
    lat, _, stopping = adaptive_loop(clk.run, min_runs, min_s, max_s, pcts, width, 0.95, clock=clk)
    return lat, stopping


def test_mlperf_floor_matches_loadgen() -> None:
    # LoadGen prints "Processed at least 64 queries" for a SingleStream p90 claim at 99% confidence
    assert [mlperf_min_queries(p) for p in (0.5, 0.9, 0.95, 0.99)] == [11, 64, 130, 662]
    for p in (0.9, 0.95, 0.99):
        n = mlperf_min_queries(p)
        at_most_one_over = (lambda m: p ** m + m * (1 - p) * p ** (m - 1))
        assert at_most_one_over(n) <= 0.01 < at_most_one_over(n - 1)


@pytest.mark.parametrize(("pcts", "floor"), [([90], 64), ([95], 130), ([50, 99], 662)])
def test_the_binomial_floor_holds_even_without_noise(pcts: list[float], floor: int) -> None:
    lat, s = loop(SimClock(lambda: 0.001), pcts, 0.05)
    assert len(lat) == floor and s["stop_reason"] == "ci_width" and s["checks"] == 1
    assert s["floors"] == {f"p{p:g}": max(mlperf_min_queries(p / 100),
                                          min_samples_for_percentile(p / 100, 0.95)) for p in pcts}
    assert all(w == 0.0 for w in s["rel_widths"].values())  # type: ignore[attr-defined]


def test_min_runs_and_min_s_stay_lower_bounds() -> None:
    lat, s = loop(SimClock(lambda: 0.001), [95], 0.05, min_runs=500)
    assert len(lat) == 500 and s["stop_reason"] == "ci_width"
    lat, s = loop(SimClock(lambda: 0.001), [95], 0.05, min_s=2.0)
    assert 2000 <= len(lat) <= 2001


def test_stops_early_on_low_noise_and_runs_longer_on_high_noise() -> None:
    quiet, sq = loop(lognormal(0.02), [95], 0.05)
    noisy, sn = loop(lognormal(0.5), [95], 0.05)
    assert sq["stop_reason"] == sn["stop_reason"] == "ci_width"
    assert len(quiet) == 130  # the floor: its interval was narrow at the first look
    assert len(noisy) > 10 * len(quiet)
    for lat, s in ((quiet, sq), (noisy, sn)):
        w = s["rel_widths"]["p95"]  # type: ignore[index]
        assert w <= 0.05
        # the reported width is the width of the interval the result's metrics carry
        m = percentile_metric(lat, 95, "ms", 0.95)
        assert abs((m["ci"][1] - m["ci"][0]) / m["value"] - w) < 1e-3


def test_checks_are_sparse() -> None:
    lat, s = loop(lognormal(0.5), [95, 99], 0.03)
    n = len(lat)
    assert s["stop_reason"] == "ci_width" and n > 5000
    # every max(16, n/10) runs: about 10 checks per tenfold growth of n, never one per run
    assert s["checks"] <= 10 * math.log10(n) + 5, (s["checks"], n)


def test_max_s_bounds_a_run_that_cannot_reach_its_width() -> None:
    clk = lognormal(0.8)
    lat, s = loop(clk, [99], 0.01, max_s=2.0)
    assert s["stop_reason"] == "max_s" and 2.0 <= sum(lat) / 1e3 < 2.1
    assert s["rel_widths"]["p99"] > 0.01  # type: ignore[index]
    lat, s = loop(SimClock(lambda: 0.001), [99], 0.05, max_s=0.3)  # not even the floor (662) in time
    assert s["stop_reason"] == "max_s" and len(lat) == 300 and s["checks"] == 0


def test_spec_validation() -> None:
    base = '{"artifact": "/x", "adaptive": %s}'
    assert parse_spec(base % "{}").to_dict()["adaptive"] == {"mode": "width", "percentiles": [95], "rel_width": 0.05,
                                                             "gated": [], "looks": 8, "growth": 2.0}
    assert parse_spec(base % "null").adaptive is None
    for bad, word in (('{"percentiles": [100]}', "percentiles"), ('{"percentiles": []}', "percentiles"),
                      ('{"rel_width": 0}', "rel_width"), ('{"width": 0.1}', "unknown key"),
                      ('{"percentiles": [true]}', "percentiles"), ("[95]", "spec.adaptive: expected an object"),
                      ('{"rel_width": NaN}', "rel_width: expected a finite number.*nan"),
                      ('{"rel_width": Infinity}', "rel_width: expected a finite number.*inf")):
        with pytest.raises(SpecError, match=word):
            parse_spec(base % bad)


def test_real_agent_adaptive_and_fixed(tiny_samples: dict[str, Path]) -> None:
    run = run_spec(tiny_samples["onnx"], min_runs=10, min_s=0.0, max_s=20.0,
                   adaptive={"percentiles": [90, 95], "rel_width": 0.5})
    r = run.result
    assert r["status"] == "ok", r["message"]
    s = r["stopping"]
    n = len(r["samples"]["latency_ms"])
    assert s["adaptive"] and s["runs"] == n and s["floors"] == {"p90": 64, "p95": 130}
    assert s["stop_reason"] in ("ci_width", "max_s") and n >= 130
    if s["stop_reason"] == "ci_width":
        assert all(w <= 0.5 for w in s["rel_widths"].values())
    assert r["metrics"]["latency_ms_p95"]["n"] == n and r["metrics"]["latency_ms_p95"]["ci"] is not None
    fixed = run_spec(tiny_samples["onnx"], min_runs=50, min_s=0.0).result
    assert fixed["stopping"] == {"stop_reason": "min_runs_and_min_s", "runs": 50, "adaptive": False,
                                 "seconds": fixed["stopping"]["seconds"]}


def test_profile_and_command_line_settings_reach_the_spec(fast_profiles: Path, tmp_path: Path) -> None:
    assert parse_adaptive("p95:0.05") == ([95.0], 0.05)
    assert parse_adaptive("p90,P99:5%") == ([90.0, 99.0], 0.05)
    for bad in ("p95", "p100:0.1", "p95:0", "x:1"):
        with pytest.raises(UserError):
            parse_adaptive(bad)
    prof = load_profile(fast_profiles / "local.toml")
    assert build_spec(prof, "/a", "onnx", RunOverrides(), None).adaptive is None
    text = (fast_profiles / "local.toml").read_text().replace(
        "[run]\n", "[run]\nadaptive_percentiles = [95]\nadaptive_rel_width = 0.1\n")
    (tmp_path / "local.toml").write_text(text)
    prof = load_profile(tmp_path / "local.toml")
    width = {"mode": "width", "gated": [], "looks": 8, "growth": 2.0}
    assert build_spec(prof, "/a", "onnx", RunOverrides(), None).to_dict()["adaptive"] == {
        **width, "percentiles": [95.0], "rel_width": 0.1}
    spec = build_spec(prof, "/a", "onnx", RunOverrides(adaptive=([99.0], 0.02)), None)
    assert spec.to_dict()["adaptive"] == {**width, "percentiles": [99.0], "rel_width": 0.02}
    # what the controller builds, the agent accepts and echoes unchanged
    assert parse_spec(__import__("json").dumps(spec.to_dict())) == spec == WorkloadSpec.from_dict(spec.to_dict())
