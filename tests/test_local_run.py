"""Issue 2 end to end on the `local` device: real runtimes, real artifacts, real cgroup cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.artifacts import inspect
from harness.farm import run_farm
from harness.profiles import load_profile
from harness.records import load_run
from harness.runner import RunOverrides

ENCODER_METRICS = ["load_time_ms", "load_footprint_mib", "peak_rss_mib", "peak_rss_load_mib",
                   "rss_anon_mib", "rss_file_mib", "first_inference_ms", "latency_ms_mean", "latency_ms_std",
                   "latency_ms_min", "latency_ms_max", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95",
                   "latency_ms_p99", "throughput_per_s", "memory_headroom_pct"]
GGUF_METRICS = ["load_time_ms", "load_footprint_mib", "peak_rss_mib", "rss_anon_mib", "rss_file_mib",
                "first_inference_ms", "ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "tpot_ms",
                "itl_ms_p50", "itl_ms_p90"]


def big_onnx(path: Path, mib: int) -> Path:
    """An ONNX model whose weights alone need `mib` MiB: y = x @ W."""
    cols = 1024
    rows = mib * 2**20 // (4 * cols)
    w = numpy_helper.from_array(np.full((rows, cols), 0.5, dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cols])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_all_three_formats_ok_with_every_metric(tiny_samples: dict[str, Path], fast_profiles: Path,
                                                tmp_path: Path) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    arts = [inspect(tiny_samples[f]) for f in ("onnx", "tflite", "gguf")]
    res = run_farm([prof], arts, tmp_path / "run", RunOverrides(
        min_s=0.5, max_s=3.0, min_runs=400,  # 4 GGUF requests x 15 inter-token gaps: enough for p90 whatever the speed
        extra={"gguf": {"prompt_tokens": 16, "new_tokens": 16, "repetitions": 4}}))
    recs = {r.artifact.format: r for r in load_run(tmp_path / "run")}
    assert set(recs) == {"onnx", "tflite", "gguf"}
    for fmt, rec in recs.items():
        assert rec.status == "ok", (fmt, rec.message)
        assert rec.runtime.get("name") and rec.runtime.get("version")
        assert rec.device.fingerprint.get("cpu_count")
        assert rec.artifact.sha256 == inspect(tiny_samples[fmt]).sha256
        wanted = GGUF_METRICS if fmt == "gguf" else ENCODER_METRICS
        missing = [m for m in wanted if rec.value(m) is None]
        assert not missing, (fmt, missing, {m: rec.metrics[m].note for m in missing if m in rec.metrics})
    p95 = recs["onnx"].metrics["latency_ms_p95"]
    assert p95.ci is not None and p95.ci[0] <= p95.value <= p95.ci[1]  # type: ignore[operator]
    assert len(recs["onnx"].samples["latency_ms"]) >= 400
    assert recs["gguf"].runtime["name"] == "llama-cpp-python"
    pushed = [r.provenance.push.bytes_sent for r in recs.values() if r.provenance.push is not None]
    assert len(pushed) == len(recs)
    assert all(b in (0, r.artifact.size_bytes) for b, r in zip(pushed, recs.values()))  # all or (cached) nothing
    assert res.bytes_sent["local"] >= sum(pushed)  # the session's count includes every artifact push


def test_memory_cap_gives_oom_and_the_run_goes_on(tiny_samples: dict[str, Path], fast_profiles: Path,
                                                  tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (fast_profiles / "local.toml").read_text()
    (profiles / "local.toml").write_text(text.replace("cap_mib = 3072", "cap_mib = 160"))
    prof = load_profile(profiles / "local.toml")
    big = big_onnx(tmp_path / "big.onnx", 300)
    arts = [inspect(tiny_samples["onnx"]), inspect(big), inspect(tiny_samples["tflite"])]
    run_farm([prof], arts, tmp_path / "run", RunOverrides(max_s=1.0))
    recs = load_run(tmp_path / "run")
    assert [r.artifact.name for r in recs] == [a.name for a in arts]  # streamed in order, nothing lost
    assert [r.status for r in recs] == ["ok", "oom", "ok"], [(r.status, r.message) for r in recs]
    oom = recs[1]
    assert "memory" in (oom.message or "").lower()
    reached = oom.value("peak_rss_mib")
    assert reached is not None and 100 < reached <= 161
    assert oom.provenance.memory_cap is not None and oom.provenance.memory_cap.limit_mib == 160


def test_missing_and_unknown_artifacts_are_clear_errors(tmp_path: Path) -> None:
    from harness.errors import ArtifactError

    with pytest.raises(ArtifactError, match="nope.onnx: no such file"):
        inspect(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(ArtifactError, match="junk.bin: not a recognised model file"):
        inspect(junk)


@pytest.mark.slow
def test_mmapped_weights_count_under_the_cap(fast_profiles: Path, tmp_path: Path) -> None:
    """The 102 MB sample GGUF (llama.cpp mmaps it) under an 80 MiB cap is `oom`, through the real CLI; under
    a cap that holds weights and working memory it is `ok`, with its weights locked in the capped group."""
    from fault_helpers import edgefarm, result_lines

    from harness.samples import GGUF_NAME, write_gguf

    gguf = write_gguf(tmp_path / GGUF_NAME)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (fast_profiles / "local.toml").read_text()
    for cap in (80, 400):
        (profiles / "local.toml").write_text(text.replace("cap_mib = 3072", f"cap_mib = {cap}"))
        out = tmp_path / f"run-{cap}"
        res = edgefarm(tmp_path, "run", "--profiles", str(profiles), "--artifact", str(gguf), "--out", str(out), "-q")
        (rec,) = result_lines(out)
        cap_info = rec["provenance"]["memory_cap"]
        if cap_info["kind"] not in ("cgroup-v1", "cgroup-v2"):
            pytest.skip(f"no writable memory cgroup here ({cap_info['kind']}): mmapped weights cannot be charged")
        if cap == 80:
            assert res.returncode == 4 and rec["status"] == "oom", (rec["status"], rec["message"])
            assert "mmapped weights" in rec["message"] and "80 MiB" in rec["message"]
        else:
            assert res.returncode == 0 and rec["status"] == "ok", rec["message"]
            assert cap_info["weights_locked_mib"] == pytest.approx(gguf.stat().st_size / 2**20, abs=0.01)
            assert cap_info["group_peak_mib"] >= cap_info["weights_locked_mib"]
