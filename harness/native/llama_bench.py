"""llama.cpp's llama-bench: argv from a WorkloadSpec, and its `-o jsonl` output parsed into raw figures.

A request in the Python agent is `prompt_tokens` of prefill then `new_tokens` of decode. llama-bench measures
them as separate tests, each repeated `-r` times with one untimed warmup: pp<P> (prompt processing from an empty
context) and tg<N> at depth P (`-d 0,P`: N tokens decoded one at a time after a P-token context, as the Python
agent decodes after the prompt; the pp<P>@P and tg<N>@0 tests that `-d` adds are not used). Flash attention is
off (`-fa 0`), as in the Python agent's llama-cpp-python context, so both flavours run the same kernels. Its
JSONL gives the per-repetition times (samples_ns) and rates (samples_ts); everything below is derived from
those, and each derived figure says how in its note.
"""

from __future__ import annotations

import json
from typing import Any

from agents.spec import WorkloadSpec
from harness.native.config import NativeConfig
from harness.native.parsed import Parsed, ToolOutputError

PHASES = (("first", "llama-bench: benchmark 1/*: warmup*"),)
RUN_GLOB = "llama-bench: benchmark */*: * run [0-9]*"


def argv(tool: str, spec: WorkloadSpec, threads: int, cfg: NativeConfig) -> list[str]:
    """llama-bench's documented flags for this spec (README of tools/llama-bench)."""
    g = spec.gguf
    out = [tool, "-m", spec.artifact, "-p", str(g.prompt_tokens), "-n", str(g.new_tokens), "-d",
           "0,%d" % g.prompt_tokens, "-r", str(g.repetitions), "-t", str(threads), "-ngl",
           str(cfg.gpu_layers if spec.backend == "gpu" else 0), "-fa", "0", "-o", "jsonl", "--progress"]
    if spec.warmup_runs == 0:
        out.append("--no-warmup")
    return out


def _tests(stdout: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in stdout:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("samples_ns"), list):
            out.append(obj)
    return out


def _floats(xs: Any) -> list[float]:
    return [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]


def parse(stdout: list[str], stderr: list[str], spec: WorkloadSpec, cfg: NativeConfig) -> Parsed:
    tests = _tests(stdout)
    depth = spec.gguf.prompt_tokens

    def find(prompt: bool, at: int) -> dict[str, Any] | None:
        return next((t for t in tests if (int(t.get("n_prompt") or 0) > 0) == prompt
                     and (int(t.get("n_gen") or 0) > 0) != prompt and int(t.get("n_depth") or 0) == at), None)

    pp, tg = find(True, 0), find(False, depth)
    if pp is None or tg is None:
        raise ToolOutputError("llama-bench printed %d test line(s) but not both a pp test at depth 0 and a tg test "
                              "at depth %d (a llama-bench without -d?)" % (len(tests), depth))
    first = pp
    want = spec.backend or "cpu"
    ran = str(first.get("backends") or "CPU")
    gpu_ran = ran.upper() not in ("CPU", "") and int(first.get("n_gpu_layers") or 0) > 0
    runtime: dict[str, Any] = {
        "name": "llama-bench", "version": "%s (%s)" % (first.get("build_number"), first.get("build_commit")),
        "threads": int(first.get("n_threads") or 0) or None, "backend": ran.lower() if gpu_ran else "cpu",
        "backend_requested": want, "n_gpu_layers": first.get("n_gpu_layers"), "backends_built": ran,
        "cpu_info": first.get("cpu_info"), "model_size_bytes": first.get("model_size"),
        "flash_attn": {0: "off", 1: "on", -1: "auto"}.get(int(first.get("flash_attn") or 0), "auto"),
    }
    if want != "cpu" and not gpu_ran:
        runtime["backend_note"] = ("requested %s (-ngl %s) but llama-bench ran on the CPU: this build's backends "
                                   "are %s" % (want, first.get("n_gpu_layers"), ran))
    p, n = int(pp["n_prompt"]), int(tg["n_gen"])
    pp_ns, tg_ns = _floats(pp["samples_ns"]), _floats(tg["samples_ns"])
    reps = min(len(pp_ns), len(tg_ns))
    s: dict[str, list[float]] = {
        "prefill_tokens_per_s": _floats(pp.get("samples_ts") or []),
        "decode_tokens_per_s": _floats(tg.get("samples_ts") or []),
        "ttft_ms": [round(x / 1e6, 6) for x in pp_ns],
        "latency_ms": [round((pp_ns[i] + tg_ns[i]) / 1e6, 6) for i in range(reps)],
        "tpot_ms": [round(x / n / 1e6, 6) for x in tg_ns],
        "itl_ms": [],  # not measured (llama-bench has no per-token times): present, empty, as in the Python shape
    }
    lat_total_s = sum(s["latency_ms"]) / 1e3
    notes = {
        "ttft_ms": "derived: llama-bench pp%d time per repetition (prompt evaluated in one batch; the first token "
                   "comes from its logits, sampling not timed); median" % p,
        "prefill_tokens_per_s": "llama-bench pp%d samples_ts (empty context)" % p,
        "decode_tokens_per_s": "llama-bench tg%d @ d%d samples_ts: %d tokens decoded one by one after a "
                               "%d-token context (as after the prompt)" % (n, p, n, p),
        "tpot_ms": "derived: llama-bench tg%d @ d%d time / %d per repetition" % (n, p, n),
        "latency_ms": "derived: pp%d + tg%d @ d%d time of the same repetition index (two llama-bench tests)"
                      % (p, n, p),
        "throughput_per_s": "derived: repetitions / summed pp+tg time",
        "itl_ms": "not measured: llama-bench reports per-repetition totals, not per-token times",
        "first_inference_ms": "not measured: llama-bench's warmup run is untimed",
        "load_time_ms": "not measured: llama-bench does not report model load time",
        "load_footprint_mib": "not measured: the native agent reads the tool's memory from outside",
    }
    if spec.gguf.prompt:
        notes["ttft_ms"] += "; gguf.prompt ignored: llama-bench evaluates random token ids"
    return Parsed(
        runtime=runtime,
        raw={"throughput_per_s": reps / lat_total_s if lat_total_s > 0 else None},
        samples=s, notes=notes,
        stopping={"stop_reason": "repetitions", "runs": reps, "seconds": round(lat_total_s, 4), "adaptive": False},
        input_shapes={"prompt_tokens": [p], "new_tokens": [n]},
    )
