"""The workflows' steps, run in order in a scratch "user repository" that installs edgefarm as a package.

A broken install step, a renamed option or a summary that lost its verdict fails here, not in a user's CI.
Slow (a fresh venv with edgefarm and its runtimes installed by pip): about 3-6 minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST_LOCAL
from workflow_runner import JobResult, Runner

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")

GHOST = """
schema = 1
name = "ghost"
class = "board"
ram_mib = 1024
[transport]
kind = "ssh"
host = "127.0.0.1"
port = 1
user = "nobody"
connect_timeout_s = 2.0
"""


def workflow(name: str) -> dict[str, Any]:
    wf: dict[str, Any] = yaml.safe_load((ROOT / "ci" / name).read_text())
    return wf


@pytest.fixture(scope="module")
def edgefarm_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """edgefarm's sources as a user would point pip at them (a copy: pip's in-tree build leaves files behind)."""
    dst = tmp_path_factory.mktemp("edgefarm-src") / "edgefarm"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    return dst


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory, tiny_samples: dict[str, Path]) -> Path:
    repo = tmp_path_factory.mktemp("user") / "students-repo"
    (repo / "students").mkdir(parents=True)
    shutil.copy(tiny_samples["onnx"], repo / "students")
    (repo / "device_profiles").mkdir()
    (repo / "device_profiles" / "local.toml").write_text(FAST_LOCAL)
    (repo / "device_profiles" / "ghost.toml").write_text(GHOST)
    (repo / "golden").mkdir()
    shutil.copy(ROOT / "golden" / "example_onnx_tiny.jsonl", repo / "golden" / "suite.jsonl")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "students"]):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="module")
def runner(user_repo: Path, edgefarm_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    temp = tmp_path_factory.mktemp("runner-temp")
    return Runner(user_repo, temp, vars={"EDGEFARM_PACKAGE": f"{edgefarm_src}[agent,history]",
                                         "EDGEFARM_ARTIFACTS": "students/*.onnx"},
                  secrets={"EDGEFARM_DB": str(temp / "history.db")},
                  # the test session's own lock directory (conftest), as a farm host has its own
                  extra_env={"EDGEFARM_LOCK_DIR": os.environ["EDGEFARM_LOCK_DIR"]})


def night(runner: Runner, devices: str = "local") -> tuple[JobResult, JobResult | None]:
    wf = workflow("nightly.yml")
    shard = runner.run_job(wf, "shard", {"host": "farm-a", "devices": devices})
    if not shard.ok:
        return shard, None
    for d in ("shards", "merged"):
        shutil.rmtree(runner.repo / d, ignore_errors=True)
    return shard, runner.run_job(wf, "merge")


@pytest.mark.slow
def test_nightly_installs_records_and_then_gates_against_last_pass(runner: Runner) -> None:
    shard, merge = night(runner)
    assert shard.ok and merge is not None, shard.log()
    assert "no baseline yet" in shard.step("Choose the baseline").output  # the first night has none
    assert merge.summary.startswith("## edgefarm nightly: "), merge.summary[:500]
    verdict = merge.summary.splitlines()[0].split(": ")[1]
    assert "| device | artifact | outcome |" in merge.summary and "local" in merge.summary
    db = runner.ctx["secrets"]["EDGEFARM_DB"]
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*), MIN(verdict), MIN(branch) FROM runs").fetchone() == (1, verdict.lower(),
                                                                                                 "main")
    assert verdict == "PASS", merge.log()
    shard2, merge2 = night(runner)
    assert shard2.ok and merge2 is not None, shard2.log()
    assert "baseline last-pass:main" in shard2.step("Choose the baseline").output
    report = json.loads((runner.repo / "merged" / "gate.json").read_text())
    assert report["baseline_run"], merge2.log()  # the relative rules ran against last night's records
    judged = [r for c in report["cells"] for r in c["rules"] if "baseline" in r["rule"] and r["outcome"] != "skipped"]
    assert judged, merge2.log()
    # Whatever a loaded machine made of tonight's figures, the job says what the gate decided: 0 stays 0, 1 fails.
    assert merge2.step("Fail on a gate failure").rc == report["exit_code"], merge2.log()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)
        assert c.execute("SELECT COUNT(*) FROM records").fetchone() == (2,)


@pytest.mark.slow
def test_nightly_fails_loudly_on_an_unreachable_device(runner: Runner) -> None:
    shard, merge = night(runner, "local ghost")
    check = shard.step("Check the devices")
    assert check.rc == 3 and "::error::" in check.output and "ghost" in check.output.split("::error::")[1]
    assert merge is None and not any(s.name.startswith("Benchmark") for s in shard.steps)


@pytest.mark.slow
def test_premerge_runs_the_users_golden_suite(runner: Runner) -> None:
    job = runner.run_job(workflow("premerge.yml"), "unit-and-golden")
    assert job.ok, job.log()
    assert job.summary.startswith("## edgefarm pre-merge: PASS")
    assert (runner.repo / "edgefarm-out" / "golden").is_dir()
