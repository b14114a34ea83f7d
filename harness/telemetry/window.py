"""Field data aggregated per evaluation window: the unit that drift compares (windows, not requests).

A window holds, for one model and one device class, what happened in [start, end): per-bucket latency and
peak-memory counts (the contract's fixed edges), requests by outcome, tokens and generation time.
Every reader (Prometheus, JSONL, OpenTelemetry) produces these; the store keeps them; drift reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.telemetry import contract as c


@dataclass
class Window:
    model: str  # model_sha256
    device_class: str
    start: float  # Unix seconds
    end: float
    latency_counts: list[float] = field(default_factory=lambda: [0.0] * (len(c.LATENCY_BUCKETS_S) + 1))
    memory_counts: list[float] = field(default_factory=lambda: [0.0] * (len(c.MEMORY_BUCKETS_BYTES) + 1))
    requests: dict[str, float] = field(default_factory=lambda: {o: 0.0 for o in c.OUTCOMES})
    tokens: float = 0.0
    generation_s: float = 0.0
    memory_warnings: float = 0.0
    model_version: str | None = None

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.model, self.device_class, self.end)

    @property
    def total_requests(self) -> float:
        return sum(self.requests.values())

    def add_request(self, r: c.RequestRecord) -> None:
        self.requests[r.outcome] = self.requests.get(r.outcome, 0.0) + 1
        if r.latency_s is not None and r.outcome == "ok":
            self.latency_counts[bucket_index(c.LATENCY_BUCKETS_S, r.latency_s)] += 1
        if r.peak_memory_bytes is not None:
            self.memory_counts[bucket_index(c.MEMORY_BUCKETS_BYTES, r.peak_memory_bytes)] += 1
        if r.tokens is not None and r.generation_s is not None:
            self.tokens += r.tokens
            self.generation_s += r.generation_s

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_version": self.model_version, "device_class": self.device_class,
                "start": self.start, "end": self.end, "start_rfc3339": c.rfc3339(self.start),
                "latency_counts": self.latency_counts, "memory_counts": self.memory_counts,
                "requests": self.requests, "tokens": self.tokens, "generation_s": self.generation_s,
                "memory_warnings": self.memory_warnings}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Window:
        try:
            w = cls(model=str(d["model"]), device_class=str(d["device_class"]), start=float(d["start"]),
                    end=float(d["end"]), latency_counts=[float(x) for x in d["latency_counts"]],
                    memory_counts=[float(x) for x in d["memory_counts"]],
                    requests={str(k): float(v) for k, v in d["requests"].items()}, tokens=float(d["tokens"]),
                    generation_s=float(d["generation_s"]), memory_warnings=float(d.get("memory_warnings", 0.0)),
                    model_version=d.get("model_version"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{where}: not a telemetry window ({type(e).__name__}: {e})") from None
        if (len(w.latency_counts) != len(c.LATENCY_BUCKETS_S) + 1
                or len(w.memory_counts) != len(c.MEMORY_BUCKETS_BYTES) + 1):
            raise UserError(f"{where}: bucket counts do not match contract v{c.VERSION}'s bucket edges")
        return w


def bucket_index(bounds: tuple[float, ...], x: float) -> int:
    """Index of the bucket whose upper edge is the first >= x (Prometheus' le semantics); len(bounds) = +Inf."""
    lo, hi = 0, len(bounds)
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid] >= x:
            hi = mid
        else:
            lo = mid + 1
    return lo


def counts_from_cumulative(bounds: tuple[float, ...], cumulative: dict[float, float], what: str) -> list[float]:
    """Cumulative `le` counts (le -> count, +Inf as math.inf) -> per-bucket counts on the contract's edges.

    Edges an exporter did not use are an error: re-bucketing would invent where observations fell.
    """
    edges = [*bounds, math.inf]
    missing = [e for e in edges if e not in cumulative]
    extra = [e for e in cumulative if e not in edges]
    if extra or missing:
        bad = extra or missing
        raise UserError(f"{what}: bucket edges differ from contract v{c.VERSION} (e.g. le={bad[0]:g}); "
                        "exporters must use the contract's edges")
    out: list[float] = []
    prev = 0.0
    for e in edges:
        v = cumulative[e]
        out.append(max(0.0, v - prev))  # increase() over a window can be a hair non-monotone: clamp
        prev = max(prev, v)
    return out


def group(windows: Iterable[Window]) -> dict[tuple[str, str], list[Window]]:
    """Windows by (model, device class), each list sorted by end time."""
    out: dict[tuple[str, str], list[Window]] = {}
    for w in windows:
        out.setdefault((w.model, w.device_class), []).append(w)
    for ws in out.values():
        ws.sort(key=lambda w: w.end)
    return out


def bin_records(records: Iterable[c.RequestRecord], window_s: float) -> list[Window]:
    """Per-request records -> windows aligned on multiples of window_s (UTC epoch)."""
    if not window_s > 0:
        raise UserError("window length must be > 0")
    acc: dict[tuple[str, str, float], Window] = {}
    for r in records:
        start = math.floor(r.time / window_s) * window_s
        model = r.model_sha256
        k = (model, r.device_class, start)
        w = acc.get(k)
        if w is None:
            w = acc[k] = Window(model, r.device_class, start, start + window_s, model_version=r.model_version)
        w.add_request(r)
    return sorted(acc.values(), key=lambda w: (w.model, w.device_class, w.end))


def merge_models(windows: Iterable[Window], name: str) -> list[Window]:
    """Windows of several sha256s under one release name, added up per (device class, end) and named `name`:
    a release judged as one model (a silently swapped artifact shows in behaviour, not as a new series)."""
    merged: dict[tuple[str, float], Window] = {}
    for w in windows:
        k = (w.device_class, w.end)
        m = merged.get(k)
        if m is None:
            merged[k] = Window(name, w.device_class, w.start, w.end, list(w.latency_counts), list(w.memory_counts),
                               dict(w.requests), w.tokens, w.generation_s, w.memory_warnings, w.model_version)
            continue
        m.latency_counts = [a + b for a, b in zip(m.latency_counts, w.latency_counts)]
        m.memory_counts = [a + b for a, b in zip(m.memory_counts, w.memory_counts)]
        for o, v in w.requests.items():
            m.requests[o] = m.requests.get(o, 0.0) + v
        m.tokens += w.tokens
        m.generation_s += w.generation_s
        m.memory_warnings += w.memory_warnings
    return sorted(merged.values(), key=lambda w: (w.device_class, w.end))
