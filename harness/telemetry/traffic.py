"""A generator of field traffic for one model on one device class: the stand-in for a fleet of apps.

Requests arrive as a Poisson process whose rate swings between night and day (a cosine over 24 h);
latency is log-normal with a small day/night component (busier phones run warmer) and a per-hour random
effect (the fleet mix moves hour to hour), so windows differ by more than their request counts explain, as
real field windows do. Events (a latency step, an OOM spike) start at given times. Output: per-request
records (to drive the reference exporter or write JSONL) or per-scrape aggregates (to backfill Prometheus).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.telemetry import contract as c

DAY_S = 86400.0


@dataclass(frozen=True)
class Step:
    """From `at` (Unix s) on: latency multiplied by `latency_factor`, OOM share set to `oom_rate` if given."""

    at: float
    latency_factor: float = 1.0
    oom_rate: float | None = None


@dataclass(frozen=True)
class TrafficSpec:
    model_version: str
    model_sha256: str
    device_class: str
    requests_per_h: float = 600.0  # mean over a day
    day_night_ratio: float = 6.0  # peak-hour rate / trough-hour rate
    latency_median_s: float = 0.18
    latency_sigma: float = 0.35  # log-normal shape
    diurnal_latency: float = 0.03  # +-3% between day and night
    hourly_noise: float = 0.02  # sd of the per-hour log-latency random effect
    oom_rate: float = 0.001
    error_rate: float = 0.002
    memory_median_bytes: float = 3.0e8
    memory_sigma: float = 0.15
    tokens_mean: float = 48.0
    tokens_per_s: float = 55.0
    peak_hour_utc: float = 14.0
    steps: tuple[Step, ...] = field(default_factory=tuple)


def hourly_rate(spec: TrafficSpec, t: float) -> float:
    """Requests per hour at time t: a cosine day with the given peak/trough ratio around the daily mean."""
    a = (spec.day_night_ratio - 1.0) / (spec.day_night_ratio + 1.0)
    phase = 2 * math.pi * ((t % DAY_S) / 3600.0 - spec.peak_hour_utc) / 24.0
    return spec.requests_per_h * (1.0 + a * math.cos(phase))


def _state(spec: TrafficSpec, t: float) -> tuple[float, float]:
    factor, oom = 1.0, spec.oom_rate
    for s in spec.steps:
        if t >= s.at:
            factor *= s.latency_factor
            oom = s.oom_rate if s.oom_rate is not None else oom
    return factor, oom


@dataclass
class Slice:
    """All requests of one interval [t0, t1) as arrays."""

    t0: float
    t1: float
    times: npt.NDArray[np.float64]
    outcome: npt.NDArray[np.int64]  # index into contract.OUTCOMES
    latency_s: npt.NDArray[np.float64]
    memory_bytes: npt.NDArray[np.float64]
    tokens: npt.NDArray[np.int64]
    generation_s: npt.NDArray[np.float64]


def slices(spec: TrafficSpec, start: float, end: float, step_s: float, seed: int) -> Iterator[Slice]:
    """Requests in consecutive intervals of step_s (<= 1 h; the hourly random effect changes on the hour)."""
    rng = np.random.default_rng(seed)
    hour_effect: dict[int, float] = {}
    t = start
    while t < end:
        t1 = min(end, t + step_s)
        mid = (t + t1) / 2
        n = int(rng.poisson(hourly_rate(spec, mid) * (t1 - t) / 3600.0))
        hour = int(mid // 3600)
        if hour not in hour_effect:
            hour_effect[hour] = float(rng.normal(0.0, spec.hourly_noise))
        factor, oom = _state(spec, mid)
        day = math.cos(2 * math.pi * ((mid % DAY_S) / 3600.0 - spec.peak_hour_utc) / 24.0)
        log_med = math.log(spec.latency_median_s * factor) + spec.diurnal_latency * day + hour_effect[hour]
        u = rng.random(n)
        outcome = np.where(u < oom, 1, np.where(u < oom + spec.error_rate, 2, 0)).astype(np.int64)
        lat = np.exp(rng.normal(log_med, spec.latency_sigma, n))
        mem = np.exp(rng.normal(math.log(spec.memory_median_bytes), spec.memory_sigma, n))
        tok = np.maximum(1, rng.poisson(spec.tokens_mean, n)).astype(np.int64)
        gen = tok / (spec.tokens_per_s / factor) * np.exp(rng.normal(0.0, 0.1, n))
        times = np.sort(rng.uniform(t, t1, n))
        yield Slice(t, t1, times, outcome, lat, mem, tok, gen)
        t = t1


def records(spec: TrafficSpec, sl: Slice) -> Iterator[c.RequestRecord]:
    """The slice's requests as contract records (an OOM'd request has no latency)."""
    for i in range(len(sl.times)):
        o = c.OUTCOMES[int(sl.outcome[i])]
        ok = o == "ok"
        yield c.RequestRecord(float(sl.times[i]), spec.model_version, spec.model_sha256, spec.device_class, o,
                              float(sl.latency_s[i]) if ok else None, float(sl.memory_bytes[i]),
                              int(sl.tokens[i]) if ok else None, float(sl.generation_s[i]) if ok else None)
