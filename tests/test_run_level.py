"""Run-level evidence: a cell in N agent launches (`--processes N`), and relative rules judged on launches and
interleaved blocks, never on within-run samples alone (issue 12)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agents import runlevel as one
from fault_helpers import edgefarm, result_lines
from harness.gate import evaluate, load_policy
from harness.gate.model import RuleResult
from harness.records import Block, Pairing, Record
from synthetic import in_launches, latency_samples, make_record


def test_processes_measures_a_cell_in_independent_launches(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["onnx"]),
                   "--processes", "3", "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    (rec,) = result_lines(out)
    assert [b["index"] for b in rec["blocks"]] == [0, 1, 2] and {b["role"] for b in rec["blocks"]} == {"launch"}
    assert sum(b["n"] for b in rec["blocks"]) == len(rec["samples"]["latency_ms"])  # every sample kept
    launches = rec["provenance"]["launches"]
    assert len(launches) == 3 and all(x["status"] == "ok" for x in launches)
    # min_runs 20 shared out over 3 launches: each launch measured at least ceil(20 / 3) runs
    assert all(x["stopping"]["runs"] >= 7 for x in launches)
    peak = rec["metrics"]["peak_rss_mib"]
    assert peak["value"] == max(b["stats"]["peak_rss_mib"] for b in rec["blocks"])  # the stated rule: max
    assert peak["note"] == "max over 3 launches"
    load = rec["metrics"]["load_time_ms"]
    assert load["value"] == pytest.approx(sorted(b["stats"]["load_time_ms"] for b in rec["blocks"])[1])
    # each block's p50 is the agent's own statistic of that launch's samples
    i = 0
    for b in rec["blocks"]:
        xs = rec["samples"]["latency_ms"][i:i + b["n"]]
        i += b["n"]
        assert b["stats"]["latency_ms_p50"] == pytest.approx(one.block_statistic("quantile", xs, 0.5, 0.95))
    g = edgefarm(tmp_path, "gate", str(out), "--baseline", str(out), "--profiles", str(fast_profiles),
                 "--json", str(tmp_path / "g.json"))
    rel = [r for c in json.loads((tmp_path / "g.json").read_text())["cells"] for r in c["rules"]
           if r["kind"] == "relative" and r["outcome"] != "skipped"]
    assert rel and all(r["outcome"] == "pass" and "3+ launches per run" in r["reason"] for r in rel), g.stdout


def _rule(recs: list[Record], base: list[Record] | None, metric: str = "latency_ms_p50") -> RuleResult:
    rep = evaluate(recs, load_policy(), baseline=base)
    cell = next(c for c in rep.cells if c.rules and c.rules[0].rule != "reference")
    return next(r for r in cell.rules if r.metric == metric and r.kind == "relative")


def _paired(factor: float, noise: float, seed: int, k: int = 8) -> list[Record]:
    """A candidate and its baseline of one constructed ABBA session: the pair's blocks share a drift."""
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0.0, 0.15, k))  # large run-to-run drift, the same for both blocks of a pair
    cand = make_record(artifact="new", samples=latency_samples(rng, 400, 10.0 * factor, 0.05))
    base = make_record(artifact="old", samples=latency_samples(rng, 400, 10.0, 0.05))
    for rec, f, role in ((cand, factor, "candidate"), (base, 1.0, "baseline")):
        noisy = drift * np.exp(rng.normal(0.0, noise, k))
        rec.blocks = [Block(index=2 * j + (role == "baseline") ^ (j % 2), role=role, n=50,  # type: ignore[arg-type]
                            stats={"latency_ms_p50": 10.0 * f * noisy[j], "latency_ms_p95": 12.0 * f * noisy[j],
                                   "latency_ms_mean": 10.5 * f * noisy[j]}) for j in range(k)]
    cand.pairing = Pairing("s1", "candidate", base.artifact.sha256, "ABBA", k)
    base.pairing = Pairing("s1", "baseline", cand.artifact.sha256, "ABBA", k)
    return [cand, base]


