"""Output parsers of the native tools and the result they build.

benchmark_model and onnxruntime_perf_test could not be obtained or built here: their adapters are tested on
text laid out exactly as their printing code writes it (benchmark_model.cc / stats_calculator.h,
performance_runner.cc), and marked experimental. llama-bench's parser is tested on the real tool in
test_native_run.py; here it meets malformed and partial output.
"""

from __future__ import annotations

import json
import signal

import pytest

from agents.spec import WorkloadSpec
from harness.metrics import METRICS
from harness.native.config import NativeConfig
from harness.native.parsed import ToolOutputError
from harness.native.result import NativeRun, build_result, wait_status
from harness.native.tools import BENCHMARK_MODEL, LLAMA_BENCH, ORT_PERF_TEST

# benchmark_model: TFLITE_LOG(INFO) lines; StatWithPercentiles::OutputToStream for each Run()
LITERT_GPU_FALLBACK = """INFO: STARTING!
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/edgefarm/ab.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Use gpu: [1]
INFO: Loaded model /data/local/tmp/edgefarm/ab.tflite
INFO: Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.
INFO: The input model file size (MB): 4.2761
INFO: Initialized session in 13.5ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=27 first=31093 curr=17522 min=17286 max=31093 avg=18459.7 std=2653 p5=17290 median=17700 p95=21000

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=56 first=17729 curr=17642 min=17217 max=18522 avg=17713.5 std=240 p5=17302 median=17680 p95=18276

INFO: Inference timings in us: Init: 13500, First inference: 31093, Warmup (avg): 18459.7, Inference (avg): 17713.5
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE
INFO: Peak memory footprint (MB): init=3.875 overall=11.0586
""".splitlines()

ORT_OUTPUT = ["student,0.00312,41234432,87,0", "student,0.00305,41234432,87,1", "student,0.00401,41234432,87,2",
              "Session creation time cost: 0.0412 s", "First inference time cost: 5 ms",
              "Total inference time cost: 0.01018 s", "Total inference requests: 3",
              "Average inference time cost: 3.39333 ms", "Total inference run time: 0.0105 s",
              "Number of inferences per second: 285.714 ", "Avg CPU usage: 87 %",
              "Peak working set size: 41234432 bytes", "Min Latency: 0.00305 s", "Max Latency: 0.00401 s",
              "P50 Latency: 0.00312 s", "P90 Latency: 0.00401 s", "P95 Latency: 0.00401 s", "P99 Latency: 0.00401 s",
              "P999 Latency: 0.00401 s"]


def _spec(fmt: str, **kw: object) -> WorkloadSpec:
    return WorkloadSpec.from_dict({"artifact": "/d/m." + fmt, "format": fmt, **kw})


def _exit(rc: int = 0, **kw: object) -> dict[str, object]:
    ev: dict[str, object] = {"event": "native_exit", "rc": rc, "timed_out": False, "poll_s": 0.1, "polls": 9,
                             "vmhwm_kib": 204800, "vmrss_kib": 100000, "rss_anon_kib": 50000, "rss_file_kib": 50000,
                             "cgroup_oom_kills_before": 0, "cgroup_oom_kills_after": 0, "thermal": {}}
    ev.update(kw)
    return ev


def _run(stdout: list[str], stderr: list[str], rc: int = 0, **kw: object) -> NativeRun:
    run = NativeRun()
    for i, ph in enumerate(("load", "measure", "done")):
        run.add({"event": "phase", "phase": ph, "t": 10.0 + i, "wall": 1, "cpu": 0.5 * i})
    run.add(_exit(rc, **kw))
    for line in stdout:
        run.add({"event": "native_line", "stream": "stdout", "line": line})
    for line in stderr:
        run.add({"event": "native_line", "stream": "stderr", "line": line})
    run.add({"event": "native_end"})
    return run


def test_benchmark_model_reported_stats_and_gpu_fallback() -> None:
    res = build_result(_spec("tflite", backend="gpu"), _run([], LITERT_GPU_FALLBACK), BENCHMARK_MODEL, NativeConfig(), [])
    assert res.status == "ok", res.message
    assert res.runtime["backend"] == "cpu" and res.runtime["backend_requested"] == "gpu"
    assert "did not take any node" in res.runtime["backend_note"] and res.runtime["threads"] == 4
    m = res.metrics
    assert m["latency_ms_mean"]["value"] == pytest.approx(17.7135) and m["latency_ms_mean"]["ci"] is None
    assert m["latency_ms_p95"]["value"] == pytest.approx(18.276) and "nearest-rank" in m["latency_ms_p95"]["note"]
    assert m["load_time_ms"]["value"] == pytest.approx(13.5) and m["first_inference_ms"]["value"] == pytest.approx(31.093)
    assert m["peak_rss_mib"]["value"] == 200.0 and "VmHWM" in m["peak_rss_mib"]["note"]
    assert "latency_ms_p99" not in m or m["latency_ms_p99"]["value"] is None  # the tool prints no p99
    assert set(m) <= set(METRICS)


