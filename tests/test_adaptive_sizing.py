"""Run control that knows the policy (harness/run_sizing.py): the counts each gated statistic needs, the budgets
an `--adaptive decide` agent stops on, and the hint a rule that still could not be judged gives."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from agents.stats import min_samples_for_percentile
from harness.commands.demo_cmd import REPO_POLICY
from harness.errors import ConfigError, UserError
from harness.gate import evaluate, load_policy
from harness.gate.hints import MAX_SECONDS, decide_hint
from harness.profiles import load_profile
from harness.records import Metric
from harness.run_sizing import HEADROOM, size_run
from harness.runner import RunOverrides, build_spec
from synthetic import make_record

EDGEFARM = [sys.executable, "-m", "harness.cli"]
P95_RUNS = math.ceil(min_samples_for_percentile(0.95, 0.95) * HEADROOM)  # 72 x 1.5 = 108


def test_the_demo_policy_sizes_each_format_for_what_it_gates(fast_profiles: Path) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    policy = load_policy(REPO_POLICY)
    onnx = size_run(prof, ("student-transformer.onnx",), "onnx", policy, new_tokens=16)
    assert onnx.min_runs == P95_RUNS and onnx.gguf_repetitions == 0
    assert [g["metric"] for g in onnx.gated] == ["latency_ms_p95"] and onnx.gated[0]["limit"] == 250.0
    gguf = size_run(prof, ("student-llama-q8_0.gguf",), "gguf", policy, new_tokens=16)
    # the relative p95 rule on whole requests needs the most; ttft's median 6 x 1.5 = 9; itl: 2 requests
    assert gguf.gguf_repetitions == P95_RUNS and gguf.min_runs == 0
    assert any("ttft_ms" in w and ">= 9" in w for w in gguf.reasons), gguf.reasons
    gated = {g["metric"]: g for g in gguf.gated}
    assert set(gated) == {"itl_ms_p95", "ttft_ms"}  # fast_profiles' budgets are single figures: not statistics
    assert gated["itl_ms_p95"] == {"metric": "itl_ms_p95", "series": "itl_ms", "kind": "quantile", "p": 0.95,
                                   "limit": 250.0, "lower_is_better": True, "per_run": 15}


def test_build_spec_raises_counts_only_with_a_policy(fast_profiles: Path, tmp_path: Path) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    policy = tmp_path / "p.toml"
    policy.write_text('schema = 1\n[stats]\nconfidence = 0.99\n[[budget]]\nmetric = "latency_ms_p99"\nmax = 50.0\n'
                      '[[budget]]\nmetric = "decode_tokens_per_s"\nmin = 5.0\n')
    pol = load_policy(policy)
    plain = build_spec(prof, "/a.onnx", "onnx", RunOverrides(), None)
    assert plain.min_runs == 20 and plain.confidence == 0.95
    sized = build_spec(prof, "/a.onnx", "onnx", RunOverrides(policy=pol), None)
    assert sized.min_runs == math.ceil(min_samples_for_percentile(0.99, 0.99) * HEADROOM) and sized.confidence == 0.99
    assert build_spec(prof, "/a.onnx", "onnx", RunOverrides(policy=pol, min_runs=5000), None).min_runs == 5000
    g = build_spec(prof, "/a.gguf", "gguf", RunOverrides(policy=pol), None)
    assert g.gguf.repetitions == sized.min_runs and g.min_runs == 20  # GGUF counts are repetitions


def test_adaptive_decide_passes_the_budgets_and_drops_the_profile_floors(fast_profiles: Path, tmp_path: Path) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    pol = tmp_path / "p.toml"
    pol.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmax = 40.0\nartifacts = ["a.onnx"]\n')
    spec = build_spec(prof, "/x/a.onnx", "onnx", RunOverrides(adaptive="decide", policy=load_policy(pol)), None)
    assert spec.min_runs == 1 and spec.min_s == 0.0 and spec.adaptive is not None
    assert spec.adaptive.mode == "decide" and [(g.metric, g.limit) for g in spec.adaptive.gated] == [
        ("latency_ms_p95", 40.0)]
    kept = build_spec(prof, "/x/a.onnx", "onnx",
                      RunOverrides(adaptive="decide", policy=load_policy(pol), min_runs=300, min_s=1.0), None)
    assert (kept.min_runs, kept.min_s) == (300, 1.0)  # the command line's floors stay
    with pytest.raises(UserError, match="no budget on a statistic applies to b.onnx on local"):  # scoped elsewhere
        build_spec(prof, "/x/b.onnx", "onnx", RunOverrides(adaptive="decide", policy=load_policy(pol)), None)


def test_hints_name_the_key_in_its_units_and_the_max_s_a_cut_run_needs() -> None:
    rec = make_record(samples=None, artifact_format="gguf")
    rec.samples = {"ttft_ms": [100.0] * 4, "itl_ms": [10.0] * 60, "latency_ms": [700.0] * 4}
    assert decide_hint("itl_ms_p99", 60, 400, rec).startswith("set the profile key run.gguf_repetitions = 31 "
                                                              "(15 tokens per request)")
    assert decide_hint("latency_ms_p95", 4, 68, rec).startswith("set the profile key run.gguf_repetitions = 72")
    rec.provenance.stopping = {"stop_reason": "max_s", "seconds": 60.0}
    hint = decide_hint("ttft_ms", 4, 5, rec)
    assert hint == "set the profile key run.gguf_repetitions = 9 and --max-s 149 (this run stopped at its max_s " \
                   "after 60 s)", hint
    onnx = make_record(samples=[5.0] * 40)
    onnx.provenance.stopping = {"stop_reason": "max_s", "seconds": 80000.0}
    assert decide_hint("latency_ms_p99", 40, 10 ** 9, onnx) == (
        f"rerun with `edgefarm run --min-runs 100000` (capped at 100000) and --max-s {MAX_SECONDS} (this run "
        "stopped at its max_s after 80000 s)")


def test_a_rule_that_cannot_be_claimed_says_what_to_raise(tmp_path: Path) -> None:
    rec = make_record(samples=[5.0 + 0.01 * i for i in range(30)])
    rec.metrics["latency_ms_p99"] = Metric(value=None, unit="ms", n=30, note="insufficient samples")
    pol = tmp_path / "p.toml"
    pol.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p99"\nmax = 50.0\n')
    r = evaluate([rec], load_policy(pol)).cells[0].rules[0]
    assert r.outcome == "inconclusive" and "rerun with `edgefarm run --min-runs 368`" in r.reason, r.reason


def test_run_flags_are_checked(fast_profiles: Path, tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    for args, word in ((["--adaptive", "decidee"], "--adaptive 'decidee': expected `decide` or"),
                       (["--adaptive", "decide", "--processes", "2"], "cannot be combined with --processes"),
                       (["--policy", str(tmp_path / "none.toml")], "none.toml")):
        r = subprocess.run([*EDGEFARM, "run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["onnx"]),
                            "--out", str(tmp_path / "o"), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_profile_can_ask_for_decide(fast_profiles: Path, tmp_path: Path) -> None:
    text = (fast_profiles / "local.toml").read_text().replace("[run]\n", '[run]\nadaptive_mode = "decide"\n')
    (tmp_path / "local.toml").write_text(text + "latency_ms_p95 = 80.0\n")  # appended under [budgets]
    prof = load_profile(tmp_path / "local.toml")
    spec = build_spec(prof, "/x/a.onnx", "onnx", RunOverrides(), None)
    assert spec.adaptive is not None and spec.adaptive.mode == "decide" and spec.min_runs == 1
    assert [(g.metric, g.limit) for g in spec.adaptive.gated] == [("latency_ms_p95", 80.0)]  # the profile's budget
    width = build_spec(prof, "/x/a.onnx", "onnx", RunOverrides(adaptive=([95.0], 0.1)), None)
    assert width.adaptive is not None and width.adaptive.mode == "width"  # the command line wins
    for sub, bad, word in (("typo", text.replace('"decide"', '"decidee"'), "run.adaptive_mode"),
                           ("both", text.replace("[run]\n", "[run]\nprocesses = 2\n"),
                            "run.adaptive_mode.*run.processes = 2")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "local.toml").write_text(bad)
        with pytest.raises(ConfigError, match=word):
            load_profile(tmp_path / sub / "local.toml")
