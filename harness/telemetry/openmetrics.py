"""Contract v1 series as OpenMetrics text with timestamps: what `promtool tsdb create-blocks-from
openmetrics` backfills, so weeks of field traffic become real Prometheus series at simulated times.

The counters are what a scraper would have read every `step_s` from an exporter fed the same requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import numpy.typing as npt

from harness.telemetry import contract as c
from harness.telemetry.traffic import TrafficSpec, slices

F64 = npt.NDArray[np.float64]


@dataclass
class Series:
    """Cumulative counters of one (model, device class) at each scrape time."""

    spec: TrafficSpec
    times: F64
    latency: F64  # [T, B+1] cumulative per bucket (not yet cumulative over le)
    latency_sum: F64
    memory: F64
    memory_sum: F64
    outcomes: F64  # [T, 3]
    tokens: F64
    generation_s: F64


def _hist(x: F64, bounds: tuple[float, ...]) -> F64:
    idx = np.searchsorted(np.asarray(bounds), x, side="left")  # le semantics: x <= bound
    return np.bincount(idx, minlength=len(bounds) + 1).astype(np.float64)


def simulate(spec: TrafficSpec, start: float, end: float, step_s: float, seed: int) -> Series:
    rows: list[list[F64]] = []
    times: list[float] = []
    for sl in slices(spec, start, end, step_s, seed):
        ok = sl.outcome == 0
        rows.append([_hist(sl.latency_s[ok], c.LATENCY_BUCKETS_S), np.array([sl.latency_s[ok].sum()]),
                     _hist(sl.memory_bytes, c.MEMORY_BUCKETS_BYTES), np.array([sl.memory_bytes.sum()]),
                     np.bincount(sl.outcome, minlength=3).astype(np.float64),
                     np.array([float(sl.tokens[ok].sum())]), np.array([sl.generation_s[ok].sum()])])
        times.append(sl.t1)
    cols = [np.cumsum(np.stack([r[i] for r in rows]), axis=0) for i in range(7)]
    return Series(spec, np.asarray(times), cols[0], cols[1][:, 0], cols[2], cols[3][:, 0], cols[4],
                  cols[5][:, 0], cols[6][:, 0])


def _labels(spec: TrafficSpec, extra: str = "") -> str:
    base = (f'model_version="{spec.model_version}",model_sha256="{spec.model_sha256}",'
            f'device_class="{spec.device_class}"')
    return "{" + base + ("," + extra if extra else "") + "}"


def _le(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(float(b))


def write(out: IO[str], series: Sequence[Series]) -> int:
    """Write all series, family by family (OpenMetrics wants a family's samples together); returns lines."""
    n = 0

    def emit(name: str, labels: str, values: F64, times: F64) -> None:
        nonlocal n
        out.writelines(f"{name}{labels} {v:.10g} {t:.3f}\n" for v, t in zip(values.tolist(), times.tolist()))
        n += len(values)

    for fam, bounds, attr in ((c.LATENCY, c.LATENCY_BUCKETS_S, "latency"),
                              (c.PEAK_MEMORY, c.MEMORY_BUCKETS_BYTES, "memory")):
        out.write(f"# TYPE {fam} histogram\n")
        for s in series:
            counts: F64 = getattr(s, attr)
            cum = np.cumsum(counts, axis=1)
            for j, b in enumerate([*bounds, float("inf")]):
                emit(f"{fam}_bucket", _labels(s.spec, f'le="{_le(b)}"'), cum[:, j], s.times)
            emit(f"{fam}_count", _labels(s.spec), cum[:, -1], s.times)
            emit(f"{fam}_sum", _labels(s.spec), getattr(s, attr + "_sum"), s.times)
    out.write(f"# TYPE {c.REQUESTS.removesuffix('_total')} counter\n")
    for s in series:
        for j, o in enumerate(c.OUTCOMES):
            emit(c.REQUESTS, _labels(s.spec, f'outcome="{o}"'), s.outcomes[:, j], s.times)
    for fam, attr in ((c.TOKENS, "tokens"), (c.GENERATION_TIME, "generation_s")):
        out.write(f"# TYPE {fam.removesuffix('_total')} counter\n")
        for s in series:
            emit(fam, _labels(s.spec), getattr(s, attr), s.times)
    out.write("# EOF\n")
    return n
