"""One cell measured in several agent launches: how run control is split, and how launches become one record.

A launch loads the model afresh in a fresh process, so the spread between launches is the run-to-run noise
(placement, frequency, neighbours) that within-run samples cannot show. `--processes N` (asv's `processes`)
measures a cell in N launches; an interleaved A/B session (`--baseline-artifact`) measures each artifact in
alternating launches. Either way the cell keeps ONE record: every sample, in launch order, with metrics
recomputed from them by the agent's own code (agents.summary), plus one `Block` per launch.

The one rule for figures that are not statistics of samples (stated in the README):
- memory (peak_rss_*, rss_*, load_footprint_mib, power_w_peak): the maximum over launches (what the device
  must hold);
- load_time_ms, first_inference_ms and any other single figure: the median over launches;
- throughput_per_s: all measured inferences over all measured time (sum n_i / sum n_i / throughput_i).
Each launch's own value stays in its block.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents import runlevel as one
from agents.summary import build_metrics
from harness.gate.stats import estimator_for
from harness.records import ArtifactInfo, Block, BlockRole, Metric, Record
from harness.runner import RunOverrides, build_spec
from harness.profiles import Profile

MAX_LAUNCHES = 64
MAX_OVER_LAUNCHES = ("peak_rss_mib", "peak_rss_load_mib", "peak_rss_inference_mib", "rss_anon_mib",
                      "rss_file_mib", "load_footprint_mib", "power_w_peak")
_RECOMPUTED = ("memory_headroom_pct",)
_WORST_FIRST = ("device_lost", "crashed", "oom", "timeout", "error", "skipped")


def split_overrides(profile: Profile, artifact: ArtifactInfo, o: RunOverrides, parts: int) -> RunOverrides:
    """Run control for one of `parts` launches: the cell's measured runs, seconds and GGUF repetitions shared
    out (rounded up), warmup and timeout as they are (every launch warms its own process up)."""
    if parts <= 1:
        return o
    # each launch's own spec re-applies the policy's run sizing (harness/run_sizing.py) on top of its share
    spec = build_spec(profile, artifact.path, artifact.format, o, None, name=artifact.name)
    g = spec.gguf
    extra: dict[str, Any] = {**o.extra, "max_runs": max(1, math.ceil(spec.max_runs / parts)),
                             "gguf": {"prompt_tokens": g.prompt_tokens, "new_tokens": g.new_tokens,
                                      "repetitions": max(1, math.ceil(g.repetitions / parts))}}
    return replace(o, min_runs=max(1, math.ceil(spec.min_runs / parts)), min_s=spec.min_s / parts,
                   max_s=max(spec.max_s / parts, 1e-3), extra=extra)


def block_of(rec: Record, index: int, role: BlockRole) -> Block:
    """A launch's summary: for every metric it recorded, the launch's value (a statistic of samples through
    agents.stats, the agent's definition; a single figure as recorded)."""
    conf = float(rec.workload.get("confidence") or 0.95)
    values: dict[str, float | None] = {}
    for name, m in sorted(rec.metrics.items()):
        est = estimator_for(name)
        xs = rec.samples.get(est.series) if est is not None else None
        if est is not None and xs:
            values[name] = one.block_statistic(est.kind, xs, est.p, conf)
        else:
            values[name] = m.value if m.value is None or math.isfinite(m.value) else None
    return Block(index=index, role=role, n=len(rec.samples.get("latency_ms", [])), stats=values)


def _combine_single(name: str, values: list[float], launches: Sequence[Record]) -> float:
    if name in MAX_OVER_LAUNCHES:
        return max(values)
    if name == "throughput_per_s":
        n = [len(r.samples.get("latency_ms", [])) for r in launches if r.value(name)]
        secs = sum(k / v for k, v in zip(n, values) if v > 0)
        return sum(n) / secs if secs > 0 and len(n) == len(values) else statistics.median(values)
    return statistics.median(values)


def combine(indexed: Sequence[tuple[int, Record]], role: BlockRole) -> Record:
    """The cell's one record from its launches (index in the session, record; in launch order): the worst status
    of a launch that did not end ok, the samples of the ok ones concatenated, metrics recomputed, taints united,
    one block per ok launch."""
    launches = [r for _, r in indexed]
    blocks = [block_of(r, i, role) for i, r in indexed if r.status == "ok"]
    first, last = launches[0], launches[-1]
    bad = [r for r in launches if r.status != "ok"]
    worst = min(bad, key=lambda r: _WORST_FIRST.index(r.status) if r.status in _WORST_FIRST else 99) if bad else None
    rec = replace(first, finished_at=last.finished_at, metrics={}, samples={}, tainted=[],
                  provenance=replace(first.provenance), blocks=list(blocks), energy=last.energy, thermal=last.thermal)
    if worst is not None:
        rec.status, rec.message, rec.signal = worst.status, worst.message, worst.signal
        rec.message = f"launch {launches.index(worst) + 1} of {len(launches)}: {worst.message or worst.status}"
    ok = [r for r in launches if r.status == "ok"] or list(launches)
    for r in ok:
        for series, xs in r.samples.items():
            rec.samples.setdefault(series, []).extend(xs)
    for r in launches:
        rec.tainted += [t for t in r.tainted if t not in rec.tainted]
    raw: dict[str, float] = {}
    conf = float(first.workload.get("confidence") or 0.95)
    names = {n for r in ok for n in r.metrics}
    built = {k: Metric.from_dict(v) for k, v in build_metrics({}, rec.samples, conf).items()}
    for name in sorted(names):
        if name in built or name in _RECOMPUTED:
            continue
        vals = [v for r in ok if (v := r.value(name)) is not None and math.isfinite(v)]
        unit = next(r.metrics[name].unit for r in ok if name in r.metrics)
        raw[name] = _combine_single(name, vals, ok) if vals else math.nan
        rule = "max" if name in MAX_OVER_LAUNCHES else "all runs / all time" if name == "throughput_per_s" \
            else "median"
        rec.metrics[name] = Metric(value=None if not vals else raw[name], unit=unit, n=len(vals),
                                   note=f"{rule} over {len(vals)} launches" if len(vals) > 1 else None)
    rec.metrics.update({k: v for k, v in built.items() if k in names})
    rec.refresh_headroom()
    rec.provenance.launches = [{"index": b, "role": role, "status": r.status, "started_at": r.started_at,
                                "finished_at": r.finished_at, "stopping": r.provenance.stopping}
                               for b, r in indexed]
    return rec
