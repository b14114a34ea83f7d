"""Every rule kind and every outcome, on the recorded result fixtures (tests/fixtures/results/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.gate import Cell, GateReport, Policy, evaluate, load_policy
from harness.gate.model import RuleResult
from harness.provenance import MemoryCapInfo
from synthetic import in_launches, latency_samples, make_record
from harness.profiles import Profile, TransportConfig
from harness.records import Metric, Record, load_run

RESULTS = Path(__file__).parent / "fixtures" / "results"


def run(name: str) -> list[Record]:
    return load_run(RESULTS / name)


def profile(name: str, cls: str = "laptop", ram: int = 4096, **budgets: float) -> Profile:
    return Profile(name=name, device_class=cls, transport=TransportConfig(kind="local"),  # type: ignore[arg-type]
                   ram_mib=ram, budgets=dict(budgets))


PROFILES = {
    "local": profile("local", peak_rss_mib=1024, latency_ms_p95=250, memory_headroom_pct=50, decode_tokens_per_s=5),
    "pixel7": profile("pixel7", "phone", 8192, peak_rss_mib=1500, latency_ms_p95=120),
    "rpi5": profile("rpi5", "board", 8192, peak_rss_mib=2048, latency_ms_p95=400),
}


def policy(tmp_path: Path, text: str = "") -> Policy:
    p = tmp_path / "policy.toml"
    p.write_text("schema = 1\n" + text)
    return load_policy(p)


def cell(rep: GateReport, device: str, artifact: str) -> Cell:
    c = rep.cell(device, artifact)
    assert c is not None, (device, artifact)
    return c


def rule(c: Cell, prefix: str) -> RuleResult:
    hits = [r for r in c.rules if r.rule.startswith(prefix)]
    assert len(hits) == 1, [r.rule for r in c.rules]
    return hits[0]


@pytest.fixture(scope="module")
def mixed() -> GateReport:
    return evaluate(run("mixed"), load_policy(), baseline=run("baseline"), profiles=PROFILES)


# --- absolute budgets ---------------------------------------------------------------------------------------

def test_budget_pass_uses_the_upper_confidence_bound(mixed: GateReport) -> None:
    r = rule(cell(mixed, "local", "student-int8"), "latency_ms_p95 <=")
    assert r.outcome == "pass" and r.source == "profile local"
    assert r.ci is not None and r.bound == r.ci[1] and r.value is not None and r.bound > r.value


def test_budget_straddled_by_its_interval_is_inconclusive_with_samples_needed(mixed: GateReport) -> None:
    r = rule(cell(mixed, "pixel7", "student-big"), "latency_ms_p95 <=")
    assert r.outcome == "inconclusive" and r.blocking
    assert r.ci is not None and r.ci[0] <= 120 <= r.ci[1]
    assert r.more_samples is not None and r.more_samples > 0 and "more samples" in r.reason


def test_too_few_samples_for_a_percentile_is_inconclusive_and_says_how_many(mixed: GateReport) -> None:
    r = rule(cell(mixed, "rpi5", "student-big"), "latency_ms_p95 <=")
    assert r.outcome == "inconclusive" and "insufficient samples" in r.reason
    assert r.more_samples is not None and 12 + r.more_samples >= 59


def test_budget_fail_needs_the_whole_interval_past_the_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    recs = [make_record(samples=latency_samples(rng, 800, 130.0, 0.05))]
    rep = evaluate(recs, policy(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmax = 120\n'))
    r = rep.cells[0].rules[0]
    assert r.outcome == "fail" and r.ci is not None and r.bound == r.ci[0] and r.ci[0] > 120
    assert rep.verdict == "fail" and rep.exit_code == 1


def test_interval_computed_from_raw_samples_when_the_record_has_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rec = make_record(samples=latency_samples(rng, 500, 100.0, 0.05))
    del rec.metrics["latency_ms_p95"]  # only raw samples: the gate computes figure and interval itself
    rep = evaluate([rec], policy(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmax = 200\n'))
    r = rep.cells[0].rules[0]
    assert r.outcome == "pass" and r.ci is not None and r.value is not None and r.ci[0] < r.value < r.ci[1]


def test_single_figure_budgets_and_higher_is_better(tmp_path: Path) -> None:
    rec = make_record(samples=None, peak_rss_mib=900.0,
                      extra_metrics={"decode_tokens_per_s": Metric(4.0, "tok/s")})
    rep = evaluate([rec], policy(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 1000\n'
                                           '[[budget]]\nmetric = "decode_tokens_per_s"\nmin = 5\n'))
    outs = {r.metric: r.outcome for r in rep.cells[0].rules}
    assert outs == {"peak_rss_mib": "pass", "decode_tokens_per_s": "fail"}


def test_memory_headroom_is_a_share_of_device_ram(tmp_path: Path) -> None:
    rec = make_record(samples=None, peak_rss_mib=3000.0, ram_mib=4096)
    del rec.metrics["memory_headroom_pct"]  # computed from peak_rss_mib and the device's RAM
    rep = evaluate([rec], policy(tmp_path, '[[budget]]\nmetric = "memory_headroom_pct"\nmin = 30\n'))
    r = rep.cells[0].rules[0]
    assert r.outcome == "fail" and r.value == pytest.approx(100 * (4096 - 3000) / 4096)
    rec2 = make_record(samples=None, peak_rss_mib=3000.0, ram_mib=None)
    r2 = evaluate([rec2], policy(tmp_path, '[[budget]]\nmetric = "memory_headroom_pct"\nmin = 30\n')).cells[0].rules[0]
    assert r2.outcome == "skipped" and "RAM unknown" in r2.reason


def test_unmeasured_metric_is_skipped_visibly(mixed: GateReport) -> None:
    r = rule(cell(mixed, "local", "student-int8"), "decode_tokens_per_s >=")
    assert r.outcome == "skipped" and "not measured" in r.reason and not r.blocking


def test_profile_budgets_can_be_turned_off(tmp_path: Path) -> None:
    rep = evaluate(run("candidate_same"), policy(tmp_path, "profile_budgets = false\n"), profiles=PROFILES)
    assert all(r.kind != "budget" for c in rep.cells for r in c.rules)


# --- run outcomes -------------------------------------------------------------------------------------------

def test_oom_against_a_memory_budget_is_a_fail_with_the_memory_reached(mixed: GateReport) -> None:
    c = cell(mixed, "local", "student-fp16")
    assert c.status == "oom" and c.outcome == "fail"
    r = rule(c, "peak_rss_mib <=")
    assert r.outcome == "fail" and r.error_kind == "oom" and r.value == 3071.5 and "3072 MiB" in r.reason
    assert rule(c, "memory_headroom_pct").outcome == "fail"


def test_oom_without_a_memory_budget_is_an_error(tmp_path: Path) -> None:
    rec = make_record(status="oom", samples=None, peak_rss_mib=None, message="bad_alloc")
    rep = evaluate([rec], policy(tmp_path))
    assert rep.cells[0].outcome == "error" and rep.cells[0].rules[0].error_kind == "oom"


@pytest.mark.parametrize("device,artifact,kind", [
    ("pixel7", "student-int8", "device_lost"), ("rpi5", "student-int8", "crashed"),
    ("rpi5", "student-fp16", "timeout")])
def test_errors_keep_their_kind(mixed: GateReport, device: str, artifact: str, kind: str) -> None:
    c = cell(mixed, device, artifact)
    assert c.outcome == "error" and [r.error_kind for r in c.rules] == [kind] and c.rules[0].blocking


def test_crash_reason_names_the_signal(mixed: GateReport) -> None:
    assert "signal 11" in cell(mixed, "rpi5", "student-int8").rules[0].reason


def test_skipped_run(mixed: GateReport) -> None:
    c = cell(mixed, "local", "tiny-llm")
    assert c.outcome == "skipped" and "not installed" in c.rules[0].reason and not c.rules[0].blocking


def test_tainted_run_makes_its_rules_inconclusive(mixed: GateReport) -> None:
    c = cell(mixed, "pixel7", "student-fp16")
    assert c.tainted and c.outcome == "inconclusive"
    judged = [r for r in c.rules if r.outcome != "skipped"]
    assert judged and all(r.outcome == "inconclusive" and "throttling" in r.reason for r in judged)
    assert all(r.blocking for r in judged)


def test_overall_verdict_and_exit_code(mixed: GateReport) -> None:
    # pixel7 x student-int8 is device_lost: the verdict is incomplete, which exit 3 says over the fail's 1
    assert mixed.verdict == "fail" and mixed.exit_code == 3
    assert mixed.counts["fail"] == 2 and mixed.counts["error"] == 3


# --- relative rules -----------------------------------------------------------------------------------------

def test_aa_rerun_passes(tmp_path: Path) -> None:
    rep = evaluate(run("candidate_same"), load_policy(), baseline=run("baseline"), profiles=PROFILES)
    assert rep.verdict == "pass" and rep.exit_code == 0
    rel = [r for c in rep.cells for r in c.rules if r.kind == "relative" and r.outcome != "skipped"]
    assert len(rel) >= 20 and all(r.outcome == "pass" for r in rel)


def test_fifteen_percent_slower_fails_significantly() -> None:
    rep = evaluate(run("candidate_slow"), load_policy(), baseline=run("baseline"))
    for c in rep.cells:  # both runs measured in 3 launches: a between-run test on the launches' p95
        r = rule(c, "latency_ms_p95 vs baseline")
        assert r.outcome == "fail" and r.p_value is not None and r.p_value < 0.05 and "3+ launches" in r.reason
        assert r.change_pct is not None and 8 < r.change_pct < 25
        assert r.change_ci_pct is not None and r.change_ci_pct[0] > 5
    assert rep.exit_code == 1


def test_higher_is_better_relative_rule() -> None:
    rep = evaluate(run("candidate_slow"), load_policy(), baseline=run("baseline"))
    r = rule(cell(rep, "local", "tiny-llm"), "decode_tokens_per_s vs baseline")
    assert r.outcome == "fail" and r.change_pct is not None and r.change_pct > 5


def test_past_threshold_but_not_significant_is_inconclusive_and_not_blocking_by_default(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = [make_record(samples=latency_samples(rng, 40, 100.0, 0.25, outlier_rate=0.0))]
    cand = [make_record(run_id="c", samples=latency_samples(rng, 40, 108.0, 0.25, outlier_rate=0.0))]
    text = '[[relative]]\nmetric = "latency_ms_p50"\nmax_worse_pct = 2\n'
    rep = evaluate(cand, policy(tmp_path, text), baseline=base)
    r = rep.cells[0].rules[0]
    assert r.outcome == "inconclusive" and r.not_significant and not r.blocking and rep.exit_code == 0
    assert "not significant" in r.reason and "--processes 3" in r.reason and "--baseline-artifact" in r.reason
    strict = evaluate(cand, policy(tmp_path, 'not_significant = "fail"\n' + text), baseline=base)
    assert strict.cells[0].rules[0].blocking and strict.exit_code == 1


def test_relative_rule_without_baseline_record_is_skipped(mixed: GateReport) -> None:
    r = rule(cell(mixed, "pixel7", "student-big"), "latency_ms_p95 vs baseline")
    assert r.outcome == "skipped" and "no baseline" in r.reason


def test_no_baseline_run_means_relative_rules_are_not_judged_and_said_so() -> None:
    rep = evaluate(run("candidate_slow"), load_policy())
    assert all(r.kind != "relative" for c in rep.cells for r in c.rules)
    assert any("no baseline" in n for n in rep.notes)


def test_single_figure_relative_rule(tmp_path: Path) -> None:
    base = [make_record(samples=None, peak_rss_mib=300.0)]
    cand = [make_record(run_id="c", samples=None, peak_rss_mib=360.0)]
    rep = evaluate(cand, policy(tmp_path, '[[relative]]\nmetric = "peak_rss_mib"\nmax_worse_pct = 10\n'),
                   baseline=base)
    r = rep.cells[0].rules[0]
    assert r.outcome == "fail" and r.change_pct == pytest.approx(20.0)


def test_scoping_by_device_class_and_artifact(tmp_path: Path) -> None:
    text = ('[[budget]]\nmetric = "peak_rss_mib"\nmax = 1\ndevice_classes = ["phone"]\n'
            '[[budget]]\nmetric = "peak_rss_mib"\nmax = 2\nartifacts = ["student-fp16"]\n'
            '[[budget]]\nmetric = "peak_rss_mib"\nmax = 3\ndevices = ["rpi5"]\n')
    rep = evaluate(run("baseline"), policy(tmp_path, text), profiles=PROFILES)
    for c in rep.cells:
        got = sorted(r.threshold or 0 for r in c.rules if r.source.startswith("policy"))
        want = sorted(([1.0] if c.device_class == "phone" else []) + ([2.0] if c.artifact == "student-fp16" else [])
                      + ([3.0] if c.device == "rpi5" else []))
        assert got == want, (c.device, c.artifact)


def test_inconclusive_can_be_configured_to_pass(tmp_path: Path) -> None:
    recs = [r for r in run("mixed") if r.device.name == "pixel7" and r.artifact.name in ("student-big", "student-fp16")]
    assert evaluate(recs, load_policy(), profiles=PROFILES).exit_code == 1
    rep = evaluate(recs, policy(tmp_path, 'inconclusive = "pass"\n'), profiles=PROFILES)
    assert rep.verdict == "inconclusive" and rep.exit_code == 0


def test_errors_can_be_configured_to_pass_but_never_a_lost_device(tmp_path: Path) -> None:
    crashed = [r for r in run("mixed") if r.status == "crashed"]
    assert evaluate(crashed, load_policy()).exit_code == 1
    rep = evaluate(crashed, policy(tmp_path, 'errors = "pass"\n'))
    assert rep.exit_code == 0 and rep.verdict == "error"  # tolerated, never called PASS
    lost = [r for r in run("mixed") if r.status in ("device_lost", "crashed")]
    rep = evaluate(lost, policy(tmp_path, 'errors = "pass"\n'))
    assert rep.exit_code == 3 and rep.verdict == "error"


def test_nothing_judged_is_not_a_pass(tmp_path: Path) -> None:
    recs = [r for r in run("mixed") if r.status == "skipped"]
    rep = evaluate(recs, load_policy())
    assert rep.verdict == "skipped" and rep.exit_code == 1


def test_duplicate_records_are_said_and_the_latest_is_judged() -> None:
    a = make_record(samples=None, finished_at="2026-11-23T18:01:00Z", peak_rss_mib=100.0)
    b = make_record(samples=None, finished_at="2026-11-23T18:05:00Z", peak_rss_mib=200.0)
    rep = evaluate([a, b], load_policy())
    assert any("more than one record" in n for n in rep.notes)
    assert rep.cells[0].record is b


def test_no_records_is_a_user_error() -> None:
    with pytest.raises(UserError):
        evaluate([], load_policy())


def test_evaluation_is_deterministic() -> None:
    a = evaluate(run("candidate_same"), load_policy(), baseline=run("baseline"))
    b = evaluate(run("candidate_same"), load_policy(), baseline=run("baseline"))
    assert [c.to_dict()["rules"] for c in a.cells] == [c.to_dict()["rules"] for c in b.cells]


def test_a_nan_in_a_record_is_inconclusive_not_a_crash(tmp_path: Path) -> None:
    rec = make_record(samples=None, peak_rss_mib=float("nan"))
    rep = evaluate([rec], policy(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 100\n'))
    r = rep.cells[0].rules[0]
    assert r.outcome == "inconclusive" and "not a finite number" in r.reason
    from harness.reports import render
    for fmt in ("json", "junit", "md", "html"):
        render(rep, fmt)  # type: ignore[arg-type]


def test_aa_replicates_do_not_flap_and_a_slowdown_is_caught() -> None:
    # a small, seeded version of benchmarks/gate_aa.py: a statistical regression test of the default policy
    rng = np.random.default_rng(2026)
    pol = load_policy()
    for _ in range(25):
        n, sigma, med = int(rng.integers(300, 1200)), float(rng.uniform(0.03, 0.15)), float(rng.uniform(5, 200))
        base = [in_launches(make_record(samples=latency_samples(rng, n, med, sigma, 0.01, 5.0)), 3, rng, 0.01)]
        same = [in_launches(make_record(run_id="c", samples=latency_samples(rng, n, med, sigma, 0.01, 5.0)), 3,
                            rng, 0.01)]
        slow = [in_launches(make_record(run_id="c", samples=latency_samples(rng, n, med * 1.15, sigma, 0.01, 5.0)),
                            3, rng, 0.01)]
        assert evaluate(same, pol, baseline=base).exit_code == 0
        assert evaluate(slow, pol, baseline=base).verdict == "fail"


def test_a_device_without_a_profile_is_said() -> None:
    rec = make_record(device="laptop9", samples=None)
    rep = evaluate([rec], load_policy(), profiles=PROFILES)
    assert any("no device profile named 'laptop9'" in n for n in rep.cells[0].notes)
    rep = evaluate([rec], load_policy())
    assert any("no device profiles given" in n for n in rep.notes)


def test_oom_reads_the_runners_memory_cap_provenance(tmp_path: Path) -> None:
    # as harness/runner.py writes it when the cgroup cap OOM-kills the model process
    rec = make_record(status="oom", samples=None, peak_rss_mib=None, message="OOM-killed")
    rec.provenance.memory_cap = MemoryCapInfo(kind="cgroup", limit_mib=3072, group_peak_mib=3071.9)
    rep = evaluate([rec], policy(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 1024\n'))
    r = rep.cells[0].rules[0]
    assert r.outcome == "fail" and r.value == 3071.9
    assert "3072 MiB cgroup memory cap" in r.reason and "memory reached 3072 MiB" in r.reason


def test_an_undecided_rule_names_the_flag_or_key_to_raise_and_to_what() -> None:
    rng = np.random.default_rng(5)
    few = make_record(samples=latency_samples(rng, 40, 50.0, 0.05))  # p95 needs 55 samples at 95%
    rep = evaluate([few], load_policy(), profiles={"local": profile("local", latency_ms_p95=250)})
    r = rule(cell(rep, "local", "student-int8"), "latency_ms_p95")
    assert r.outcome == "inconclusive" and r.more_samples is not None
    assert f"rerun with `edgefarm run --min-runs {40 + r.more_samples}`" in r.reason, r.reason
