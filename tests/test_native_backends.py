"""Accelerators on the Python agent flavour: `--backend` reaches the runtime (onnxruntime provider, LiteRT
delegate, llama.cpp GPU offload) and the record says what actually ran; here (no GPU, CPU-only wheels) every
GPU request falls back to the CPU, and the record must say so. Thread counts are recorded as used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from remote_fixtures import local_profile

from harness.records import load_run


def test_requested_gpu_falls_back_and_says_so(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    profiles = tmp_path / "profiles"
    local_profile(profiles, "loc", tmp_path / "w", gguf_prompt_tokens=8, gguf_new_tokens=4, gguf_repetitions=2)
    arts = [str(tiny_samples[f]) for f in ("onnx", "tflite", "gguf")]
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profiles", str(profiles), "--device", "loc",
                        *[x for a in arts for x in ("--artifact", a)], "--backend", "gpu", "--out",
                        str(tmp_path / "out"), "-q"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = {rec.artifact.format: rec for rec in load_run(tmp_path / "out")}
    for fmt, rec in recs.items():
        rt = rec.runtime
        assert rec.workload["backend"] == "gpu"
        assert rt["backend_requested"] == "gpu" and rt["backend"] == "cpu", (fmt, rt)
        assert "ran on the CPU" in rt["backend_note"], (fmt, rt)
        assert isinstance(rt["threads"], int) and rt["threads"] >= 1, (fmt, rt)
    assert recs["onnx"].runtime["providers"] == ["CPUExecutionProvider"]
    assert recs["gguf"].runtime["n_gpu_layers"] == 0


def test_unknown_backend_is_a_usage_error(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--artifact", str(tiny_samples["onnx"]),
                        "--backend", "tpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "tpu" in r.stderr
    from agents.spec import SpecError, WorkloadSpec
    with pytest.raises(SpecError, match="backend"):
        WorkloadSpec.from_dict({"artifact": "/m.onnx", "backend": json.loads('"npu"')})


def test_pytest_backend_option_reaches_the_record(pytester: pytest.Pytester, fast_profiles: Path,
                                                  tiny_samples: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`pytest --backend` (and its EDGEFARM_BACKEND fallback) chooses the accelerator as `edgefarm run --backend`
    does; the native flavour's side is in tests/test_native_run.py. A value that is no backend is a usage error."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    bad = pytester.runpytest_subprocess("--edgefarm-profiles", str(fast_profiles), "--device", "local", "--artifact",
                                        str(tiny_samples["onnx"]), "--backend", "tpu", timeout=120)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--backend / EDGEFARM_BACKEND 'tpu': expected one of cpu, gpu, nnapi, xnnpack*"])
    monkeypatch.setenv("EDGEFARM_BACKEND", "xnnpack")
    res = pytester.runpytest_subprocess("--edgefarm-profiles", str(fast_profiles), "--device", "local", "--artifact",
                                        str(tiny_samples["tflite"]), "--edgefarm-out", str(tmp_path / "o"), timeout=240)
    res.assert_outcomes(passed=3)
    (rec,) = load_run(tmp_path / "o")
    assert rec.workload["backend"] == "xnnpack" and rec.runtime["backend_requested"] == "xnnpack", rec.runtime
    assert rec.runtime["backend"] == "xnnpack" and "XNNPACK" in rec.runtime["backend_note"], rec.runtime
    assert isinstance(rec.runtime["threads"], int) and rec.runtime["threads"] >= 1, rec.runtime
