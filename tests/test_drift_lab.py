"""Field against the lab: a real `local` run of the released student is the lab figure; field windows that
match it are ok, and field memory far past it is drift (never rollback: the lab is not the field)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import inspect
from harness.farm import run_farm
from harness.profiles import load_profile
from harness.records import load_run
from harness.runner import RunOverrides
from harness.telemetry import traffic
from harness.telemetry.policy import DEFAULT_POLICY
from harness.telemetry.store import open_store
from harness.telemetry.window import bin_records

DAY = 86400.0
END = math.floor(1_790_000_000 / DAY) * DAY


@pytest.fixture(scope="module")
def lab_run(tiny_samples: dict[str, Path], fast_profiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("lab") / "run"
    art = inspect(tiny_samples["onnx"])
    run_farm([load_profile(fast_profiles / "local.toml")], [art], out, RunOverrides(min_s=0.3, max_s=3.0,
                                                                                    min_runs=300))
    (rec,) = load_run(out)
    assert rec.status == "ok", rec.message
    return out, rec


def field(tmp_path: Path, sha: str, median_s: float, memory_bytes: float) -> Path:
    spec = traffic.TrafficSpec("1.0.0", sha, "laptop", requests_per_h=300, latency_median_s=median_s,
                               memory_median_bytes=memory_bytes, memory_sigma=0.05)
    recs = [r for sl in traffic.slices(spec, END - 8 * DAY, END, 3600.0, seed=4) for r in traffic.records(spec, sl)]
    open_store(tmp_path / "store").put_windows(bin_records(recs, 6 * 3600), "test")
    pol = tmp_path / "policy.toml"
    pol.write_text(DEFAULT_POLICY.read_text() + '\n[lab]\ndevices = { laptop = "local" }\n')
    return pol


def drift(tmp_path: Path, pol: Path, sha: str, run: Path) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--policy", str(pol), "--model", sha,
                        "--store", str(tmp_path / "store"), "--lab", str(run), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return r.returncode, json.loads((tmp_path / "r" / "drift.json").read_text())


def lab_findings(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["metric"]: f for f in rep["findings"] if f["against"] == "lab"}


def test_field_like_the_lab_is_ok(lab_run: Any, tmp_path: Path) -> None:
    run, rec = lab_run
    pol = field(tmp_path, rec.artifact.sha256, rec.value("latency_ms_p50") / 1e3,
                rec.value("peak_rss_mib") * 2**20)
    rc, rep = drift(tmp_path, pol, rec.artifact.sha256, run)
    lab = lab_findings(rep)
    assert {"latency_p95", "peak_memory_p95"} <= set(lab), rep["findings"]
    assert rc == 0 and all(f["verdict"] == "ok" for f in lab.values())
    assert "lab.run" in lab["latency_p95"]["policy_keys"] and rec.run_id in lab["latency_p95"]["baseline"]["source"]


def test_field_memory_three_times_the_lab_is_drift(lab_run: Any, tmp_path: Path) -> None:
    run, rec = lab_run
    pol = field(tmp_path, rec.artifact.sha256, rec.value("latency_ms_p50") / 1e3,
                3 * rec.value("peak_rss_mib") * 2**20)
    rc, rep = drift(tmp_path, pol, rec.artifact.sha256, run)
    mem = lab_findings(rep)["peak_memory_p95"]
    assert rc == 1 and mem["verdict"] == "drift" and rep["verdict"] == "drift"
    assert mem["policy_keys"][0] == "memory.lab_drift_ratio"


def test_lab_run_without_the_model_is_a_usage_error(lab_run: Any, tmp_path: Path) -> None:
    run, rec = lab_run
    pol = field(tmp_path, "9" * 64, 0.01, 1e8)
    r = subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--policy", str(pol), "--model", "9" * 64,
                        "--store", str(tmp_path / "store"), "--lab", str(run)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 2 and "no ok record of model" in r.stderr
