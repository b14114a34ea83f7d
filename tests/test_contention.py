"""Contention: the agent marks a starved measure phase `contended`; the gate turns only the verdicts contention
could have caused inconclusive (a budget met although contended stands; a memory figure is not a timing one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents import contention
from agent_helpers import make_samples, run_spec
from harness.gate import evaluate, load_policy
from harness.profiles import Profile, TransportConfig
from synthetic import in_launches, latency_samples, make_record

TAINT = contention.PREFIX + "host CPU pressure: tasks waited for a CPU 80% of the time"


def test_judge_names_each_cause_with_its_figures() -> None:
    quiet = {"psi_some_us": 0, "steal_ticks": 0, "total_ticks": 1000}
    assert contention.judge(2.0, 1.9, 1, quiet, quiet) is None
    starved = contention.judge(2.0, 0.4, 2, quiet, quiet)
    assert starved is not None and "0.40 CPU-s in 2.00 s with 2 threads asked (10%" in starved
    busy = {"psi_some_us": 1_600_000, "steal_ticks": 100, "total_ticks": 1400}
    why = contention.judge(2.0, 1.2, 1, quiet, busy)
    assert why is not None and "pressure" in why and "80%" in why and "steal 25%" in why
    full = contention.judge(2.0, 1.9, 1, quiet, {**busy, "steal_ticks": 0})  # a busy host, the model fed in full
    assert full is None
    assert contention.judge(2.0, None, None, None, None) is None  # nothing reported: nothing claimed


def test_host_counters_are_read_from_this_kernel() -> None:
    h = contention.host_cpu()
    assert isinstance(h["total_ticks"], int) and h["total_ticks"] > 0
    if Path("/proc/pressure/cpu").exists():
        assert isinstance(h["psi_some_us"], int)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("contention"))


def test_a_real_run_beside_a_cpu_hog_is_contended(samples: dict[str, Path]) -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 60\nwhile time.time() < t: pass"])
            for _ in range(3)]
    try:
        r = run_spec(samples["onnx"], dynamic_dims={"batch": 1, "seq": 16}, min_s=1.0, min_runs=50, max_s=10.0)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    res = r.result
    assert res["status"] == "ok", res["message"]
    measure = [p for p in res["phases"] if p["name"] == "measure"]
    assert len(measure) == 1 and isinstance(measure[0]["contended"], str), measure


def _profiles(p95: float) -> dict[str, Profile]:
    return {"local": Profile(name="local", device_class="laptop", transport=TransportConfig(kind="local"),
                             ram_mib=4096, budgets={"latency_ms_p95": p95, "peak_rss_mib": 200.0})}


def test_gate_keeps_what_contention_cannot_have_caused() -> None:
    rng = np.random.default_rng(3)
    rec = make_record(samples=latency_samples(rng, 2000, 50.0, 0.05), peak_rss_mib=300.0, tainted=[TAINT])
    # p95 ~54 ms: under a 100 ms budget it passes although contended; over a 30 ms one the fail is inconclusive
    ok = evaluate([rec], load_policy(), profiles=_profiles(100.0)).cells[0]
    lat = [r for r in ok.rules if r.metric == "latency_ms_p95"][0]
    assert lat.outcome == "pass" and "cannot have caused" in lat.reason
    mem = [r for r in ok.rules if r.metric == "peak_rss_mib"][0]
    assert mem.outcome == "fail"  # 300 MiB over a 200 MiB budget: a hog does not grow the model's memory
    bad = evaluate([rec], load_policy(), profiles=_profiles(30.0)).cells[0]
    lat = [r for r in bad.rules if r.metric == "latency_ms_p95"][0]
    assert lat.outcome == "inconclusive" and "contended" in lat.reason and "would fail" in lat.reason


def test_a_contended_baseline_cannot_make_a_candidate_pass() -> None:
    rng = np.random.default_rng(4)
    base = make_record(run_id="base", samples=latency_samples(rng, 2000, 50.0, 0.05), tainted=[TAINT])
    cand = make_record(run_id="cand", samples=latency_samples(rng, 2000, 50.0, 0.05))
    rep = evaluate([cand], load_policy(), baseline=[base], run="cand", baseline_run="base")
    rel = [r for r in rep.cells[0].rules if r.kind == "relative" and r.metric == "latency_ms_p95"]
    assert rel and all(r.outcome == "inconclusive" and "baseline run tainted" in r.reason for r in rel)
    # measured in 3 launches each (run-level evidence: issue 12), slower than a contended baseline: a regression
    slow = in_launches(make_record(run_id="cand", samples=latency_samples(rng, 2000, 75.0, 0.05)), 3)
    rep = evaluate([slow], load_policy(), baseline=[in_launches(base, 3)], run="cand", baseline_run="base")
    rel = [r for r in rep.cells[0].rules if r.kind == "relative" and r.metric == "latency_ms_p95"]
    assert rel and all(r.outcome == "fail" for r in rel)  # slower than a contended baseline: a regression


def test_two_contended_runs_are_compared_like_for_like() -> None:
    rng = np.random.default_rng(6)
    base = make_record(run_id="base", samples=latency_samples(rng, 2000, 50.0, 0.05), tainted=[TAINT])
    cand = make_record(run_id="cand", samples=latency_samples(rng, 2000, 50.0, 0.05), tainted=[TAINT])
    rep = evaluate([cand], load_policy(), baseline=[base], run="cand", baseline_run="base")
    rel = [r for r in rep.cells[0].rules if r.kind == "relative" and r.metric == "latency_ms_p95"]
    assert rel and all(r.outcome == "pass" and "both runs contended" in r.reason for r in rel)
