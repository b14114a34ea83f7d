"""Format detection from bytes; garbage, text, empty and truncated files; spec validation; probe and hash."""

from __future__ import annotations

import hashlib
import json
import random
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from agent_helpers import PY38, PY38_MISSING, ROOT, make_samples, run_agent, run_spec

from agents import fingerprint as F
from agents import procfs
from agents.formats import ArtifactError, detect_format


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("agent_formats"))


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "gguf"])
def test_detects_each_format_from_bytes(samples: dict[str, Path], fmt: str, tmp_path: Path) -> None:
    renamed = tmp_path / "model.bin"  # the extension plays no part
    renamed.write_bytes(samples[fmt].read_bytes())
    assert detect_format(str(renamed)) == fmt


@pytest.mark.parametrize("fmt,words", [("onnx", "truncated ONNX"), ("tflite", "truncated TFLite"),
                                       ("gguf", "truncated GGUF")])
def test_truncated_files_are_named_errors(samples: dict[str, Path], fmt: str, words: str) -> None:
    path = samples["truncated_" + fmt]
    with pytest.raises(ArtifactError, match=words) as e:
        detect_format(str(path))
    assert str(path) in str(e.value)


@pytest.mark.parametrize("keep", [0.02, 0.1, 0.3, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("fmt", ["onnx", "tflite", "gguf"])
def test_any_cut_is_caught(samples: dict[str, Path], fmt: str, keep: float, tmp_path: Path) -> None:
    data = samples[fmt].read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArtifactError) as e:
        detect_format(str(cut))
    assert str(cut) in str(e.value)


_RNG = random.Random(1234)  # seeded: xdist workers must collect identical test ids


@pytest.mark.parametrize("content", [
    _RNG.randbytes(4096), _RNG.randbytes(64), b"hello world, this is not a model\n" * 40,
    json.dumps({"model": "onnx"}).encode(), b"\x08\x08\x12\x04abcd", b"PK\x03\x04" + _RNG.randbytes(500),
], ids=["random-4k", "random-64", "text", "json", "short-proto", "zip"])
def test_garbage_and_text_are_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ArtifactError) as e:
        detect_format(str(path))
    assert str(path) in str(e.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty.gguf.*not a model file"):
        detect_format(str(tmp_path / "empty.gguf"))
    with pytest.raises(ArtifactError, match="missing.onnx: cannot read"):
        detect_format(str(tmp_path / "missing.onnx"))


def test_run_on_a_truncated_gguf_is_status_error_not_a_traceback(samples: dict[str, Path]) -> None:
    r = run_spec(samples["truncated_gguf"], timeout=60)
    assert r.exit_code == 0, r.stderr
    assert r.result["status"] == "error"
    assert str(samples["truncated_gguf"]) in r.result["message"] and "truncated GGUF" in r.result["message"]
    assert "Traceback" not in r.stderr
    assert r.result["workload"]["artifact"] == str(samples["truncated_gguf"])  # the spec it used, echoed


def test_run_with_wrong_declared_format(samples: dict[str, Path]) -> None:
    r = run_spec(samples["onnx"], format="gguf", timeout=60)
    assert r.result["status"] == "error" and "spec says format gguf but the bytes are onnx" in r.result["message"]


@pytest.mark.parametrize("spec,words", [
    ({"artifact": "x", "min_runz": 3}, "unknown key(s) min_runz"),
    ({"artifact": "x", "min_runs": "10"}, "spec.min_runs: expected an integer"),
    ({"artifact": "x", "min_runs": True}, "spec.min_runs: expected an integer"),
    ({"artifact": "x", "max_s": -1}, "spec.max_s: must be > 0"),
    ({"artifact": "x", "timeout_s": 0}, "spec.timeout_s: must be > 0"),
    ({"artifact": "x", "min_s": 1e400}, "spec.min_s: expected a finite number"),
    ({"artifact": "x", "confidence": float("nan")}, "spec.confidence: expected a finite number, got nan"),
    ({"artifact": "x", "dynamic_dims": {"seq": 0}}, "spec.dynamic_dims.seq: expected a positive int"),
    ({"artifact": "x", "dynamic_dims": {"seq": 1.5}}, "spec.dynamic_dims.seq: expected a positive integer"),
    ({"artifact": "x", "input_shapes": {"ids": [1, True]}}, "spec.input_shapes.ids: expected a list of positive"),
    ({"artifact": "x", "artifact_sha256": "abc"}, "spec.artifact_sha256: expected 64 lowercase hex"),
    ({"artifact": "x", "rlimit_as_mib": 0}, "spec.rlimit_as_mib: must be > 0"),
    ({"artifact": "x", "pin_cpus": []}, "spec.pin_cpus: expected a non-empty list"),
    ({"artifact": "x", "gguf": {"new_tokenz": 3}}, "spec.gguf: unknown key(s) new_tokenz"),
    ({"artifact": "x", "gguf": {"prompt_tokens": 500, "new_tokens": 64, "n_ctx": 512}}, "exceeds n_ctx"),
    ({"min_runs": 3}, "spec.artifact: missing"),
    ({"artifact": "x", "format": "pt"}, "spec.format"),
    ({"artifact": "x", "input_shapes": {"a": [1, "b"]}}, "spec.input_shapes.a"),
])
def test_bad_specs_are_an_error_event_and_exit_2(spec: dict[str, object], words: str) -> None:
    r = run_agent("run", json.dumps(spec), timeout=60)
    assert r.exit_code == 2
    assert r.events and r.events[-1]["event"] == "error" and words in r.events[-1]["message"]


def test_spec_from_a_file(samples: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"artifact": str(samples["truncated_onnx"])}))
    r = run_agent("run", str(spec), timeout=60)
    assert r.result["status"] == "error" and "truncated ONNX" in r.result["message"]


