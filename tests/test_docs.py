"""The README stays true: every metric is defined there, and its set-up commands are what CI runs."""

from __future__ import annotations

from pathlib import Path

from harness.metrics import METRICS

REPO = Path(__file__).resolve().parent.parent


def test_every_metric_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [m for m in METRICS if f"`{m}`" not in readme]
    assert not missing


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    lines = [ln.strip() for ln in (REPO / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(ln in readme for ln in lines if "pytest" in ln)
