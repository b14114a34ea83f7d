"""The `edgefarm` command as users meet it: one clear line and an exit code for their mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EDGEFARM = [sys.executable, "-m", "harness.cli"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGEFARM, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_unknown_device_lists_known(fast_profiles: Path, tiny_samples: dict[str, Path]) -> None:
    r = cli("run", "--profiles", str(fast_profiles), "--device", "pixel99", "--artifact", str(tiny_samples["onnx"]))
    assert r.returncode == 2
    assert r.stderr.strip() == "edgefarm: error: unknown device 'pixel99' (known devices: local)"
    assert "Traceback" not in r.stderr


def test_bad_artifact_names_the_file(fast_profiles: Path, tmp_path: Path) -> None:
    bad = tmp_path / "half.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 20)
    r = cli("run", "--profiles", str(fast_profiles), "--artifact", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_profile_mistake_names_file_and_key(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    (tmp_path / "local.toml").write_text('schema = 1\nname = "local"\nclass = "laptop"\nram_mb = 1\n'
                                         '[transport]\nkind = "local"\n')
    r = cli("run", "--profiles", str(tmp_path), "--artifact", str(tiny_samples["onnx"]))
    assert r.returncode == 2
    assert f"{tmp_path / 'local.toml'}: key 'ram_mb': unknown key (did you mean 'ram_mib'?)" in r.stderr


def test_run_streams_results_and_reports_zero_bytes_on_rerun(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                             tmp_path: Path) -> None:
    args = ["run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["tflite"]), "--max-s", "0.5"]
    first = cli(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "student-mlp.tflite" in first.stdout and "ok" in first.stdout
    again = cli(*args, "--out", str(tmp_path / "b"))
    assert "bytes transferred to devices: 0 (local: 0)" in again.stdout
    rec = json.loads((tmp_path / "b" / "results.jsonl").read_text().splitlines()[0])
    assert rec["provenance"]["push"]["skipped"] is True
    assert json.loads((tmp_path / "b" / "run.json").read_text())["devices"] == ["local"]


def test_devices_lists_profiles(fast_profiles: Path) -> None:
    r = cli("devices", "--profiles", str(fast_profiles))
    assert r.returncode == 0 and r.stdout.startswith("local")
    assert "reachable" in r.stdout
