"""`pytest --baseline-artifact`: the plugin measures the pair in one interleaved session and gates it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.samples.onnx_model import TINY, write_onnx


@pytest.mark.parametrize("unit", ["launches", "requests"])
def test_pytest_baseline_artifact_runs_one_session_and_judges_the_pair(pytester: pytest.Pytester,
                                                                         fast_profiles: Path, tmp_path: Path,
                                                                         unit: str) -> None:
    new = write_onnx(tmp_path / "new.onnx", replace(TINY, n_layers=1), seed=1)
    old = write_onnx(tmp_path / "old.onnx", replace(TINY, n_layers=1), seed=0)
    out = tmp_path / "out"
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    res = pytester.runpytest_subprocess("--edgefarm-profiles", str(fast_profiles), "--device", "local",
                                        "--artifact", str(new), "--baseline-artifact", str(old), "--edgefarm-only",
                                        "--interleave", unit, "--edgefarm-out", str(out), "-v", "-rs", timeout=300)
    text = res.stdout.str()
    assert "local::new.onnx::run PASSED" in text and "local::old.onnx::run PASSED" in text, text
    assert "local::new.onnx::gate(latency_ms_p50 vs baseline <= +5%)" in text  # relative rules without --baseline
    assert "old.onnx::gate(" not in text  # the reference has no rules of its own
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and len({r["pairing"]["session"] for r in recs}) == 1  # measured once, in one session
    assert {r["pairing"]["unit"] for r in recs} == {unit}
    gate = json.loads((out / "gate.json").read_text())
    assert any("interleaved A/B on local" in n for n in gate["notes"])
    same = pytester.runpytest_subprocess("--edgefarm-profiles", str(fast_profiles), "--device", "local",
                                         "--artifact", str(old), "--baseline-artifact", str(old), timeout=120)
    assert same.ret == pytest.ExitCode.USAGE_ERROR
    assert "the same bytes" in same.stderr.str()


def test_gating_against_a_baseline_run_measures_each_cell_in_three_launches(
        pytester: pytest.Pytester, fast_profiles: Path, tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    base = Path(__file__).resolve().parent / "fixtures" / "results" / "baseline"
    out = tmp_path / "out"
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    res = pytester.runpytest_subprocess("--edgefarm-profiles", str(fast_profiles), "--device", "local",
                                        "--artifact", str(tiny_samples["onnx"]), "--baseline", str(base),
                                        "--edgefarm-only", "--edgefarm-out", str(out), timeout=300)
    assert "each cell is measured in at least 3 agent launches" in res.stderr.str()
    (rec,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok" and len(rec["blocks"]) == 3  # policy-aware: relative rules need launches
