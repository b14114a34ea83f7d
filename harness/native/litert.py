"""LiteRT / TFLite `benchmark_model` (experimental adapter: no binary could be obtained or built here).

Flags and output are those of tensorflow/lite/tools/benchmark/benchmark_model.cc and benchmark_tflite_model.cc:
run control --num_runs/--min_secs/--max_secs/--warmup_runs/--warmup_min_secs/--num_threads, delegates
--use_xnnpack/--use_gpu/--use_nnapi. It logs (TFLITE_LOG, stderr, "INFO: " prefix) one Stat line per Run()
("count=N first=F curr=C min=A max=B avg=M std=S" and, in versions whose Stat keeps its values,
" p5=.. median=.. p95=.."; "count=N curr=C(all same)" when every run took the same), then
"Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A". It prints no
per-run samples: its statistics are recorded as reported, with no interval (null where it prints none).
"""

from __future__ import annotations

import re
from typing import Any

from agents.spec import WorkloadSpec
from harness.native.config import NativeConfig
from harness.native.parsed import Parsed, ToolOutputError

PHASES = (("first", "*Running benchmark for at least*"), ("measure", "*Running benchmark for at least*"))
RUN_GLOB = ""
DELEGATE_FLAGS = {"xnnpack": "--use_xnnpack=true", "gpu": "--use_gpu=true", "nnapi": "--use_nnapi=true"}
_STAT = re.compile(r"count=(\d+)(.*)$")
_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.e+-]+), First inference: ([\d.e+-]+), "
                      r"Warmup \(avg\): ([\d.e+-]+|nan), Inference \(avg\): ([\d.e+-]+|nan)")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) executed")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_THREADS = re.compile(r"(?:#threads used for CPU inference|Num threads): \[(\d+)\]")


def argv(tool: str, spec: WorkloadSpec, threads: int, cfg: NativeConfig) -> list[str]:
    out = [tool, f"--graph={spec.artifact}", f"--num_runs={spec.min_runs}", f"--min_secs={spec.min_s:g}",
           f"--max_secs={spec.max_s:g}", f"--warmup_runs={spec.warmup_runs}", f"--warmup_min_secs={spec.warmup_min_s:g}",
           f"--num_threads={threads}"]
    if (spec.backend or "cpu") in DELEGATE_FLAGS:
        out.append(DELEGATE_FLAGS[spec.backend or "cpu"])
    if spec.input_shapes:
        names = sorted(spec.input_shapes)
        out += ["--input_layer=" + ",".join(names),
                "--input_layer_shape=" + ":".join(",".join(str(d) for d in spec.input_shapes[n]) for n in names)]
    return out


def _stat(text: str) -> dict[str, float]:
    m = _STAT.search(text)
    if m is None:
        return {}
    out: dict[str, float] = {"count": float(m.group(1))}
    rest = m.group(2)
    for key, val in re.findall(r"(\w+)=([-\d.e+]+|nan)", rest):
        try:
            out[key] = float(val)
        except ValueError:
            continue
    if "(all same)" in rest or ("min" not in out and "curr" in out):
        out.update({"min": out["curr"], "max": out["curr"], "avg": out["curr"], "std": 0.0})
    return out


def parse(stdout: list[str], stderr: list[str], spec: WorkloadSpec, cfg: NativeConfig) -> Parsed:
    lines = stderr + stdout
    stats = [_stat(ln) for ln in lines if _STAT.search(ln) and "Running benchmark" not in ln]
    timings = next((m for m in (_TIMINGS.search(ln) for ln in lines) if m), None)
    if timings is None or len(stats) < 2:
        raise ToolOutputError("benchmark_model printed no 'Inference timings in us' line and two run statistics")
    run = stats[-1]  # the measured Run(); the one before it is the warmup
    ran, note = "cpu", None
    for ln in lines:
        a, n = _APPLIED.search(ln), _NOT_APPLIED.search(ln)
        if a:
            ran = a.group(1).lower()
            if a.group(2) == "partially":
                note = "partially delegated to %s: the rest of the graph ran on the CPU" % a.group(1)
        elif n:
            note = "requested %s delegate did not take any node: ran on the CPU" % n.group(1)
    want = spec.backend or "cpu"
    threads = next((int(m.group(1)) for m in (_THREADS.search(ln) for ln in lines) if m), None)
    runtime: dict[str, Any] = {"name": "benchmark_model", "version": None, "threads": threads, "backend": ran,
                               "backend_requested": want, "experimental": True}
    if want not in ("cpu", ran) and note is None:
        note = "requested %s, but benchmark_model reported no %s delegate applied: ran on the CPU" % (
            want, want)
    if note:
        runtime["backend_note"] = note
    us = 1e-3
    how = "reported by benchmark_model (no per-run samples: no interval)"
    reported = {"latency_ms_mean": run["avg"] * us, "latency_ms_min": run["min"] * us, "latency_ms_max": run["max"] * us,
                "latency_ms_std": run["std"] * us}
    notes = {"latency_ms_std": how + "; population standard deviation"}
    if "median" in run:
        reported["latency_ms_p50"] = run["median"] * us
        reported["latency_ms_p95"] = run["p95"] * us
        notes["latency_ms_p50"] = notes["latency_ms_p95"] = how + "; nearest-rank sorted[n*p/100], not interpolated"
    return Parsed(
        runtime=runtime,
        raw={"load_time_ms": float(timings.group(1)) * us, "first_inference_ms": float(timings.group(2)) * us},
        reported=reported, notes=notes,
        stopping={"stop_reason": "tool", "runs": int(run["count"]), "seconds": None, "adaptive": False},
        input_shapes=dict(spec.input_shapes),
    )
