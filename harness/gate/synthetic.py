"""Synthetic result records with realistic latency noise: for A/A checks of a policy, fixtures and scale tests.

Latency samples are lognormal around a median with occasional outliers (a preempted or throttled
iteration, 2-6x slower), the shape real device runs show. Records are built through `Record`, so they are
exactly what the controller writes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from harness.records import ArtifactInfo, DeviceInfo, Metric, Record, Status

_PCTS = (50, 90, 95, 99)


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


def _pct_ci(sorted_x: np.ndarray[Any, np.dtype[np.float64]], p: float) -> tuple[float, float] | None:
    n = len(sorted_x)
    spread = 1.96 * (n * p * (1 - p)) ** 0.5
    lo, hi = int(np.floor(n * p - spread)), int(np.ceil(n * p + spread)) + 1
    if lo < 1 or hi > n:
        return None
    return (float(sorted_x[lo - 1]), float(sorted_x[hi - 1]))


def latency_metrics(samples: list[float]) -> dict[str, Metric]:
    """The latency metrics the agent would compute from these samples."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    out = {
        "latency_ms_mean": Metric(float(x.mean()), "ms", n),
        "latency_ms_std": Metric(float(x.std(ddof=1)), "ms", n),
        "latency_ms_min": Metric(float(x[0]), "ms", n),
        "latency_ms_max": Metric(float(x[-1]), "ms", n),
        "throughput_per_s": Metric(1000.0 / float(x.mean()), "1/s", n),
    }
    for p in _PCTS:
        ci = _pct_ci(x, p / 100)
        if ci is None:
            out[f"latency_ms_p{p}"] = Metric(None, "ms", n, note=f"insufficient samples: {n} for p{p}")
        else:
            out[f"latency_ms_p{p}"] = Metric(float(np.quantile(x, p / 100)), "ms", n, ci, 0.95)
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
        if ram_mib:
            metrics["memory_headroom_pct"] = Metric(100.0 * (ram_mib - peak_rss_mib) / ram_mib, "%")
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
        provenance={"harness_version": "0.1.0", "host": "farm-1"},
    )