def test_probe_fingerprints_without_importing_runtimes() -> None:
    r = run_agent("probe", timeout=60)
    assert r.exit_code == 0
    (ev,) = r.events
    fp = ev["fingerprint"]
    for key in ("os", "kernel", "machine", "cpu_count", "ram_total_mib", "python", "runtimes"):
        assert key in fp, key
    assert fp["runtimes"]["onnxruntime"] and fp["runtimes"]["llama-cpp-python"]
    assert ev["runtimes"]["onnxruntime"] and ev["runtimes"]["ai_edge_litert"] and ev["runtimes"]["llama_cpp"]


def test_fingerprint_survives_unreadable_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise OSError("nope")

    monkeypatch.setattr(procfs, "read_text", lambda path: None)
    monkeypatch.setattr(F, "read_text", lambda path: None)
    monkeypatch.setattr(os, "cpu_count", boom)
    monkeypatch.setattr(platform, "release", boom)
    fp = F.fingerprint()
    assert "kernel" not in fp and "cpu_count" not in fp and "ram_total_mib" not in fp
    assert fp["python"]


def test_agent_package_is_python38_syntax_and_stdlib_only() -> None:
    """Every module of the agent parses as Python 3.8 and imports only the standard library and itself
    (runtimes and numpy are imported inside the backends' functions, in the model process)."""
    import ast
    import sys

    modules = sorted(p for p in (ROOT / "agents").rglob("*.py") if "native" not in p.relative_to(ROOT).parts)
    assert len(modules) >= 12
    for path in modules:
        src = path.read_text()
        tree = ast.parse(src, feature_version=(3, 8))
        top = {n.names[0].name.split(".")[0] for n in tree.body if isinstance(n, ast.Import)}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        assert top <= set(sys.stdlib_module_names) | {"__future__", "agents"}, (path, top)
        assert "harness" not in {n.module.split(".")[0] for n in ast.walk(tree)
                                 if isinstance(n, ast.ImportFrom) and n.module}, path
        assert len(src.splitlines()) <= 400, path


