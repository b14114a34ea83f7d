"""The Python agent on an emulated ARM board: Debian's arm64 python3.11 with the aarch64 wheels of onnxruntime,
ai-edge-litert and numpy (ci/build_arm_python.sh), run under qemu-user because the profile's interpreter is a
wrapper (`python = ".../bin/python3"`): the production code path is the one every device takes. Timings under
emulation mean nothing; the schema, statuses, memory figures and the gate's verdict do. (GGUF on aarch64 goes
through the native flavour, tests/test_aarch64_native.py: llama-cpp-python publishes no aarch64 wheel.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from native_helpers import arm_python
from remote_fixtures import write_profile
from test_aarch64_native import EM_AARCH64, elf_machine

from harness.records import load_run

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "harness" / "schemas" / "result.schema.json").read_text())
# Few runs (an emulated inference of the tiny transformer takes ~1 s); one thread (ORT's spinning workers are
# slow to emulate and the figures would mean nothing anyway).
ARM_RUN = {"threads": 1, "warmup_runs": 1, "warmup_min_s": 0.0, "min_runs": 3, "min_s": 0.0, "max_s": 10.0,
           "timeout_s": 600.0}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=900)


def set_budget(profile: Path, mib: float) -> None:
    text = profile.read_text().split("\n[budgets]\n")[0]
    profile.write_text(text + f"\n[budgets]\npeak_rss_mib = {mib}\n")


def test_python_agent_on_an_emulated_arm_board(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    python = arm_python()
    assert elf_machine(python.resolve().parent / "python3.11") == EM_AARCH64  # really ARM, not the host's
    profiles = tmp_path / "profiles"
    profile = write_profile(profiles, "armboard", "board",
                            {"kind": "local", "workdir": str(tmp_path / "storage"), "python": str(python)}, run=ARM_RUN)
    set_budget(profile, 4096)
    arts = [tiny_samples["onnx"], tiny_samples["tflite"]]
    r = cli("run", "--profiles", str(profiles), "--device", "armboard", *[a for p in arts for a in ("--artifact", str(p))],
            "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), SCHEMA)
    recs = {rec.artifact.format: rec for rec in load_run(tmp_path / "out")}
    assert sorted(recs) == ["onnx", "tflite"]
    for fmt, want in (("onnx", "onnxruntime"), ("tflite", "ai-edge-litert")):
        rec = recs[fmt]
        assert rec.status == "ok", (fmt, rec.message)
        fp = rec.device.fingerprint
        assert fp["machine"] == "aarch64" and "emulated" in str(fp.get("cpu_model")), fp  # the agent ran as ARM
        assert rec.runtime["name"] == want and rec.runtime["version"] == fp["runtimes"][want]
        assert rec.runtime["backend"] == "cpu" and rec.runtime["threads"] == 1
        m = {k: rec.metrics[k].value for k in ("peak_rss_mib", "peak_rss_load_mib", "peak_rss_inference_mib",
                                                 "rss_anon_mib", "load_footprint_mib")}
        assert all(v is not None and v > 0 for v in m.values()), (fmt, m)
        assert m["peak_rss_load_mib"] <= m["peak_rss_mib"] and m["peak_rss_inference_mib"] <= m["peak_rss_mib"]
        assert rec.metrics["latency_ms_mean"].n == len(rec.samples["latency_ms"]) >= ARM_RUN["min_runs"]
    # The gate judges the ARM records' memory: within a generous budget they pass, under 1 MiB they fail.
    g = cli("gate", str(tmp_path / "out"), "--profiles", str(profiles), "--json", str(tmp_path / "pass.json"))
    assert g.returncode == 0, g.stdout + g.stderr
    assert json.loads((tmp_path / "pass.json").read_text())["verdict"] == "pass"
    set_budget(profile, 1)
    g = cli("gate", str(tmp_path / "out"), "--profiles", str(profiles), "--json", str(tmp_path / "fail.json"))
    assert g.returncode == 1, g.stdout + g.stderr
    assert json.loads((tmp_path / "fail.json").read_text())["verdict"] == "fail"
