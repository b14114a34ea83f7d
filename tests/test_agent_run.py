"""The agent measures real models in all three runtimes, and survives what they do wrong."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import hashlib

from agent_helpers import AGENT, AGENT_ENV, FAST, make_samples, run_spec

from agents.spec import WorkloadSpec

from harness.metrics import METRICS, SAMPLE_SERIES

CONTROLLER_ONLY = {"energy_j_per_inference", "energy_j_per_token", "power_w_avg", "power_w_peak",
                   "memory_headroom_pct"}
GGUF_ONLY = {"ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "tpot_ms"} | {
    f"itl_ms_p{p}" for p in (50, 90, 95, 99)}
PHASES = ["load", "first", "warmup", "measure", "done"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("agent_run"))


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "gguf"])
def test_each_format_is_ok_with_every_metric_filled(samples: dict[str, Path], fmt: str) -> None:
    # GGUF: exactly 6 repetitions (min_s 0), so request-level p90+ must be refused with a note.
    r = run_spec(samples[fmt], dynamic_dims={"batch": 1, "seq": 16}, min_s=0.0 if fmt == "gguf" else 0.2)
    assert r.exit_code == 0, r.stderr
    res = r.result
    assert res["status"] == "ok", res["message"]
    assert res["format"] == fmt and res["runtime"]["version"]
    assert [e["phase"] for e in r.events if e["event"] == "phase"] == PHASES
    assert [p["name"] for p in res["phases"]] == PHASES[:-1]
    assert all(p["t_start"] <= p["t_end"] and p["cpu_s"] >= 0 for p in res["phases"])
    expected = set(METRICS) - CONTROLLER_ONLY - (set() if fmt == "gguf" else GGUF_ONLY)
    assert set(res["metrics"]) == expected
    for name, m in res["metrics"].items():
        assert m["unit"] == METRICS[name].unit, name
        if m["value"] is None:  # only a percentile over too few samples may be null, and it says so
            assert name.startswith("latency_ms_p") and fmt == "gguf", name
            assert m["note"].startswith("insufficient samples: n=6 < "), m
        else:
            assert m["value"] >= 0, name
    for name in ("latency_ms_p50", "latency_ms_mean") + (("itl_ms_p99", "tpot_ms") if fmt == "gguf" else
                                                         ("latency_ms_p99",)):
        lo, hi = res["metrics"][name]["ci"]
        assert lo <= res["metrics"][name]["value"] <= hi, name
    assert set(res["samples"]) <= set(SAMPLE_SERIES) and res["samples"]["latency_ms"]
    if fmt == "gguf":
        assert len(res["samples"]["itl_ms"]) == 6 * 74
        assert len(res["samples"]["ttft_ms"]) == 6
        assert res["metrics"]["decode_tokens_per_s"]["value"] > 0
        assert res["metrics"]["rss_file_mib"]["value"] > 0
    else:
        assert len(res["samples"]["latency_ms"]) >= 400
    # provenance: the bytes it loaded, what it fed the model, the spec it used with every default filled
    assert res["artifact_sha256"] == hashlib.sha256(samples[fmt].read_bytes()).hexdigest()
    assert res["input_shapes"] and all(isinstance(d, int) and d > 0 for v in res["input_shapes"].values() for d in v)
    if fmt == "onnx":
        assert all(shape[-1] == 16 for shape in res["input_shapes"].values()), res["input_shapes"]  # seq = 16
    used = WorkloadSpec.from_dict(res["workload"])
    assert used.format == fmt and used.confidence == 0.95 and used.reset_hwm is True and used.gguf.n_ctx > 0
    assert set(res["workload"]) == set(WorkloadSpec().to_dict())


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "gguf"])
def test_peak_memory_agrees_with_wait4_ru_maxrss(samples: dict[str, Path], fmt: str) -> None:
    """Without a VmHWM reset, peak_rss_mib is the same figure as the kernel's ru_maxrss for that child."""
    res = run_spec(samples[fmt], reset_hwm=False, min_runs=20, min_s=0.05).result
    assert res["status"] == "ok" and res["os_peak_rss_equals"] == "peak_rss_mib"
    assert "peak_rss_inference_mib" not in res["metrics"]
    assert res["metrics"]["peak_rss_mib"]["value"] == pytest.approx(res["os_peak_rss_mib"], rel=0.02)


@pytest.mark.parametrize("fmt", ["onnx", "gguf"])
def test_after_a_hwm_reset_ru_maxrss_is_the_inference_peak(samples: dict[str, Path], fmt: str) -> None:
    res = run_spec(samples[fmt], min_runs=20, min_s=0.05).result
    m = {k: v["value"] for k, v in res["metrics"].items()}
    assert res["os_peak_rss_equals"] == "peak_rss_inference_mib"
    assert m["peak_rss_inference_mib"] == pytest.approx(res["os_peak_rss_mib"], rel=0.02)
    assert m["peak_rss_mib"] == max(m["peak_rss_load_mib"], m["peak_rss_inference_mib"])


