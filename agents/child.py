"""The model process (`python -m agents _child FD SPEC`): hash the artifact, load, warm up, measure, report.

It imports only what a measurement needs: this module, spec/formats (the spec), procfs, loops/stats, and the
one backend (and runtime) of the artifact's format. Events go to FD, one JSON line each.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from agents.backends import Backend, ModelMismatch, import_failure, make_backend
from agents.loops import adaptive_loop, alternating_loop, decide_loop, timed_loop
from agents.procfs import cpus, proc_status, reset_hwm
from agents.protocol import Json, emit
from agents.result import looks_like_oom
from agents.sequential import Gated
from agents.spec import WorkloadSpec

MIB = 1024.0 * 1024.0


def _sha256_constructor() -> Any:
    """The interpreter's built-in SHA-256 (no OpenSSL: hashlib's would add ~4 MiB to the model's memory)."""
    for mod in ("_sha2", "_sha256"):  # 3.12+, older
        try:
            return getattr(__import__(mod), "sha256")
        except (ImportError, AttributeError):
            continue
    import hashlib
    return hashlib.sha256


def file_sha256(path: str) -> str:
    """sha256 of a file, read in 1 MiB blocks into one buffer."""
    h = _sha256_constructor()()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return str(h.hexdigest())


def _die_with_agent() -> None:
    """Linux: have the kernel SIGKILL this model process if the agent dies (even by SIGKILL): no orphans."""
    try:
        import ctypes  # the runtimes' numpy imports it anyway

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    agent = os.environ.get("EDGEFARM_AGENT_PID", "")
    if agent.isdigit() and os.getppid() != int(agent):  # the agent was gone before the prctl
        os._exit(1)


def _changed(path: str, want: str, got: str) -> str:
    return ("%s: artifact sha256 mismatch: expected %s, the file on the device has %s (changed after it was "
            "staged); not measured" % (path, want, got))


def _fixed_stopping(n: int, wall: float, runs: int, spec: WorkloadSpec) -> Json:
    """Why a fixed-count measurement ended: both floors met, the max_runs cap, or max_s."""
    met = n >= runs and wall >= spec.min_s
    capped = not met and n >= spec.max_runs
    return {"stop_reason": "max_runs" if capped else "min_runs_and_min_s" if met else "max_s", "runs": n,
            "seconds": round(wall, 4), "adaptive": False}


