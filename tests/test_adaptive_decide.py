"""`--adaptive decide`: the sequential rule (agents/sequential.py) on simulated samples whose true quantile sits
at, near and far from the budget (error rate against the stated bound, many seeds), the loop on a simulated
clock, the gate's reading of a sequential record, and the real agent through `edgefarm run` + `edgefarm gate`."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agents import sequential as sq
from agents.loops import decide_loop
from agents.spec import SpecError, parse_spec
from agents.summary import percentile_metric

EDGEFARM = [sys.executable, "-m", "harness.cli"]
SIGMA = 0.3
TRUE_P95 = math.exp(1.6448536269514722 * SIGMA)  # of lognormal(0, SIGMA)
CONF, LOOKS, GROWTH = 0.95, 4, 2.0


def p95_budget(limit: float) -> sq.Gated:
    return sq.Gated("latency_ms_p95", "latency_ms", "quantile", 0.95, limit, True)


def simulate(limit_over_truth: float, seeds: int, looks: int = LOOKS, conf_per_look: float | None = None,
             ) -> tuple[dict[str, int], dict[str, int], list[tuple[str, str]]]:
    """Replay the rule on `seeds` iid lognormal series; (sequential outcomes, fixed-count outcomes at the last
    look's n, (sequential side, side of the record's own interval) for every decided run)."""
    gated = [p95_budget(TRUE_P95 * limit_over_truth)]
    first = sq.first_look(gated, CONF, looks, 1)
    n_max = sq.schedule(first, looks, GROWTH, 10 ** 9)[-1]
    seq: dict[str, int] = {"pass": 0, "fail": 0, "open": 0}
    fixed: dict[str, int] = {"pass": 0, "fail": 0, "open": 0}
    agree: list[tuple[str, str]] = []
    for seed in range(seeds):
        xs = np.exp(np.random.default_rng(seed).normal(0.0, SIGMA, n_max)).tolist()
        if conf_per_look is None:
            reason, n, last = sq.replay({"latency_ms": xs}, gated, CONF, looks, GROWTH)
        else:  # the naive rule: every look at the full confidence ("peeking")
            reason, n, last = "open", n_max, []
            for m in sq.schedule(first, looks, GROWTH, n_max):
                last = sq.judge({"latency_ms": xs[:m]}, gated, conf_per_look)
                if sq.decided(last):
                    reason, n = "decided", m
                    break
        seq[last[0]["side"] if reason == "decided" else "open"] += 1
        fixed[sq.judge({"latency_ms": xs}, gated, CONF)[0]["side"]] += 1
        if reason == "decided":
            own = percentile_metric([round(x, 6) for x in xs[:n]], 95, "ms", CONF)["ci"]
            agree.append((last[0]["side"], "pass" if own[1] <= gated[0].limit else
                          "fail" if own[0] > gated[0].limit else "open"))
    return seq, fixed, agree


def test_schedule_and_per_look_confidence() -> None:
    g = [p95_budget(1.0)]
    assert sq.look_confidence(0.95, 8) == pytest.approx(0.99375)
    first = sq.first_look(g, 0.95, 8, 1)
    assert first == 113  # the p95 at 99.375%: 0.95^n <= 0.003125
    assert sq.schedule(first, 8, 2.0, 10 ** 9) == [113 * 2 ** k for k in range(8)]
    assert sq.schedule(first, 8, 2.0, 1000) == [113, 226, 452, 904, 1000]  # capped: fewer looks, never more
    assert sq.schedule(10, 5, 1.05, 10 ** 9) == [10, 11, 12, 13, 14]  # strictly increasing
    assert sq.first_look(g, 0.95, 8, 500) == 500  # min_runs stays a lower bound
    per_token = [sq.Gated("itl_ms_p95", "itl_ms", "quantile", 0.95, 1.0, True, per_run=63)]
    assert sq.first_look(per_token, 0.95, 8, 1) == 8  # 113 tokens come in 2 requests; 8 is the floor


@pytest.mark.parametrize(("ratio", "wrong"), [(1.0, "fail"), (0.97, "pass"), (1.03, "fail")])
def test_wrong_decision_rate_stays_within_the_stated_bound(ratio: float, wrong: str) -> None:
    """Budget at, just above and just below the true p95: a wrong verdict at most (1 - c) / 2 of the time, as
    for one fixed-count interval; and a decided run's own 95% interval gives the same verdict."""
    seeds = 400
    seq, fixed, agree = simulate(ratio, seeds)
    bound = (1.0 - CONF) / 2.0
    assert seq[wrong] / seeds <= bound, (seq, fixed)
    assert all(a == b for a, b in agree) and len(agree) == seq["pass"] + seq["fail"]
    print(f"\nbudget = {ratio} x true p95: sequential {seq}, fixed {fixed}")


def test_peeking_without_alpha_spending_exceeds_the_bound() -> None:
    """The test has teeth: the same looks each at the full 95% decide wrongly more often than the bound
    (the error a naive `stop when it looks decided` rule spends at every look)."""
    seeds = 400
    naive, _, _ = simulate(1.0, seeds, looks=8, conf_per_look=CONF)
    spent, _, _ = simulate(1.0, seeds, looks=8)
    assert naive["fail"] / seeds > (1.0 - CONF) / 2.0 >= spent["fail"] / seeds, (naive, spent)


class SimClock:
    """perf_counter for the loop: each call of `run` advances it by one drawn latency (seconds)."""

    def __init__(self, draw: Callable[[], float]) -> None:
        self.t, self.draw = 0.0, draw

    def __call__(self) -> float:
        return self.t

    def run(self) -> None:
        self.t += self.draw()


