"""ci/drift.yml's job, run step by step (tests/workflow_runner.py) in a scratch user repository that installs
edgefarm as a package, against a real Prometheus holding 9 days of two models up to now: the model whose OOM
share jumped in the last window fails the job as rollback and its notifier runs; the steady one is ok."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.telemetry import openmetrics, traffic
from harness.telemetry.promserver import PrometheusServer, backfill, binaries
from workflow_runner import Runner

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(binaries() is None, reason="prometheus/promtool not installed "
                                 "(apt-get install prometheus; ci/setup.sh --test does this)")]
STEADY, SPIKED = "1" * 64, "2" * 64
W = 6 * 3600.0


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("prom_now")
    now = time.time()
    end = math.floor(now / 1800) * 1800  # scrape times up to now: the newest complete window is judged
    last_window = math.floor(now / W) * W
    specs = [traffic.TrafficSpec("1.0.0", STEADY, "pixel7", requests_per_h=400),
             traffic.TrafficSpec("2.0.0", SPIKED, "pixel7", requests_per_h=400,
                                 steps=(traffic.Step(last_window - W, oom_rate=0.03),))]
    with open(d / "om.txt", "w") as fh:
        openmetrics.write(fh, [openmetrics.simulate(s, end - 9 * 86400, end, 1800.0, seed=i)
                               for i, s in enumerate(specs)])
    backfill(d / "om.txt", d / "data")
    with PrometheusServer(d) as prom:
        yield prom.url


@pytest.fixture(scope="module")
def edgefarm_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("edgefarm-src") / "edgefarm"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    return dst


def test_drift_job_fails_on_rollback_and_notifies(prometheus: str, edgefarm_src: Path, tmp_path: Path) -> None:
    repo = tmp_path / "students-repo"
    (repo / "ci").mkdir(parents=True)
    notify = repo / "ci" / "notify.py"
    notify.write_text("import json, sys\nopen(sys.argv[1], 'a').write(json.dumps(sys.argv[2:]) + '\\n')\n")
    log = tmp_path / "notified.jsonl"
    cmd = json.dumps([sys.executable, str(notify), str(log), "{model}", "{report_md}"])
    policy = (ROOT / "ci" / "drift_policy.toml").read_text().replace("command = []", f"command = {cmd}")
    (repo / "ci" / "drift_policy.toml").write_text(policy)
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "policy"]):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    runner = Runner(repo, tmp_path / "temp", vars={"EDGEFARM_PACKAGE": str(edgefarm_src),
                                                   "EDGEFARM_BEHAVIOUR": "false",
                                                   "EDGEFARM_PROMETHEUS": prometheus,
                                                   "EDGEFARM_DRIFT_MODELS": f"{STEADY} 2.0.0"}, secrets={})
    wf: dict[str, Any] = yaml.safe_load((ROOT / "ci" / "drift.yml").read_text())
    job = runner.run_job(wf, "drift")
    assert job.step("Install edgefarm").rc == 0, job.log()
    judge = job.step("Judge each model")
    assert judge.rc == 1, job.log()
    assert "## Field drift: ✅ ok" in job.summary and "## Field drift: 🔴 ROLLBACK" in job.summary
    notified = [json.loads(line) for line in log.read_text().splitlines()]
    assert [n[0] for n in notified] == ["2.0.0"] and notified[0][1].endswith("drift.md")
    assert (runner.artifacts / "drift-report" / "2.0.0" / "drift.json").exists()  # kept despite the failure
