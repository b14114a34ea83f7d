"""Synthetic result records with realistic latency noise: for A/A checks of a policy, fixtures and scale tests.

Test tooling (moved out of the product, harness/gate/): tests import it as `synthetic`, benchmarks and the
fixture generator put tests/ on sys.path first.

Latency samples are lognormal around a median with occasional outliers (a preempted or throttled
iteration, 2-6x slower), the shape real device runs show. Records are built through `Record`, so they are
exactly what the controller writes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from agents.summary import series_metrics
from harness.metrics import memory_headroom_pct
from harness.provenance import Provenance
from harness.records import ArtifactInfo, DeviceInfo, Metric, Record, Status



def latency_samples(rng: np.random.Generator, n: int, median_ms: float, sigma: float = 0.08,
                    outlier_rate: float = 0.01, burst: float = 1.0) -> list[float]:
    """n warm latencies (ms): lognormal(median, sigma) with about `outlier_rate` of 1.5-4x outliers.

    Outliers come in bursts of mean length `burst` iterations (a background task, a frequency dip), which is
    what makes a mean flap between identical runs.
    """
    x = median_ms * np.exp(rng.normal(0.0, sigma, n))
    starts = np.flatnonzero(rng.random(n) < outlier_rate / burst)
    for s, length in zip(starts, rng.geometric(1.0 / burst, len(starts))):
        x[s:s + length] *= rng.uniform(1.5, 4.0)
    return [round(float(v), 4) for v in x]


def latency_metrics(samples: list[float], confidence: float = 0.95) -> dict[str, Metric]:
    """The latency metrics the agent computes from these samples: its own code (agents.summary), not a copy."""
    out = {name: Metric.from_dict(m) for name, m in series_metrics("latency_ms", samples, "ms", confidence).items()}
    out["throughput_per_s"] = Metric(1000.0 / float(np.mean(samples)), "1/s", len(samples))
    return out


def make_record(
    *,
    run_id: str = "run-1",
    device: str = "local",
    device_class: str = "laptop",
    ram_mib: int | None = 4096,
    artifact: str = "student-int8",
    artifact_format: str = "onnx",
    artifact_bytes: int = 24_000_000,
    status: Status = "ok",
    samples: list[float] | None = None,
    peak_rss_mib: float | None = 300.0,
    load_time_ms: float | None = 420.0,
    message: str | None = None,
    signal: int | None = None,
    tainted: list[str] | None = None,
    workload: dict[str, Any] | None = None,
    extra_metrics: dict[str, Metric] | None = None,
    started_at: str = "2026-11-23T18:00:00.000000Z",
    finished_at: str = "2026-11-23T18:01:00.000000Z",
) -> Record:
    """One record as the controller would write it."""
    metrics: dict[str, Metric] = {}
    if samples:
        metrics.update(latency_metrics(samples))
    if peak_rss_mib is not None:
        metrics["peak_rss_mib"] = Metric(peak_rss_mib, "MiB")
        if (headroom := memory_headroom_pct(ram_mib, peak_rss_mib)) is not None:
            metrics["memory_headroom_pct"] = Metric(headroom, "%")
    if load_time_ms is not None and status == "ok":
        metrics["load_time_ms"] = Metric(load_time_ms, "ms")
    metrics.update(extra_metrics or {})
    sha = hashlib.sha256(f"{artifact}:{artifact_bytes}".encode()).hexdigest()
    return Record(
        run_id=run_id,
        device=DeviceInfo(name=device, transport="local", device_class=device_class, ram_mib=ram_mib,
                          fingerprint={"machine": "x86_64", "cpu": "synthetic", "kernel": "6.1.0"}),
        artifact=ArtifactInfo(path=f"/artifacts/{artifact}.{artifact_format}", name=artifact,
                              format=artifact_format, size_bytes=artifact_bytes, sha256=sha),
        status=status, started_at=started_at, finished_at=finished_at, message=message, signal=signal,
        runtime={"name": "onnxruntime", "version": "1.32.0"},
        workload=dict(workload or {}),
        metrics=metrics,
        samples={"latency_ms": samples} if samples else {},
        tainted=list(tainted or []),
        provenance=Provenance(harness_version="0.1.0", controller="farm-1"),
    )


def in_launches(rec: Record, k: int, rng: np.random.Generator | None = None, spread: float = 0.0) -> Record:
    """The record as if measured in k agent launches (`--processes k`): every sample series cut into k runs in
    order, each launch's latencies scaled by its own factor exp(N(0, spread)) (run-to-run noise), metrics
    recomputed, and one block per launch built by the controller's own code (harness.launches.block_of)."""
    from dataclasses import replace

    from harness.launches import block_of

    factors = np.exp(rng.normal(0.0, spread, k)) if rng is not None and spread > 0 else np.ones(k)
    series = {name: np.array_split(np.asarray(xs, dtype=np.float64), k) for name, xs in rec.samples.items()}
    if "latency_ms" in series and spread > 0:
        series["latency_ms"] = [seg * f for seg, f in zip(series["latency_ms"], factors)]
        rec.samples["latency_ms"] = [round(float(v), 4) for seg in series["latency_ms"] for v in seg]
        rec.metrics.update(latency_metrics(rec.samples["latency_ms"]))
    blocks = []
    for j in range(k):
        part = {name: [float(v) for v in segs[j]] for name, segs in series.items()}
        sub = replace(rec, samples=part, metrics=dict(rec.metrics))
        if part.get("latency_ms"):
            sub.metrics.update(latency_metrics(part["latency_ms"]))
        blocks.append(block_of(sub, j, "launch"))
    rec.blocks = blocks
    return rec