def test_benchmark_model_all_same_and_partial_delegation() -> None:
    lines = list(LITERT_GPU_FALLBACK)
    lines[6] = "INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the " \
               "delegate w/ 22 delegate kernels."
    lines[13] = "INFO: count=3 curr=17000(all same)"
    res = build_result(_spec("tflite", backend="xnnpack"), _run([], lines), BENCHMARK_MODEL, NativeConfig(), [])
    assert res.runtime["backend"] == "xnnpack" and "partially" in res.runtime["backend_note"]
    assert res.metrics["latency_ms_std"]["value"] == 0.0 and res.metrics["latency_ms_max"]["value"] == 17.0


def test_onnxruntime_perf_test_samples_go_through_the_one_statistics() -> None:
    from agents.summary import series_metrics
    res = build_result(_spec("onnx", min_runs=3), _run(ORT_OUTPUT, []), ORT_PERF_TEST, NativeConfig(), [])
    assert res.status == "ok" and res.samples["latency_ms"] == [3.12, 3.05, 4.01]
    ref = series_metrics("latency_ms", [3.12, 3.05, 4.01], "ms", 0.95)
    assert res.metrics["latency_ms_mean"] == ref["latency_ms_mean"]
    assert res.metrics["latency_ms_p99"]["value"] is None  # 3 runs claim no p99, whatever the tool printed
    assert res.metrics["first_inference_ms"]["value"] == 5.0 and res.metrics["load_time_ms"]["value"] == 41.2
    assert res.runtime["tool_peak_working_set_bytes"] == 41234432


@pytest.mark.parametrize("tool", [LLAMA_BENCH, BENCHMARK_MODEL, ORT_PERF_TEST], ids=lambda t: t.binary)
def test_garbage_output_is_an_error_naming_what_is_missing(tool: object) -> None:
    from harness.native.tools import Tool
    assert isinstance(tool, Tool)
    garbage = ['{"samples_ns": "x"}', "count=abc", "nonsense,,,,", '{"n_prompt": 8, "samples_ns": [1]}']
    with pytest.raises(ToolOutputError):
        tool.parse(garbage, garbage, _spec(tool.format), NativeConfig())
    res = build_result(_spec(tool.format), _run(garbage, ["boom"]), tool, NativeConfig(), [])
    assert res.status == "error" and "exited 0 without a result" in (res.message or "")
    assert not res.metrics


def test_status_comes_from_the_supervisors_rules() -> None:
    spec = _spec("gguf")
    crashed = build_result(spec, _run([], ["GGML_ASSERT(x) failed"], rc=128 + signal.SIGSEGV), LLAMA_BENCH,
                           NativeConfig(), [])
    assert crashed.status == "crashed" and crashed.signal == signal.SIGSEGV and "GGML_ASSERT" in (crashed.message or "")
    oom = build_result(spec, _run([], ["ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer"], rc=1),
                       LLAMA_BENCH, NativeConfig(), [])
    assert oom.status == "oom"
    killed = build_result(spec, _run([], [], rc=137, cgroup_oom_kills_after=1), LLAMA_BENCH, NativeConfig(), [])
    assert killed.status == "oom" and "cgroup" in (killed.message or "")
    late = build_result(spec, _run([], [], rc=137, timed_out=True), LLAMA_BENCH, NativeConfig(), [])
    assert late.status == "timeout"
    assert wait_status(3) == 3 << 8 and wait_status(139) == signal.SIGSEGV


def test_sha_mismatch_is_an_error() -> None:
    run = NativeRun()
    run.add({"event": "native_hash", "artifact_sha256": "b" * 64})
    run.add({"event": "native_end", "sha_mismatch": True})
    res = build_result(_spec("gguf", artifact_sha256="a" * 64), run, LLAMA_BENCH, NativeConfig(), [])
    assert res.status == "error" and "a" * 64 in (res.message or "") and res.artifact_sha256 == "b" * 64
    json.dumps(res.to_event(), allow_nan=False)