def test_a_gguf_with_deeply_nested_metadata_arrays_is_a_format_error(tmp_path: Path) -> None:
    """5000 arrays nested in one another: a clean ArtifactError (the parser is iterative), not RecursionError."""
    import struct

    depth = 5000
    kv = struct.pack("<Q", 4) + b"deep" + struct.pack("<I", 9)  # key "deep", type array
    kv += (struct.pack("<I", 9) + struct.pack("<Q", 1)) * depth  # array of (array of ...) one item each
    kv += struct.pack("<I", 13) + struct.pack("<Q", 1)  # innermost: an unknown type
    path = tmp_path / "deep.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv + b"\0" * 64)
    with pytest.raises(ArtifactError, match="deep.gguf: corrupt GGUF file .unknown metadata type 13"):
        detect_format(str(path))
    # the same nesting ending in a valid empty array parses (no tensors: a valid, empty model)
    ok = kv[:-12] + struct.pack("<I", 4) + struct.pack("<Q", 0)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + ok)
    assert detect_format(str(path)) == "gguf"
    # an array claiming more items than the file has bytes
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv[:16] + struct.pack("<IQ", 9, 10**12) + b"\0" * 64)
    with pytest.raises(ArtifactError, match="corrupt GGUF file .array of"):
        detect_format(str(path))


def test_cpufreq_and_thermal_from_sysfs(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    for n, gov, cur in ((0, "schedutil", "1804800"), (1, "performance", "2850000")):
        d = cpu / f"cpu{n}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
        (d / "scaling_cur_freq").write_text(cur + "\n")
        (d / "cpuinfo_max_freq").write_text("2850000\n")
    (cpu / "cpufreq").mkdir()  # not a CPU
    (cpu / "cpu2").mkdir()  # offline or no cpufreq: absent
    assert F.cpufreq(str(cpu)) == {
        "cpu0": {"governor": "schedutil", "cur_mhz": 1804.8, "max_mhz": 2850.0},
        "cpu1": {"governor": "performance", "cur_mhz": 2850.0, "max_mhz": 2850.0},
    }
    th = tmp_path / "thermal"
    for n, typ, temp in ((0, "cpu-0-0-usr", "45300"), (1, "battery", "31"), (2, "broken", "")):
        d = th / f"thermal_zone{n}"
        d.mkdir(parents=True)
        (d / "type").write_text(typ + "\n")
        (d / "temp").write_text(temp + "\n")
    assert F.thermal(str(th)) == {"thermal_zone0:cpu-0-0-usr": 45.3, "thermal_zone1:battery": 31.0}
    assert F.cpufreq(str(tmp_path / "absent")) == {} and F.thermal(str(tmp_path / "absent")) == {}


def test_android_props_from_getprop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    getprop = tmp_path / "getprop"
    getprop.write_text("#!/bin/sh\nprintf '[ro.product.model]: [Pixel 7]\\n[ro.serialno]: [secret]\\n"
                       "[ro.board.platform]: [gs201]\\n[ro.build.version.sdk]: []\\n'\n")
    getprop.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert F.android_props() == {"ro.product.model": "Pixel 7", "ro.board.platform": "gs201"}
    assert F.fingerprint()["android"]["ro.product.model"] == "Pixel 7"


@pytest.mark.skipif(PY38 is None, reason=PY38_MISSING)
def test_runs_on_a_bare_python38(samples: dict[str, Path]) -> None:
    """probe and runs that stop at format detection or at a missing runtime need nothing beyond 3.8's stdlib."""
    assert PY38 is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PYTHONPATH"] = str(ROOT)

    def agent(*args: str) -> list[dict[str, object]]:
        p = subprocess.run([PY38, "-m", "agents", *args], capture_output=True, text=True, timeout=60, env=env)
        assert not p.stderr, p.stderr
        return [json.loads(line) for line in p.stdout.splitlines()]

    (probe,) = agent("probe")
    assert str(probe["python"]).startswith("3.8")
    (res,) = agent("run", json.dumps({"artifact": str(samples["truncated_tflite"])}))
    assert res["status"] == "error" and "truncated TFLite" in str(res["message"])
    (res,) = agent("run", json.dumps({"artifact": str(samples["gguf"]), "min_runs": 5, "min_s": 0.0}))
    assert res["status"] in ("ok", "error")  # ok where this Python has llama_cpp, else a clear error
    if res["status"] == "error":
        assert "no gguf runtime on this device" in str(res["message"])
        assert res["artifact_sha256"] == hashlib.sha256(samples["gguf"].read_bytes()).hexdigest()
    (err,) = agent("run", json.dumps({"artifact": "x", "max_s": float("nan")}))
    assert err["event"] == "error" and "spec.max_s" in str(err["message"])
