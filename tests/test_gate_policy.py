"""Strict gate policies: every mistake names the file and the key; no silently disabled gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.gate import DEFAULT_POLICY, evaluate, load_policy
from synthetic import latency_samples, make_record
from harness.records import Record


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text("schema = 1\n" + text, encoding="utf-8")
    return p


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        load_policy(write(tmp_path, text))
    assert str(tmp_path / "policy.toml") in str(ei.value)
    return ei.value


def test_default_policy_loads_and_has_relative_rules() -> None:
    p = load_policy()
    assert p.source == str(DEFAULT_POLICY)
    assert {r.metric for r in p.relative} >= {"latency_ms_p95", "latency_ms_p50", "peak_rss_mib"}
    assert p.inconclusive == "fail" and p.errors == "fail" and p.not_significant == "pass"


def test_full_policy_parses(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, """
inconclusive = "pass"
[stats]
alpha = 0.01
[kpis]
sla_latency_ms = 100
price_per_hour = 0.4
quality = {"student-int8" = 0.8}
[[budget]]
metric = "latency_ms_p95"
max = 250
device_classes = ["phone"]
artifacts = ["student-int8"]
[[budget]]
metric = "memory_headroom_pct"
min = 40
[[relative]]
metric = "latency_ms_p95"
max_worse_pct = 5
devices = ["local"]
"""))
    assert p.inconclusive == "pass" and p.stats.alpha == 0.01
    assert p.budget[0].max == 250.0 and p.budget[0].device_classes == ["phone"]
    assert p.budget[1].min == 40.0 and p.relative[0].devices == ["local"]
    assert p.kpis.quality == {"student-int8": 0.8}


def test_unknown_top_level_key(tmp_path: Path) -> None:
    e = error(tmp_path, 'inconclusiv = "fail"\n')
    assert e.key == "inconclusiv" and "did you mean 'inconclusive'" in str(e)


def test_unknown_key_in_a_rule(tmp_path: Path) -> None:
    # the classic silently-disabled gate: a mistyped threshold key
    e = error(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmax = 250\nmax_ms = 200\n')
    assert e.key == "budget[0].max_ms" and "unknown key" in str(e)


def test_unknown_metric(tmp_path: Path) -> None:
    e = error(tmp_path, '[[relative]]\nmetric = "latency_p95"\nmax_worse_pct = 5\n')
    assert e.key == "relative[0].metric" and "unknown metric 'latency_p95'" in str(e)


def test_wrong_type(tmp_path: Path) -> None:
    e = error(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = "1GB"\n')
    assert e.key == "budget[0].max" and "expected" in str(e)


def test_missing_field(tmp_path: Path) -> None:
    e = error(tmp_path, '[[relative]]\nmetric = "latency_ms_p95"\n')
    assert e.key == "relative[0].max_worse_pct" and "missing" in str(e)


def test_unknown_device_class(tmp_path: Path) -> None:
    e = error(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 1\ndevice_classes = ["tablet"]\n')
    assert e.key == "budget[0].device_classes[0]"


def test_budget_direction_is_checked(tmp_path: Path) -> None:
    assert error(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmin = 5\n').key == "budget[0].min"
    assert error(tmp_path, '[[budget]]\nmetric = "decode_tokens_per_s"\nmax = 5\n').key == "budget[0].max"
    assert error(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\n').key == "budget[0]"


def test_bad_values(tmp_path: Path) -> None:
    assert error(tmp_path, "[stats]\nconfidence = 1.5\n").key == "stats.confidence"
    assert error(tmp_path, 'inconclusive = "warn"\n').key == "inconclusive"
    assert error(tmp_path, "[kpis]\nprice_per_hour = -1\n").key == "kpis.price_per_hour"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[budget]\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_policy(bad)


def _run() -> list[Record]:
    rng = np.random.default_rng(0)
    return [make_record(samples=latency_samples(rng, 300, 50.0))]


def test_unknown_device_or_artifact_is_an_error_when_gating(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 9\ndevices = ["pixl7"]\n'))
    with pytest.raises(ConfigError) as ei:
        evaluate(_run(), p)
    assert ei.value.key == "budget[0].devices[0]" and "unknown device 'pixl7'" in str(ei.value)
    p = load_policy(write(tmp_path, '[[relative]]\nmetric = "peak_rss_mib"\nmax_worse_pct = 9\n'
                                    'artifacts = ["student-int9"]\n'))
    with pytest.raises(ConfigError) as ei:
        evaluate(_run(), p)
    assert ei.value.key == "relative[0].artifacts[0]" and "student-int8" in str(ei.value)


def test_known_names_allow_gating_part_of_a_run(tmp_path: Path) -> None:
    # the pytest plugin gates one record at a time: the session's other artifacts are still known names
    p = load_policy(write(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = 9\nartifacts = ["student-mlp"]\n'))
    with pytest.raises(ConfigError):
        evaluate(_run(), p)
    rep = evaluate(_run(), p, known_artifacts=["student-int8", "student-mlp"])
    assert all(r.source != "policy budget[0]" for r in rep.cells[0].rules)


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    assert error(tmp_path, '[[budget]]\nmetric = "peak_rss_mib"\nmax = inf\n').key == "budget[0].max"
    assert error(tmp_path, '[[relative]]\nmetric = "peak_rss_mib"\nmax_worse_pct = nan\n').key == \
        "relative[0].max_worse_pct"


def test_declared_artifacts_catch_typos_at_load_and_let_a_shard_gate(tmp_path: Path) -> None:
    e = error(tmp_path, 'artifacts = ["student-int8", "student-llm"]\n'
                        '[[budget]]\nmetric = "peak_rss_mib"\nmax = 9\nartifacts = ["student-lm"]\n')
    assert e.key == "budget[0].artifacts[0]" and "student-llm" in str(e)
    p = load_policy(write(tmp_path, 'artifacts = ["student-int8", "student-llm"]\n'
                                    '[[budget]]\nmetric = "ttft_ms"\nmax = 9\nartifacts = ["student-llm"]\n'))
    rep = evaluate(_run(), p)  # this shard did not run student-llm: fine, and said
    assert any("budget[0]" in n and "none of which is in this run" in n for n in rep.notes)
