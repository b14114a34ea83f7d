"""`edgefarm drift` on a store: ok, rollback (with the user's command run as argv), lost telemetry, exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from harness.telemetry import traffic
from harness.telemetry.policy import DEFAULT_POLICY
from harness.telemetry.store import open_store
from harness.telemetry.window import bin_records

SHA = "d" * 64
DAY = 86400.0
END = math.floor(1_790_000_000 / DAY) * DAY  # a fixed past day: the store is judged at its newest window


def make_store(root: Path, *, spike: bool = False, lose_class: bool = False) -> Path:
    specs = [traffic.TrafficSpec("3.1.0", SHA, "pixel7", requests_per_h=400,
                                 steps=(traffic.Step(END - 6 * 3600, oom_rate=0.02),) if spike else ()),
             traffic.TrafficSpec("3.1.0", SHA, "low-ram", requests_per_h=400, latency_median_s=0.3)]
    recs = []
    for i, s in enumerate(specs):
        stop = END - 6 * 3600 if (lose_class and s.device_class == "low-ram") else END
        for sl in traffic.slices(s, END - 9 * DAY, stop, 3600.0, seed=i):
            recs += list(traffic.records(s, sl))
    open_store(root).put_windows(bin_records(recs, 6 * 3600), "test")
    return root


def policy_with_command(tmp_path: Path, out_file: Path) -> Path:
    script = tmp_path / "rollback.py"
    script.write_text("import json, sys\nopen(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\n")
    p = tmp_path / "policy.toml"
    cmd = json.dumps([sys.executable, str(script), str(out_file), "--model", "{model}", "--report", "{report_json}",
                      "$(touch pwned)", "; rm -rf /"])
    p.write_text(DEFAULT_POLICY.read_text().replace("command = []", f"command = {cmd}"))
    return p


def drift(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--model", SHA, *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_steady_store_is_ok_and_command_not_run(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    pol = policy_with_command(tmp_path, tmp_path / "ran.json")
    r = drift("--policy", str(pol), "--store", str(store), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert rep["verdict"] == "ok" and rep["schema"] == "edgefarm.drift-report/1"
    assert {f["metric"] for f in rep["findings"]} >= {"latency_p50", "latency_p95", "oom_rate",
                                                       "peak_memory_p95", "tokens_per_s"}
    assert not (tmp_path / "ran.json").exists()


def test_oom_spike_is_rollback_and_runs_the_command_as_argv(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", spike=True)
    ran = tmp_path / "ran.json"
    pol = policy_with_command(tmp_path, ran)
    r = drift("--policy", str(pol), "--store", str(store), "--out", str(tmp_path / "r"), "--fail-on", "rollback",
              cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert rep["verdict"] == "rollback"
    oom = next(f for f in rep["findings"] if f["metric"] == "oom_rate" and f["device_class"] == "pixel7")
    assert oom["verdict"] == "rollback" and oom["policy_keys"] == ["oom.rollback_rate"]
    assert oom["field"]["ci"][0] > 0.01
    other = next(f for f in rep["findings"] if f["metric"] == "oom_rate" and f["device_class"] == "low-ram")
    assert other["verdict"] == "ok"
    argv = json.loads(ran.read_text())  # what the command received, element by element, no shell
    assert argv == ["--model", SHA, "--report", str(tmp_path / "r" / "drift.json"), "$(touch pwned)", "; rm -rf /"]
    assert not (tmp_path / "pwned").exists()
    assert rep["rollback"]["exit_code"] == 0
    assert "ROLLBACK" in (tmp_path / "r" / "drift.md").read_text()


def test_a_class_that_stops_reporting_is_never_green(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", lose_class=True)
    r = drift("--policy", str(DEFAULT_POLICY), "--store", str(store), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert r.returncode == 1
    rep = json.loads((tmp_path / "r" / "drift.json").read_text())
    lost = [f for f in rep["findings"] if f["device_class"] == "low-ram"]
    assert [f["verdict"] for f in lost] == ["insufficient"] and "no field data" in lost[0]["reason"]
    # --fail-on rollback: the job stays green on drift/insufficient, but the report still says it.
    r2 = drift("--policy", str(DEFAULT_POLICY), "--store", str(store), "--out", str(tmp_path / "r2"),
               "--fail-on", "rollback", cwd=tmp_path)
    assert r2.returncode == 0 and "insufficient" in r2.stdout


def test_empty_store_is_a_usage_error(tmp_path: Path) -> None:
    r = drift("--policy", str(DEFAULT_POLICY), "--store", str(tmp_path / "nothing"), cwd=tmp_path)
    assert r.returncode == 2 and "no telemetry windows" in r.stderr


def test_a_report_that_cannot_be_written_does_not_swallow_the_rollback(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", spike=True)
    ran = tmp_path / "ran.json"
    pol = policy_with_command(tmp_path, ran)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the report directory should be")
    r = drift("--policy", str(pol), "--store", str(store), "--out", str(blocked / "r"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot write the drift report" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(ran.read_text())[:2] == ["--model", SHA]  # the rollback ran all the same
