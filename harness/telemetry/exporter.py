"""Reference exporter: how an app (or the backend that receives its beacons) emits contract v1 with
prometheus-client. Copy this pattern; the names, labels and bucket edges come from contract.py.

    metrics = FieldMetrics(model_version="1.4.0", model_sha256=SHA, device_class="pixel7")
    metrics.observe(outcome="ok", latency_s=0.182, peak_memory_bytes=3.1e8, tokens=48, generation_s=0.9)
    server = metrics.serve(port=9464)           # GET /metrics

One FieldMetrics per (model, device class) a process serves; they may share a registry.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from harness.telemetry import contract as c


class _Family:
    """The contract's metric families in one registry (created once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = list(c.LABELS)
        self.latency = Histogram(c.LATENCY, "Inference latency of successful requests.", labels,
                                 buckets=c.LATENCY_BUCKETS_S, registry=registry)
        self.requests = Counter(c.REQUESTS.removesuffix("_total"), "Inference requests by outcome.",
                                [*labels, "outcome"], registry=registry)
        self.memory = Histogram(c.PEAK_MEMORY, "Peak resident memory of the inference process per request.",
                                labels, buckets=c.MEMORY_BUCKETS_BYTES, registry=registry)
        self.tokens = Counter(c.TOKENS.removesuffix("_total"), "Tokens generated.", labels, registry=registry)
        self.gen_time = Counter(c.GENERATION_TIME.removesuffix("_total"), "Wall time spent generating tokens.",
                                labels, registry=registry)
        self.warnings = Counter(c.MEMORY_WARNINGS.removesuffix("_total"), "Low-memory signals from the OS.",
                                labels, registry=registry)
        self.info = Gauge(c.INFO, "Telemetry contract spoken by this exporter.", ["version"], registry=registry)
        self.info.labels(version=str(c.VERSION)).set(1)


_FAMILIES: dict[int, _Family] = {}
_LOCK = threading.Lock()


def _families(registry: CollectorRegistry) -> _Family:
    with _LOCK:
        fam = _FAMILIES.get(id(registry))
        if fam is None:
            fam = _FAMILIES[id(registry)] = _Family(registry)
        return fam


class FieldMetrics:
    """Contract v1 metrics for one model on one device class."""

    def __init__(self, *, model_version: str, model_sha256: str, device_class: str,
                 registry: CollectorRegistry | None = None) -> None:
        c.check_labels(model_version, model_sha256, device_class, "FieldMetrics")
        self.registry = registry if registry is not None else CollectorRegistry()
        f = _families(self.registry)
        lv = {"model_version": model_version, "model_sha256": model_sha256, "device_class": device_class}
        self._latency = f.latency.labels(**lv)
        self._outcome = {o: f.requests.labels(**lv, outcome=o) for o in c.OUTCOMES}
        self._memory = f.memory.labels(**lv)
        self._tokens = f.tokens.labels(**lv)
        self._gen_time = f.gen_time.labels(**lv)
        self._warnings = f.warnings.labels(**lv)

    def observe(self, *, outcome: str, latency_s: float | None = None, peak_memory_bytes: float | None = None,
                tokens: int | None = None, generation_s: float | None = None) -> None:
        """One request. Latency only for outcome "ok" (a failed request has no comparable latency)."""
        if outcome not in self._outcome:
            raise ValueError(f"outcome {outcome!r} is not one of {c.OUTCOMES}")
        self._outcome[outcome].inc()
        if outcome == "ok" and latency_s is not None:
            self._latency.observe(latency_s)
        if peak_memory_bytes is not None:
            self._memory.observe(peak_memory_bytes)
        if tokens is not None and generation_s is not None:
            self._tokens.inc(tokens)
            self._gen_time.inc(generation_s)

    def observe_record(self, r: c.RequestRecord) -> None:
        self.observe(outcome=r.outcome, latency_s=r.latency_s, peak_memory_bytes=r.peak_memory_bytes,
                     tokens=r.tokens, generation_s=r.generation_s)

    def memory_warning(self) -> None:
        self._warnings.inc()

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> Any:
        """Serve /metrics over HTTP; returns the server (its .server_port is the port; .shutdown() stops it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
