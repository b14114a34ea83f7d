"""onnxruntime's `onnxruntime_perf_test` (experimental adapter: no binary could be obtained or built here).

Flags and output are those of onnxruntime/test/perftest (command_args_parser.cc, performance_runner.cc):
`-m times -r N` runs, `-e PROVIDER`, `-x` intra-op threads, `-I` generated inputs (free dimensions 1, or
`-f name:value`), `-S` seed, `-s` statistics. Given a result file, it writes one line per run
"model_name,time_cost_s,peak_working_set,cpu_usage,run_index": the agent points that file at its stdout, so
the record keeps every per-run latency and its statistics come from agents/stats.py. It always runs one
untimed-for-statistics first inference ("First inference time cost: N ms", whole milliseconds).
"""

from __future__ import annotations

import re
from typing import Any

from agents.spec import WorkloadSpec
from harness.native.config import NativeConfig
from harness.native.parsed import Parsed, ToolOutputError

PHASES: tuple[tuple[str, str], ...] = ()  # it prints nothing until the runs are over
RUN_GLOB = ""
PROVIDERS = {"cpu": "cpu", "xnnpack": "xnnpack", "nnapi": "nnapi", "gpu": "cuda"}
_SESSION = re.compile(r"Session creation time cost: ([\d.e+-]+) s")
_FIRST = re.compile(r"First inference time cost: (\d+) ms")
_RATE = re.compile(r"Number of inferences per second: ([\d.e+-]+)")
_PEAK = re.compile(r"Peak working set size: (\d+) bytes")
_FALLBACK = "Some nodes were not assigned to the preferred execution providers"


def argv(tool: str, spec: WorkloadSpec, threads: int, cfg: NativeConfig) -> list[str]:
    out = [tool, "-m", "times", "-r", str(max(1, spec.min_runs)), "-e", PROVIDERS[spec.backend or "cpu"],
           "-x", str(threads), "-I", "-S", str(spec.seed), "-s"]
    for name, value in sorted(spec.dynamic_dims.items()):
        out += ["-f", f"{name}:{value}"]
    return out + [spec.artifact, "/dev/stdout"]  # per-run lines into the agent's capture of stdout


def _runs(lines: list[str]) -> list[float]:
    runs: list[tuple[int, float]] = []
    for ln in lines:
        parts = ln.strip().rsplit(",", 4)
        if len(parts) != 5:
            continue
        try:
            runs.append((int(parts[4]), round(float(parts[1]) * 1e3, 6)))
        except ValueError:
            continue
    return [ms for _, ms in sorted(runs)]


def parse(stdout: list[str], stderr: list[str], spec: WorkloadSpec, cfg: NativeConfig) -> Parsed:
    text = "\n".join(stdout)
    lat = _runs(stdout)
    session, first = _SESSION.search(text), _FIRST.search(text)
    if not lat or session is None:
        raise ToolOutputError("onnxruntime_perf_test printed no per-run lines or no session creation time")
    want = spec.backend or "cpu"
    provider = PROVIDERS[want]
    runtime: dict[str, Any] = {"name": "onnxruntime_perf_test", "version": None, "threads": None, "backend": want,
                               "backend_requested": want, "provider": provider, "experimental": True}
    if any(_FALLBACK in ln for ln in stderr + stdout):
        runtime["backend_note"] = "some nodes were not assigned to %s and ran on the CPU (onnxruntime's warning)" % (
            provider)
    peak = _PEAK.search(text)
    if peak:
        runtime["tool_peak_working_set_bytes"] = int(peak.group(1))  # ru_maxrss by the tool; ours is VmHWM
    rate = _RATE.search(text)
    return Parsed(
        runtime=runtime,
        raw={"load_time_ms": float(session.group(1)) * 1e3,
             "first_inference_ms": float(first.group(1)) if first else None,
             "throughput_per_s": float(rate.group(1)) if rate else None},
        samples={"latency_ms": lat},
        notes={"first_inference_ms": "reported by onnxruntime_perf_test in whole milliseconds",
               "load_time_ms": "onnxruntime_perf_test's session creation time",
               "throughput_per_s": "reported by onnxruntime_perf_test: runs / total run time"},
        stopping={"stop_reason": "min_runs", "runs": len(lat), "seconds": round(sum(lat) / 1e3, 4), "adaptive": False},
        input_shapes={},
    )
