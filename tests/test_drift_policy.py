"""The drift policy is strict typed config: every mistake is one line naming the file and key, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.telemetry.policy import DEFAULT_POLICY, SCHEMA, load_policy

GOOD = DEFAULT_POLICY.read_text()


def test_default_policy_loads() -> None:
    p = load_policy(None)
    assert p.schema == SCHEMA and p.window_s == 6 * 3600 and p.season_s == 86400


@pytest.mark.parametrize("edit, key, words", [
    (("[latency]\n", "[latency]\np95_ratio = 1.2\n"), "latency.p95_ratio", "unknown key"),
    (("drift_ratio = 1.10", 'drift_ratio = "1.1"'), "latency.drift_ratio", "expected a number"),
    (('schema = "edgefarm.drift-policy/1"\n', ""), "schema", "missing required field"),
    (('schema = "edgefarm.drift-policy/1"', 'schema = "edgefarm.drift-policy/9"'), "schema", "expected"),
    (('length = "6h"', 'length = "6 hours"'), "window.length", "duration"),
    (('season = "1d"', 'season = "5h"'), "window.season", "multiple"),
    (("rollback_rate = 0.01", "rollback_rate = 0.001"), "oom.drift_rate", "rollback_rate"),
    (("drift_ratio = 0.90", "drift_ratio = 1.2"), "tokens_per_s.drift_ratio", "lower is worse"),
    (("command = []", 'command = ["deploy", "--to", "{previous}"]'), "rollback.command[2]", "placeholder"),
    (("command = []", 'command = "deploy rollback"'), "rollback.command", "expected list"),
    (("min_samples = 10", "min_samples = 1"), "behaviour.min_samples", "at least 2"),
])
def test_policy_mistakes_name_file_and_key(tmp_path: Path, edit: tuple[str, str], key: str, words: str) -> None:
    assert edit[0] in GOOD
    p = tmp_path / "drift.toml"
    p.write_text(GOOD.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as e:
        load_policy(p)
    assert e.value.key == key and str(p) in str(e.value) and words in str(e.value)


def test_cli_policy_error_is_one_line_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "drift.toml"
    p.write_text(GOOD.replace("[oom]\n", "[oom]\nrate = 1\n"))
    r = subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--policy", str(p), "--model", "a" * 64,
                        "--store", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "oom.rate" in r.stderr and str(p) in r.stderr


@pytest.mark.parametrize("model", ["a; drop", 'x"}', "", "A" * 65])
def test_hostile_model_names_are_refused_before_any_query(tmp_path: Path, model: str) -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--policy", str(DEFAULT_POLICY),
                        "--model", model, "--prometheus", "http://127.0.0.1:9"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "--model" in r.stderr and "Traceback" not in r.stderr
