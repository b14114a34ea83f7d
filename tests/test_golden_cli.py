"""`edgefarm golden` from the command line, and its pass rate reaching the gate's KPIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600)


def test_validate_reports_line_and_key(tmp_path: Path) -> None:
    lines = (REPO / "golden/example.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["refrence"] = bad.pop("reference")
    (tmp_path / "s.jsonl").write_text("\n".join([lines[0], json.dumps(bad)] + lines[2:5]) + "\n")
    r = cli("golden", "validate", str(tmp_path / "s.jsonl"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "s.jsonl" in r.stderr and ":2" in r.stderr and "refrence" in r.stderr


def test_golden_run_feeds_the_gate_kpis(tiny_samples: dict[str, Path], fast_profiles: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    gguf = str(tiny_samples["gguf"])
    r = cli("run", "--profiles", str(fast_profiles), "--artifact", gguf, "--out", str(run_dir))
    assert r.returncode == 0, r.stderr
    g = cli("golden", "run", str(REPO / "golden/example.jsonl"), "--artifact", gguf, "--run-dir", str(run_dir))
    assert g.returncode == 0, g.stdout + g.stderr  # the example suite was recorded from this very student
    assert "PASS" in g.stdout
    gate = cli("gate", str(run_dir), "--profiles", str(fast_profiles), "--json", str(tmp_path / "g.json"))
    assert gate.returncode in (0, 1), gate.stderr
    cell = json.loads((tmp_path / "g.json").read_text())["cells"][0]
    kpis = {k["name"]: k["value"] for k in cell["kpis"]}
    assert kpis["behaviour_stability_pct"] == 100.0
    assert kpis["model_efficiency_ratio"] > 0
    merged = tmp_path / "merged"
    m = cli("merge", str(merged), str(run_dir))
    assert m.returncode == 0, m.stderr
    assert (merged / "golden" / tiny_samples["gguf"].name).with_suffix(".gguf.json").is_file()
    gate2 = cli("gate", str(merged), "--profiles", str(fast_profiles), "--json", str(tmp_path / "g2.json"))
    assert gate2.returncode in (0, 1), gate2.stderr
    cell2 = json.loads((tmp_path / "g2.json").read_text())["cells"][0]
    assert {k["name"] for k in cell2["kpis"]} >= {"model_efficiency_ratio", "behaviour_stability_pct"}