def test_a_paired_block_regression_fails_and_a_paired_aa_does_not() -> None:
    slow = _rule(_paired(1.10, 0.02, 1), None)
    assert slow.outcome == "fail" and "adjacent A/B block pairs" in slow.reason
    assert slow.change_ci_pct is not None and slow.change_ci_pct[0] > 0 and 5 < (slow.change_pct or 0) < 15
    for seed in range(20):  # drift of 15% per block is shared by the pair and cancels
        assert _rule(_paired(1.0, 0.02, seed), None).outcome == "pass", seed


def test_the_reference_is_not_judged_on_its_own_budgets(tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p50"\nmax = 1\n[[relative]]\n'
                   'metric = "latency_ms_p50"\nmax_worse_pct = 5\n')
    rep = evaluate(_paired(1.0, 0.02, 3), load_policy(pol))
    ref = next(c for c in rep.cells if c.artifact == "old")
    assert [r.rule for r in ref.rules] == ["reference"] and ref.outcome == "skipped"
    new = next(c for c in rep.cells if c.artifact == "new")
    assert {r.kind for r in new.rules} == {"budget", "relative"}  # the candidate's budgets are judged


def test_between_runs_launch_spread_decides_not_the_samples() -> None:
    rng = np.random.default_rng(9)

    def run(median: float, k: int, spread: float) -> Record:
        return in_launches(make_record(samples=latency_samples(rng, 900, median, 0.05, 0.0)), k, rng, spread)

    # a 10% slowdown against a launch-to-launch spread of 1%: significant on the launches
    assert _rule([run(11.0, 3, 0.01)], [run(10.0, 3, 0.01)]).outcome == "fail"
    # the same 10% against a 15% spread between launches: past the threshold, not significant (never a fail)
    r = _rule([run(11.0, 3, 0.15)], [run(10.0, 3, 0.15)])
    assert r.outcome in ("inconclusive", "pass") and (r.outcome == "pass" or r.not_significant)
    if r.outcome == "inconclusive":
        assert "--processes 6" in r.reason


def test_the_device_profiles_run_spread_reaches_the_between_run_test(tmp_path: Path) -> None:
    """A profile's [run] run_spread_pct: a 10% slowdown with tight launches fails without it, and is not
    significant against a recorded 12% run-to-run spread; the reason names the spread."""
    from harness.profiles import load_all

    rng = np.random.default_rng(9)

    def run(median: float) -> Record:
        return in_launches(make_record(samples=latency_samples(rng, 900, median, 0.05, 0.0)), 3, rng, 0.01)

    cand, base = run(11.0), run(10.0)
    d = tmp_path / "profiles"
    d.mkdir()
    (d / f"{cand.device.name}.toml").write_text(
        f'schema = 1\nname = "{cand.device.name}"\nclass = "laptop"\nos = "linux"\nram_mib = 4096\n'
        '[transport]\nkind = "local"\n[run]\nrun_spread_pct = 12.0\n')
    profiles = load_all(d)

    def rule(prof: dict[str, object]) -> RuleResult:
        rep = evaluate([cand], load_policy(), baseline=[base], profiles=prof)  # type: ignore[arg-type]
        return next(r for c in rep.cells for r in c.rules if r.metric == "latency_ms_p50" and r.kind == "relative")

    assert rule({}).outcome == "fail"
    r = rule(profiles)
    assert r.outcome == "inconclusive" and r.not_significant
    assert "run-to-run spread of 12%" in r.reason


