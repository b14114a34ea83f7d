"""`edgefarm compare`: severity order, significance only where a test ran, p never "0", exit 1 on a regression."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.gate.compare import SEVERITY, compare, compare_exit, fmt_p
from synthetic import latency_samples, make_record
from harness.records import JsonlWriter, Metric, Record

RESULTS = Path(__file__).parent / "fixtures" / "results"


def _write(path: Path, recs: list[Record]) -> Path:
    with JsonlWriter(path / "results.jsonl") as w:
        for r in recs:
            w.write(r)
    return path


def test_fmt_p_never_prints_zero() -> None:
    assert fmt_p(0.0) == "< 1e-6" and fmt_p(3e-9) == "< 1e-6"
    assert fmt_p(0.012) == "0.012" and fmt_p(None) == "no test"


def test_slow_candidate_exits_1_rows_sorted_by_severity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_slow")]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^\d+ regression\(s\) past 5%", out, re.M)
    table = out.split("device x artifact: metric", 1)[1].split("\n\nchange:", 1)[0]
    rows = [ln for ln in table.splitlines() if re.match(r"^[+\-~?x ] ", ln) and " x " in ln]
    marks = [ln[0] for ln in rows]
    order = {"x": 0, "+": 1, "~": 2, "?": 3, "-": 5, " ": 7}
    # status changes / regressions first, within-threshold rows last
    assert marks and marks[0] in "x+" and [order[m] for m in marks if m in "+~?"] == sorted(
        order[m] for m in marks if m in "+~?")
    assert not re.search(r"\s0\s+\S+ x \S+:", out), "a p-value printed as 0"
    assert "< 1e-6" in out
    # key figures of B beside A's
    assert "key figures of B (base = A)" in out and "(base 88.22 [86.97, 89.52], +15.4%)" in out


def test_identical_runs_exit_0_and_threshold_is_respected(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_same")]) == 0
    assert "no significant regression past 5%" in capsys.readouterr().out
    # the slow candidate is ~15% slower: a 25% threshold does not call it a regression
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_slow"), "--threshold", "25"]) == 0
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_slow"), "--threshold", "0"]) == 2


def test_single_figures_are_never_significant_without_a_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    same = latency_samples(rng, 600, 20.0, 0.05)
    a = make_record(samples=same, load_time_ms=400.0)
    b = make_record(samples=list(same), load_time_ms=900.0)  # 2.25x slower load, one figure per run
    for rec, first, tput in ((a, 30.0, 50.0), (b, 90.0, 20.0)):
        rec.metrics["first_inference_ms"] = Metric(first, "ms", 1)
        rec.metrics["throughput_per_s"] = Metric(tput, "1/s", 1)
    rows = {r.metric: r for r in compare([a], [b])}
    for m in ("load_time_ms", "first_inference_ms", "throughput_per_s"):
        r = rows[m]
        assert r.outcome == "worse_untested" and r.mark == "?" and r.p_value is None and r.significant is None
        assert "no test" in r.hint
    assert rows["latency_ms_p95"].mark == "" and rows["latency_ms_p95"].p_value is not None
    assert compare_exit(list(rows.values())) == 0


def test_a_cell_that_stopped_being_ok_is_the_most_severe_and_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a = [make_record(artifact="m1", samples=latency_samples(rng, 300, 10.0)),
         make_record(artifact="m2", samples=latency_samples(rng, 300, 10.0))]
    b = [make_record(artifact="m1", samples=latency_samples(rng, 300, 10.0)),
         make_record(artifact="m2", status="oom", samples=None, message="killed")]
    rows = compare(a, b)
    assert rows[0].outcome == "status" and rows[0].metric == "status ok -> oom"
    assert [r.severity for r in rows] == sorted(r.severity for r in rows)
    assert compare_exit(rows) == 1 and SEVERITY["status"] == 0


def test_not_significant_names_the_flag_that_decides(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a = make_record(samples=latency_samples(rng, 30, 20.0, 0.5))
    b = make_record(samples=latency_samples(rng, 30, 22.0, 0.5))  # +10% in truth, too few samples to be sure
    row = next(r for r in compare([a], [b]) if r.metric == "latency_ms_p50")
    assert row.outcome == "worse_not_significant" and row.mark == "~"
    m = re.search(r"~(\d+) more samples would decide: rerun both with `edgefarm run --min-runs (\d+)`", row.hint)
    assert m and int(m.group(2)) == int(m.group(1)) + 30 and int(m.group(2)) <= 100_000
    gg_a = make_record(artifact="t.gguf", artifact_format="gguf", samples=None)
    gg_b = make_record(artifact="t.gguf", artifact_format="gguf", samples=None)
    for rec, ttft in ((gg_a, [80.0, 95.0, 70.0, 88.0]), (gg_b, [92.0, 99.0, 85.0, 101.0])):
        rec.samples["ttft_ms"] = ttft
        rec.metrics["ttft_ms"] = Metric(float(np.median(ttft)), "ms", len(ttft))
    row = next(r for r in compare([gg_a], [gg_b]) if r.metric == "ttft_ms")
    assert row.p_value is not None and "run.gguf_repetitions" in row.hint, row