def test_kernel_reports_the_post_reset_high_water_mark_at_wait4() -> None:
    """Why the figures above differ: clear_refs 5 resets the mm's hiwater, which exit copies to ru_maxrss.

    A small spawner runs the measured child, as the agent does: ru_maxrss also counts the spawning
    process's resident size at fork/exec (pytest's ~80 MiB would hide the effect).
    """
    inner = ("b = bytearray(96 << 20); del b\n"
             "open('/proc/self/clear_refs', 'w').write('5')\n"
             "c = bytearray(32 << 20)\n"
             "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n")
    spawner = ("import os, subprocess, sys\n"
               "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.PIPE)\n"
               "hwm = int(p.stdout.read()); _, _, ru = os.wait4(p.pid, 0); p.returncode = 0\n"
               "print(hwm, ru.ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", spawner, inner], capture_output=True, text=True, check=True)
    hwm_kib, maxrss_kib = map(int, out.stdout.split())
    assert maxrss_kib < 96 * 1024  # the 96 MiB load-like peak is gone
    assert maxrss_kib == pytest.approx(hwm_kib, rel=0.02)


def test_duplicated_vocab_gguf_crashes_with_sigabrt_and_the_agent_survives(samples: dict[str, Path]) -> None:
    r = run_spec(samples["dupvocab"])
    assert r.exit_code == 0
    res = r.result
    assert res["status"] == "crashed" and res["signal"] == signal.SIGABRT
    assert "SIGABRT" in res["message"] and "GGML_ASSERT" in res["message"]
    assert res["os_peak_rss_mib"] > 0 and res["phases"][0]["name"] == "load"


def test_timeout_kills_the_model_process_group(samples: dict[str, Path]) -> None:
    t0 = time.monotonic()
    r = run_spec(samples["tflite"], timeout_s=2.0, min_s=60.0, max_s=60.0, max_runs=10**9)
    elapsed = time.monotonic() - t0
    res = r.result
    assert res["status"] == "timeout" and "timeout_s=2" in res["message"]
    assert elapsed < 15
    names = [p["name"] for p in res["phases"]]  # the phases seen before the kill are kept
    assert names == PHASES[: len(names)]


@pytest.mark.parametrize("fmt,spec", [
    ("onnx", {"rlimit_as_mib": 700, "dynamic_dims": {"batch": 20000, "seq": 64}}),
    ("gguf", {"rlimit_as_mib": 700, "gguf": {"n_ctx": 200000}}),
    ("tflite", {"rlimit_as_mib": 60}),
])
def test_rlimit_gives_oom(samples: dict[str, Path], fmt: str, spec: dict[str, Any]) -> None:
    r = run_spec(samples[fmt], **spec)
    assert r.exit_code == 0
    res = r.result
    assert res["status"] == "oom", res["message"]
    assert res["message"]


def test_pinning_threads_and_input_shapes(samples: dict[str, Path]) -> None:
    res = run_spec(samples["onnx"], pin_cpus=[0], threads=1, min_runs=10, min_s=0.05,
                   input_shapes={"input_ids": [2, 8]}).result
    assert res["status"] == "ok", res["message"]


def test_few_samples_give_null_percentiles_with_a_note(samples: dict[str, Path]) -> None:
    res = run_spec(samples["tflite"], min_runs=12, min_s=0.0, max_s=0.0001, confidence=0.95).result
    n = len(res["samples"]["latency_ms"])
    assert res["status"] == "ok" and n < 36
    p95 = res["metrics"]["latency_ms_p95"]
    assert p95["value"] is None and p95["note"] == f"insufficient samples: n={n} < 72 needed for p95 at 95% confidence"
    assert res["metrics"]["latency_ms_max"]["value"] is not None


def _own_memory_cgroup_v1() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, rel = line.split(":", 2)
        if "memory" in ctrls.split(","):
            d = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
            return d if (d / "memory.oom_control").exists() and os.access(d, os.W_OK) else None
    return None


def test_kernel_oom_kill_in_a_memory_cgroup_is_oom(samples: dict[str, Path], tmp_path: Path) -> None:
    """The agent reads its memory cgroup's OOM-kill counter: a SIGKILL it did not send is then `oom`."""
    parent = _own_memory_cgroup_v1()
    if parent is None:
        pytest.skip("no writable cgroup v1 memory controller here")
    group = parent / f"edgefarm-agent-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(300 << 20))
        spec = {**FAST, "artifact": str(samples["onnx"]), "dynamic_dims": {"batch": 20000, "seq": 64}}
        script = f'echo $$ > {group}/cgroup.procs && exec "$0" "$@"'
        out = subprocess.run(["sh", "-c", script, *AGENT, "run", json.dumps(spec)],
                             capture_output=True, text=True, timeout=120, env=AGENT_ENV)
        res = json.loads(out.stdout.splitlines()[-1])
        assert res["status"] == "oom" and res["signal"] == signal.SIGKILL, res["message"]
        assert "cgroup" in res["message"]
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_max_runs_bounds_a_very_fast_model(samples: dict[str, Path]) -> None:
    r = run_spec(samples["tflite"], min_runs=10, min_s=30.0, max_s=30.0, max_runs=500)
    res = r.result
    assert res["status"] == "ok"
    assert len(res["samples"]["latency_ms"]) == 500  # stopped by the count, long before min_s
    assert res["stopping"]["stop_reason"] == "max_runs"