def test_without_run_level_evidence_a_change_is_never_significant() -> None:
    rng = np.random.default_rng(4)
    base = make_record(samples=latency_samples(rng, 2000, 10.0, 0.03, 0.0), load_time_ms=400.0)
    cand = make_record(run_id="c", samples=latency_samples(rng, 2000, 13.0, 0.03, 0.0), load_time_ms=800.0)
    r = _rule([cand], [base])  # within-run Mann-Whitney would call +30% on 2000 samples significant
    assert r.outcome == "inconclusive" and r.not_significant and not r.blocking and r.p_value is None
    assert "--processes 3" in r.reason and "--baseline-artifact" in r.reason
    pol = load_policy()
    pol.relative = [replace(pol.relative[0], metric="load_time_ms", max_worse_pct=10.0)]
    load = evaluate([cand], pol, baseline=[base]).cells[0].rules[0]
    assert load.outcome == "inconclusive" and load.p_value is None  # a single figure: no fake test
    # with launches, the same single figure is compared on its per-launch values
    b3, c3 = in_launches(base, 3), in_launches(cand, 3)
    for rec, v in ((b3, 400.0), (c3, 800.0)):
        for j, blk in enumerate(rec.blocks):
            blk.stats["load_time_ms"] = v * (1.0 + 0.01 * j)
    assert evaluate([c3], pol, baseline=[b3]).cells[0].rules[0].outcome == "fail"


def test_ratio_tests_cover_their_ratio() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        base = np.exp(rng.normal(0.0, 0.1, 8))
        cand = 1.1 * base * np.exp(rng.normal(0.0, 0.05, 8))
        t = one.paired_ratio(list(cand), list(base), 0.95)
        assert t is not None and t.ci[0] <= t.ratio <= t.ci[1]
        covered += t.ci[0] <= 1.1 <= t.ci[1]
    assert 0.92 <= covered / 400 <= 0.98  # a 95% interval covers the true ratio ~95% of the time
    assert one.paired_ratio([1.0], [1.0], 0.95) is None and one.between_ratio([1.0, 2.0], [1.0], 0.95) is None
    same = one.between_ratio([2.0, 2.0], [1.0, 1.0], 0.95)
    assert same is not None and same.ratio == pytest.approx(2.0) and same.p == 0.0
    assert one.paired_ratio([1.0, -1.0, math.nan, 2.0], [1.0, 1.0, 1.0, 1.0], 0.95) is not None


def test_a_recorded_run_to_run_spread_is_what_a_between_run_change_must_clear() -> None:
    """Launches of one run share a host's slow drift: a run-level offset of sd s moves all of them. With the
    device's recorded spread the Welch test holds its false-positive rate on such runs; without it, it fails
    far more A/A pairs than its level."""
    rng = random.Random(7)
    s = math.log1p(0.12)  # this VM: whole runs at 11 or 15 ms
    false_plain = false_spread = 0
    trials = 400
    for _ in range(trials):
        run_a, run_b = rng.gauss(0.0, s), rng.gauss(0.0, s)
        a = [math.exp(run_a + rng.gauss(0.0, 0.01)) for _ in range(3)]
        b = [math.exp(run_b + rng.gauss(0.0, 0.01)) for _ in range(3)]
        plain, with_spread = one.between_ratio(b, a, 0.95), one.between_ratio(b, a, 0.95, s)
        assert plain is not None and with_spread is not None
        assert with_spread.ratio == pytest.approx(plain.ratio)  # the estimate is the same; its interval is wider
        assert with_spread.ci[1] / with_spread.ci[0] > plain.ci[1] / plain.ci[0]
        false_plain += plain.p < 0.05
        false_spread += with_spread.p < 0.05
    assert false_plain / trials > 0.5  # launches alone: most A/A pairs "significant"
    assert false_spread / trials <= 0.08  # ~5% with the spread
    big = one.between_ratio([math.exp(s * 5)] * 3, [1.0, 1.0, 1.0], 0.95, s)  # far past the spread: still found
    assert big is not None and big.p < 0.05


def test_a_record_with_blocks_and_pairing_round_trips(tmp_path: Path) -> None:
    recs = _paired(1.0, 0.02, 5)
    from harness.records import JsonlWriter, load_run

    with JsonlWriter(tmp_path / "results.jsonl") as w:
        for r in recs:
            w.write(r)
    back = load_run(tmp_path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    bad = recs[0].to_dict()
    bad["blocks"][0]["role"] = "other"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.jsonl").write_text(json.dumps(bad) + "\n")
    from harness.errors import UserError

    with pytest.raises(UserError, match=r"blocks\[0\]\.role"):
        load_run(tmp_path / "bad")
    assert replace(recs[0]).pairing is recs[0].pairing
