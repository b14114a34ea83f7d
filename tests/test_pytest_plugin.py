"""The pytest plugin, run as users run it: pytest in a subprocess with --device/--artifact."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.artifacts import inspect
from harness.records import load_run


def run(pytester: pytest.Pytester, profiles: Path, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester.runpytest_subprocess("--edgefarm-profiles", str(profiles), *args, timeout=240)


def test_device_and_artifact_generate_passing_tests(pytester: pytest.Pytester, fast_profiles: Path,
                                                     tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run(pytester, fast_profiles, "--device", "local", "--artifact", str(tiny_samples["onnx"]),
              "--edgefarm-out", str(out), "--junitxml", str(tmp_path / "j.xml"), "-v")
    res.assert_outcomes(passed=3)  # run + peak_rss_mib + load_time_ms budgets of the fast profile
    res.stdout.fnmatch_lines(["*edgefarm::local::student-transformer.onnx::run PASSED*",
                              "*gate(peak_rss_mib <= 1024 MiB) PASSED*", "*edgefarm gate: *"])
    recs = load_run(out)
    assert len(recs) == 1 and recs[0].status == "ok"
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").iter("property")}
    assert props["artifact_sha256"] == recs[0].artifact.sha256
    assert json.loads(props["device_fingerprint"])  # the device fingerprint travels in the JUnit report
    assert props["harness_version"]


def test_broken_artifact_fails_with_a_readable_reason(pytester: pytest.Pytester, fast_profiles: Path,
                                                      tmp_path: Path) -> None:
    bad = tmp_path / "student.onnx"
    bad.write_bytes(b"this is not a model, just text\n" * 10)
    res = run(pytester, fast_profiles, "--device", "local", "--artifact", str(bad), "--edgefarm-out",
              str(tmp_path / "o"))
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*artifact unusable: artifact *student.onnx: not a recognised model file*"])


def test_unknown_device_is_a_usage_error_listing_known(pytester: pytest.Pytester, fast_profiles: Path) -> None:
    res = run(pytester, fast_profiles, "--device", "pixel99")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*unknown device pixel99; known devices: local*"])


def test_user_tests_use_fixtures_and_env_fallback(pytester: pytest.Pytester, fast_profiles: Path,
                                                  tiny_samples: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_mine="""
        def test_fits_in_half_the_ram(edgefarm_result, edgefarm_device):
            assert edgefarm_result.status == "ok"
            assert edgefarm_result.value("peak_rss_mib") < edgefarm_device.profile.ram_mib / 2
    """)
    monkeypatch.setenv("EDGEFARM_DEVICE", "local")
    monkeypatch.setenv("EDGEFARM_ARTIFACT", str(tiny_samples["tflite"]))
    monkeypatch.setenv("EDGEFARM_OUT", str(tmp_path / "o"))
    res = run(pytester, fast_profiles, "-k", "fits_in", "-v")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*test_fits_in_half_the_ram?local-student-mlp.tflite? PASSED*"])


def test_without_device_fixtures_skip_with_how_to_fix(pytester: pytest.Pytester, fast_profiles: Path) -> None:
    pytester.makepyfile(test_mine="""
        def test_x(edgefarm_result):
            pass
    """)
    res = run(pytester, fast_profiles, "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*no edgefarm device selected (use --device NAME or EDGEFARM_DEVICE)*"])


def test_xdist_keeps_each_device_on_one_worker(pytester: pytest.Pytester, fast_profiles: Path,
                                               tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--device", "local", "--artifact", str(tiny_samples["onnx"]), "--artifact", str(tiny_samples["tflite"]),
            "--edgefarm-out", str(out), "-v"]
    res = run(pytester, fast_profiles, "-n", "2", *args)
    res.assert_outcomes(passed=6)
    workers = {line.split("]")[0] for line in res.outlines if "edgefarm::local::" in line and "PASSED" in line}
    assert len(workers) == 1, workers  # every test of the device ran on one worker
    recs = load_run(out)
    assert sorted(r.artifact.name for r in recs) == ["student-mlp.tflite", "student-transformer.onnx"]


@pytest.mark.parametrize("xdist", [False, True], ids=["plain", "xdist"])
def test_a_k_selection_plans_only_the_selected_cells(pytester: pytest.Pytester, fast_profiles: Path,
                                                     tiny_samples: dict[str, Path], tmp_path: Path,
                                                     xdist: bool) -> None:
    # `-k onnx` leaves the TFLite cell out on purpose: the run directory must gate as one cell run, not as a
    # cell lost (exit 3), and run.json must say the other was deselected rather than forget it
    out = tmp_path / "run"
    res = run(pytester, fast_profiles, *(["-n", "2"] if xdist else []), "--device", "local",
              "--artifact", str(tiny_samples["onnx"]), "--artifact", str(tiny_samples["tflite"]),
              "--edgefarm-out", str(out), "-k", "transformer", "-v")
    res.assert_outcomes(passed=3)
    manifest = json.loads((out / "run.json").read_text())
    onnx_sha, tflite_sha = (inspect(tiny_samples[k]).sha256 for k in ("onnx", "tflite"))
    assert manifest["planned"] == [{"device": "local", "sha256": onnx_sha}]
    assert manifest["deselected"] == [{"device": "local", "sha256": tflite_sha}]
    gate = subprocess.run([sys.executable, "-m", "harness.cli", "gate", str(out), "--profiles", str(fast_profiles)],
                          capture_output=True, text=True, timeout=120)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "student-mlp.tflite" not in gate.stdout
