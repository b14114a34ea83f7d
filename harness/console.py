"""Terminal output for long runs: progress lines as phases happen, and a summary table at the end."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from harness.records import Record
from harness.text import terminal


class SafeStream:
    """Wraps stdout / stderr so nothing the CLI prints carries a raw control character (ESC, CR, C1).

    Installed by harness/cli.py around every command: the one place terminal output is made safe, whatever
    printed it (file names, device output, model metadata inside messages and tables).
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(terminal(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno ... of the real stream
        return getattr(self.inner, name)


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


def summary_table(records: list[Record]) -> str:
    """The key figures of each device x artifact (harness/reports/keyfigures.py: one definition, every printer)."""
    from harness.reports.keyfigures import render_records

    return render_records(records, "table").rstrip("\n")
