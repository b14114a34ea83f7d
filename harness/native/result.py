"""Native agent events -> AgentResult: the same record the Python agent makes, from a tool's output.

The run's status is decided by agents/supervisor.fill_result (the one place it is decided), fed with what
the native agent observed: the tool's exit status, whether it was killed on timeout, its stderr, cgroup OOM
kills. Every statistic comes from agents/summary.py, i.e. agents/stats.py.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

from agents.protocol import Json
from agents.result import AgentResult
from agents.spec import WorkloadSpec
from agents.stats import PERCENTILES
from agents.summary import mean_metric, metric, series_metrics, ttft_metric
from agents.supervisor import Supervised, fill_result
from harness.native.parsed import Parsed, ToolOutputError
from harness.native.tools import Tool

MIB_KIB = 1024.0


@dataclass
class NativeRun:
    """What the native agent printed for one run (events by kind)."""

    phases: list[Json] = field(default_factory=list)
    exit: Json | None = None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    sha256: str | None = None
    sha_mismatch: bool = False
    ended: bool = False

    def add(self, ev: Json) -> None:
        kind = ev.get("event")
        if kind == "phase":
            self.phases.append(ev)
        elif kind == "native_exit":
            self.exit = ev
        elif kind == "native_line":
            (self.stdout if ev.get("stream") == "stdout" else self.stderr).append(str(ev.get("line", "")))
        elif kind == "native_hash":
            self.sha256 = ev.get("artifact_sha256") or None
        elif kind == "native_end":
            self.ended = True
            self.sha_mismatch = bool(ev.get("sha_mismatch"))


def wait_status(rc: int) -> int:
    """A shell's `$?` as a raw wait status: 128+N is death by signal N (the shell's convention)."""
    if 128 < rc < 128 + 65:
        return rc - 128
    return (rc & 0xFF) << 8


def workload_echo(spec: WorkloadSpec) -> Json:
    """The spec as the native flavour applied it: no VmHWM reset between load and runs, no adaptive stopping."""
    w = spec.to_dict()
    w["reset_hwm"] = False
    w["adaptive"] = None
    return w


def build_result(spec: WorkloadSpec, run: NativeRun, tool: Tool, parse_args: Any, wrapper: list[str]) -> AgentResult:
    """The AgentResult of one native run (parse_args: the NativeConfig the tool's parser needs)."""
    res = AgentResult(format=spec.format, workload=workload_echo(spec), artifact_sha256=run.sha256)
    if run.sha_mismatch:
        res.message = ("%s: artifact sha256 mismatch: expected %s, the file on the device has %s (changed after it "
                       "was staged); not measured" % (spec.artifact, spec.artifact_sha256, run.sha256))
        return res
    ex = run.exit or {}
    rc = int(ex.get("rc", 1))
    parsed: Parsed | None = None
    parse_error = None
    try:
        parsed = tool.parse(run.stdout, run.stderr, spec, parse_args)
    except ToolOutputError as e:
        parse_error = str(e)
    sv = Supervised()
    sv.phases = run.phases
    sv.timed_out = bool(ex.get("timed_out"))
    sv.status = wait_status(rc)
    sv.rusage = types.SimpleNamespace(ru_maxrss=0)
    sv.t_end = float(run.phases[-1]["t"]) if run.phases else 0.0
    sv.stderr_tail = "\n".join(run.stderr)
    if parsed is not None:
        sv.child = {"status": "ok", "message": None, "runtime": parsed.runtime, "stopping": parsed.stopping,
                    "input_shapes": parsed.input_shapes, "artifact_sha256": run.sha256}
        sv.samples = {k: v for k, v in parsed.samples.items() if k in ("latency_ms", "ttft_ms", "prefill_tokens_per_s",
                                                                          "decode_tokens_per_s", "itl_ms")}
    before, after = ex.get("cgroup_oom_kills_before"), ex.get("cgroup_oom_kills_after")
    cg_oom = isinstance(before, int) and isinstance(after, int) and after > before
    if rc == 125 and spec.rlimit_as_mib is not None:  # the agent's own `ulimit -v` failed: nothing ran
        sv.child = {"status": "error", "message": "the device's shell refused ulimit -v for rlimit_as_mib=%g"
                    % spec.rlimit_as_mib}
    fill_result(res, spec, sv, cg_oom)
    res.os_peak_rss_mib, res.os_peak_rss_equals = None, None  # no wait4() on the device: VmHWM polled instead
    res.thermal = dict(ex.get("thermal") or {})
    if parse_error and res.status in ("error", "oom"):
        res.message = "%s (%s)" % (res.message, parse_error) if res.message else parse_error
    if wrapper and res.runtime:
        res.runtime["wrapper"] = list(wrapper)  # e.g. qemu-aarch64: timings are the emulator's
    if parsed is not None and sv.child is not None and sv.child.get("status") == "ok":
        res.metrics = native_metrics(parsed, ex, spec, tool, wrapper)
    return res


def _note(entry: Json, note: str | None) -> Json:
    if note:
        entry["note"] = "%s; %s" % (entry["note"], note) if entry.get("note") else note
    return entry


def native_metrics(p: Parsed, ex: Json, spec: WorkloadSpec, tool: Tool, wrapper: list[str]) -> Json:
    """Metrics named as harness/metrics.py names them, with the same keys the Python agent's record has."""
    conf, notes, s = spec.confidence, p.notes, p.samples
    m: Json = {}

    def kib(key: str) -> float | None:
        v = ex.get(key)
        return round(v / MIB_KIB, 3) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    who = "the tool's process (%s)" % tool.binary
    if wrapper:
        who = ("the process the agent started: %s running %s under emulation, so the emulator's memory "
               "including the guest's" % (wrapper[0], tool.binary))
    hwm_note = ("VmHWM of %s from /proc/PID/status, read by the native agent every %s s until exit (%s reads); "
                "growth in the last interval before exit is not seen" % (who, ex.get("poll_s"), ex.get("polls")))
    singles = {
        "load_time_ms": ("ms", p.raw.get("load_time_ms"), None),
        "first_inference_ms": ("ms", p.raw.get("first_inference_ms"), None),
        "load_footprint_mib": ("MiB", None, None),
        "peak_rss_mib": ("MiB", kib("vmhwm_kib"), hwm_note),
        "peak_rss_load_mib": ("MiB", None, "not separated: the native agent does not reset VmHWM between the "
                                            "tool's load and its runs"),
        "peak_rss_inference_mib": ("MiB", None, "not separated (see peak_rss_load_mib)"),
        "rss_anon_mib": ("MiB", kib("rss_anon_kib"), "RssAnon of %s at the last read before exit" % who),
        "rss_file_mib": ("MiB", kib("rss_file_kib"), "RssFile (mmapped weights) at the last read before exit"),
        "throughput_per_s": ("1/s", p.raw.get("throughput_per_s"), None),
    }
    for name, (unit, value, note) in singles.items():
        m[name] = metric(value, unit, n=1 if value is not None else None, note=note or notes.get(name))
        if value is not None and note is None:
            _note(m[name], notes.get(name))
    lat = s.get("latency_ms") or []
    if lat:
        m.update(series_metrics("latency_ms", lat, "ms", conf))
    for name, value in p.reported.items():  # statistics the tool printed without its samples
        unit = "1/s" if name.endswith("_per_s") else "ms"
        m[name] = metric(value, unit, note=notes.get(name, "reported by %s (no samples: no interval)" % tool.binary))
    if spec.format == "gguf":
        for pct in PERCENTILES:
            if pct in (50, 90, 95, 99):
                m["itl_ms_p%d" % pct] = metric(None, "ms", note=notes.get("itl_ms"))
        m["tpot_ms"] = _note(mean_metric(s.get("tpot_ms") or [], "ms", conf), notes.get("tpot_ms"))
        ttft = s.get("ttft_ms") or []
        if ttft:
            m["ttft_ms"] = _note(ttft_metric(ttft, conf), notes.get("ttft_ms"))
        for name in ("prefill_tokens_per_s", "decode_tokens_per_s"):
            m[name] = _note(mean_metric(s.get(name) or [], "tok/s", conf, kind="rate"), notes.get(name))
    for name in list(m):
        if name.startswith("latency_ms_") and notes.get("latency_ms"):
            _note(m[name], notes["latency_ms"])
    return m