def lognormal_clock(seed: int) -> SimClock:
    rng = random.Random(seed)
    return SimClock(lambda: 0.001 * math.exp(rng.gauss(0.0, SIGMA)))  # ms values: exp(N(0, SIGMA))


def loop(limit: float, max_s: float = 1e6, lower: bool = True, seed: int = 3) -> tuple[list[float], dict[str, object]]:
    clk = lognormal_clock(seed)
    g = [sq.Gated("latency_ms_p95", "latency_ms", "quantile", 0.95, limit, lower)]
    lat, _, stopping = decide_loop(clk.run, 1, 0.0, max_s, g, CONF, 8, 2.0, dict, clock=clk)
    return lat, stopping


def test_far_inside_and_far_past_the_budget_stop_at_the_first_look() -> None:
    for limit, side in ((3.0 * TRUE_P95, "pass"), (TRUE_P95 / 3.0, "fail")):
        lat, s = loop(limit)
        assert s["stop_reason"] == "decided" and len(lat) == 113 == s["runs"], s
        assert s["looks_at"] == [113] and s["rule"] == sq.RULE and s["look_confidence"] == pytest.approx(0.99375)
        gated = s["gated"]
        assert isinstance(gated, list) and gated[0]["side"] == side and gated[0]["n"] == 113
        m = percentile_metric(lat, 95, "ms", CONF)  # the record's own interval: the same side
        assert (m["ci"][1] <= limit) if side == "pass" else (m["ci"][0] > limit)


def test_at_the_budget_it_takes_more_looks_and_says_so() -> None:
    lat, s = loop(TRUE_P95)
    looks_at = s["looks_at"]
    assert isinstance(looks_at, list) and len(looks_at) >= 2 and len(lat) == looks_at[-1]
    assert looks_at == s["planned_looks"][:len(looks_at)]  # type: ignore[index]
    assert s["stop_reason"] in ("decided", "undecided_at_last_look")
    if s["stop_reason"] == "undecided_at_last_look":
        assert len(looks_at) == 8 and s["gated"][0]["side"] == "open"  # type: ignore[index]


def test_max_s_takes_the_final_look() -> None:
    lat, s = loop(TRUE_P95, max_s=0.5)  # ~480 runs of ~1 ms: looks at 113, 226, 452, then the end
    assert s["stop_reason"] in ("max_s", "decided")
    looks_at = s["looks_at"]
    assert isinstance(looks_at, list) and looks_at[-1] == len(lat) and len(looks_at) <= 8
    if s["stop_reason"] == "max_s":
        assert sum(lat) / 1e3 >= 0.5


def test_spec_validation_for_decide() -> None:
    ok = '{"metric": "latency_ms_p95", "p": 0.95, "limit": 5}'
    spec = parse_spec('{"artifact": "/x", "adaptive": {"mode": "decide", "gated": [%s]}}' % ok)
    assert spec.adaptive is not None and spec.adaptive.gated[0].limit == 5.0
    assert parse_spec(json.dumps(spec.to_dict())) == spec  # what the controller sends, the agent echoes
    for adaptive, word in (('{"mode": "decide"}', "gated: mode decide needs"),
                           ('{"mode": "fast"}', "mode: 'fast' is not one of"),
                           ('{"mode": "decide", "looks": 0, "gated": [%s]}' % ok, "looks"),
                           ('{"mode": "decide", "growth": 1.0, "gated": [%s]}' % ok, "growth"),
                           ('{"mode": "decide", "gated": [{"p": 1.0}]}', r"gated\[0\].p"),
                           ('{"mode": "decide", "gated": [{"kind": "max"}]}', r"gated\[0\].kind"),
                           ('{"mode": "decide", "gated": [{"limit": "5"}]}', r"gated\[0\].limit: expected a finite"),
                           ('{"mode": "decide", "gated": [{"limt": 5}]}', "unknown key"),
                           ('{"mode": "decide", "gated": [5]}', "gated: expected a list of objects")):
        with pytest.raises(SpecError, match=word):
            parse_spec('{"artifact": "/x", "adaptive": %s}' % adaptive)


def test_real_agent_far_inside_its_budget_stops_early_and_the_gate_passes_it(
        fast_profiles: Path, tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmax = 1000.0\n')
    out = tmp_path / "run"
    r = subprocess.run([*EDGEFARM, "run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["onnx"]),
                        "--adaptive", "decide", "--policy", str(policy), "--max-s", "30", "--out", str(out), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    st = rec["provenance"]["stopping"]
    assert st["mode"] == "decide" and st["stop_reason"] == "decided", st
    assert st["runs"] == len(rec["samples"]["latency_ms"]) == st["looks_at"][-1]
    assert st["runs"] <= 904, st  # a few looks at most (the first p95 claim at 99.375% needs 113)
    assert [g["metric"] for g in st["gated"]] == ["latency_ms_p95"] and st["gated"][0]["side"] == "pass"
    assert rec["workload"]["adaptive"]["gated"][0]["limit"] == 1000.0
    verdict = tmp_path / "gate.json"
    g = subprocess.run([*EDGEFARM, "gate", str(out), "--policy", str(policy), "--profiles", str(fast_profiles),
                        "--json", str(verdict)], capture_output=True, text=True, timeout=300)
    assert g.returncode == 0, g.stdout + g.stderr
    rule = next(r for r in json.loads(verdict.read_text())["cells"][0]["rules"] if r["metric"] == "latency_ms_p95")
    assert rule["outcome"] == "pass" and "sequential run" in rule["reason"], rule
    # judged on the final look's interval (99.375%), which holds the record's own 95% interval
    own = rec["metrics"]["latency_ms_p95"]["ci"]
    assert rule["ci"] == st["gated"][0]["ci"] and rule["ci"][0] <= own[0] <= own[1] <= rule["ci"][1]
