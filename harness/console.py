"""Terminal output for long runs: progress lines as phases happen, and a summary table at the end."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from harness.records import Record

_KEY_METRICS = [
    ("load_time_ms", "load ms"),
    ("peak_rss_mib", "peak MiB"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p95", "p95 ms"),
    ("latency_ms_p99", "p99 ms"),
    ("throughput_per_s", "inf/s"),
    ("ttft_ms", "TTFT ms"),
    ("decode_tokens_per_s", "decode tok/s"),
]


class Progress:
    """Prints one line per phase change per device; thread-safe; quiet mode prints nothing."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_push: dict[tuple[str, str], float] = {}

    def _print(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{time.monotonic() - self._t0:7.1f}s] {text}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        self._print(text)

    def event(self, device: str, artifact: str, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "phase":
            self._print(f"{device:<10} {artifact:<32} {ev.get('phase')}")
        elif kind == "progress":
            self._print(f"{device:<10} {artifact:<32}   {ev.get('done')} runs, {ev.get('elapsed_s', 0):.1f}s")
        elif kind == "push":
            done, total = int(ev.get("done", 0)), int(ev.get("total", 0)) or 1
            now = time.monotonic()
            key = (device, artifact)
            if done >= total or now - self._last_push.get(key, 0) > 1.0:
                self._last_push[key] = now
                self._print(f"{device:<10} {artifact:<32} push {done / 2**20:.1f}/{total / 2**20:.1f} MiB")

    def record(self, rec: Record) -> None:
        extra = f": {rec.message}" if rec.status != "ok" and rec.message else ""
        self._print(f"{rec.device.name:<10} {rec.artifact.name:<32} -> {rec.status}{extra[:300]}")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def summary_table(records: list[Record]) -> str:
    """A fixed-width table of the key figures, one row per device x artifact."""
    header = ["device", "artifact", "status"] + [label for _, label in _KEY_METRICS]
    rows = [header]
    for r in records:
        rows.append([r.device.name, r.artifact.name, r.status] + [_fmt(r.value(m)) for m, _ in _KEY_METRICS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