def child_main(fd: int, raw_spec: str) -> int:
    _die_with_agent()
    out = os.fdopen(fd, "w")
    import json
    spec = WorkloadSpec.from_dict(json.loads(raw_spec))  # the agent validated it; this only types it
    fmt = spec.format or ""
    found: Json = {}

    def phase(name: str) -> None:
        emit({"event": "phase", "phase": name, "t": time.monotonic(), "wall": time.time(),
              "cpu": time.process_time()}, out)

    def progress(runs: int, elapsed: float, eta: Optional[float]) -> None:
        emit({"event": "progress", "phase": "measure", "runs": runs, "elapsed_s": round(elapsed, 3),
              "eta_s": None if eta is None else round(max(0.0, eta), 3)}, out)

    def finish(status: str, message: Optional[str], **kw: Any) -> int:
        emit(dict({"event": "child_result", "status": status, "message": message}, **dict(found, **kw)), out)
        # Skip interpreter and runtime teardown: nothing is measured after this, and a runtime that
        # crashes in its destructors must not turn a finished measurement into a crash.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    try:
        if spec.pin_cpus:
            try:
                os.sched_setaffinity(0, set(spec.pin_cpus))
            except (OSError, AttributeError) as e:
                return finish("error", "pin_cpus %s: cannot pin the model process (%s); CPUs here: %s"
                              % (spec.pin_cpus, e, cpus()))
        # The bytes about to be loaded, hashed before the runtime sees them and outside any timed region.
        found["artifact_sha256"] = got = file_sha256(spec.artifact)
        if spec.artifact_sha256 is not None and got != spec.artifact_sha256:
            return finish("error", _changed(spec.artifact, spec.artifact_sha256, got))
        if spec.rlimit_as_mib is not None:
            import resource
            lim = int(spec.rlimit_as_mib * MIB)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        try:
            backend = make_backend(spec)
        except ImportError as e:
            return finish(*import_failure(fmt, e, spec.rlimit_as_mib))
        alt = spec.alternate
        other: Optional[Backend] = None  # the alternate model's backend (spec.alternate)
        raw_b: Json = {}
        if alt is not None:
            found["alternate"] = {"artifact_sha256": file_sha256(alt.artifact)}
            if alt.artifact_sha256 is not None and found["alternate"]["artifact_sha256"] != alt.artifact_sha256:
                return finish("error", _changed(alt.artifact, alt.artifact_sha256,
                                                found["alternate"]["artifact_sha256"]))
            spec_b = WorkloadSpec.from_dict(dict(spec.to_dict(), artifact=alt.artifact, format=alt.format,
                                                 artifact_sha256=None, alternate=None))
            try:
                other = make_backend(spec_b)
            except ImportError as e:
                return finish(*import_failure(alt.format or "", e, spec.rlimit_as_mib))
        raw: Json = {}
        samples: Dict[str, List[float]] = {}
        before = proc_status()
        phase("load")
        t0 = time.perf_counter()
        backend.load()
        raw["load_time_ms"] = (time.perf_counter() - t0) * 1e3
        after = proc_status()
        if other is None:
            if "VmRSS" in before and "VmRSS" in after:
                raw["load_footprint_mib"] = after["VmRSS"] - before["VmRSS"]
            raw["peak_rss_load_mib"] = after.get("VmHWM")
            raw["hwm_reset"] = spec.reset_hwm and "VmHWM" in after and reset_hwm()
        else:  # both models resident: the process's memory is neither's (their own launches measure it)
            raw["hwm_reset"] = False
            try:
                t0 = time.perf_counter()
                other.load()
                raw_b["load_time_ms"] = (time.perf_counter() - t0) * 1e3
                other.prepare()
            except ModelMismatch as e:  # named by the alternate's file, not the first model's
                return finish("error", "%s: %s" % (other.spec.artifact, e))
            found["alternate"]["input_shapes"] = other.input_shapes
        backend.prepare()
        found["input_shapes"] = backend.input_shapes
        phase("first")
        t0 = time.perf_counter()
        backend.run_once()
        raw["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
        if other is not None:
            t0 = time.perf_counter()
            other.run_once()
            raw_b["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
        phase("warmup")
        if other is None:
            timed_loop(backend.run_once, spec.warmup_runs, spec.warmup_min_s, spec.max_s)
        else:
            alternating_loop(backend.run_once, other.run_once, 1, spec.warmup_runs, spec.warmup_min_s, spec.max_s)
        phase("measure")
        runs = spec.gguf.repetitions if fmt == "gguf" else spec.min_runs
        backend.recording = True
        ad = spec.adaptive
        lat_b: List[float] = []
        if other is not None and alt is not None:  # (alt: for the type checker)
            other.recording = True
            lat, lat_b, wall = alternating_loop(backend.run_once, other.run_once, alt.every, runs, spec.min_s,
                                                spec.max_s, max(runs, spec.max_runs), progress=progress)
            stopping = dict(_fixed_stopping(len(lat), wall, runs, spec), alternating_every=alt.every)
        elif ad is not None and ad.mode == "decide":
            gated = [Gated(g.metric, g.series, g.kind, g.p, g.limit, g.lower_is_better, g.per_run) for g in ad.gated]
            lat, wall, stopping = decide_loop(backend.run_once, runs, spec.min_s, spec.max_s, gated, spec.confidence,
                                              ad.looks, ad.growth, lambda: backend.samples,
                                              max_runs=max(runs, spec.max_runs), progress=progress)
        elif ad is not None:
            lat, wall, stopping = adaptive_loop(backend.run_once, runs, spec.min_s, spec.max_s, ad.percentiles,
                                                ad.rel_width, spec.confidence, max_runs=max(runs, spec.max_runs),
                                                progress=progress)
        else:
            lat, wall = timed_loop(backend.run_once, runs, spec.min_s, spec.max_s, max(runs, spec.max_runs),
                                   progress=progress)
            stopping = _fixed_stopping(len(lat), wall, runs, spec)
        phase("done")
        samples["latency_ms"] = [round(x, 6) for x in lat]
        for k, v in backend.samples.items():
            samples[k] = [round(x, 6) for x in v]
        # Samples go out before the last VmHWM read, so the peak covers their encoding too and the
        # figure stays comparable with wait4()'s ru_maxrss.
        sent: Json = {"event": "child_samples", "samples": samples}
        if other is not None:
            sent["alternate_samples"] = dict({"latency_ms": [round(x, 6) for x in lat_b]},
                                             **{k: [round(x, 6) for x in v] for k, v in other.samples.items()})
        emit(sent, out)
        end = proc_status()
        if other is not None:  # runs / wall would count the other model's time: no throughput; no memory figures
            found["alternate"].update(raw=raw_b, runtime=other.runtime)
            return finish("ok", None, raw=raw, runtime=backend.runtime, stopping=stopping)
        raw["throughput_per_s"] = len(lat) / wall if wall > 0 else None
        raw["rss_anon_mib"], raw["rss_file_mib"] = end.get("RssAnon"), end.get("RssFile")
        if raw["hwm_reset"]:
            raw["peak_rss_inference_mib"] = end.get("VmHWM")
            raw["peak_rss_mib"] = max(end.get("VmHWM", 0.0), raw["peak_rss_load_mib"] or 0.0)
        else:
            raw["peak_rss_mib"] = end.get("VmHWM")
        return finish("ok", None, raw=raw, runtime=backend.runtime, stopping=stopping)
    except MemoryError as e:
        return finish("oom", "MemoryError: %s" % e)
    except ModelMismatch as e:
        return finish("error", "%s: %s" % (spec.artifact, e))
    except Exception as e:  # a runtime raised: report it, the parent maps allocation failures to oom
        msg = "%s: %s" % (type(e).__name__, e)
        return finish("oom" if looks_like_oom(msg) else "error", msg[:2000])


