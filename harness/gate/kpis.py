"""KPIs from the distillation guide, each computed only when its inputs exist (never a made-up zero).

- Model Efficiency Ratio: quality score per MB of artifact (quality from the record's workload
  `quality`, else the policy's [kpis.quality] table by artifact name).
- Latency SLA compliance: % of warm latency samples at or under [kpis] sla_latency_ms.
- Memory headroom: % of the device's RAM left free at the run's peak resident memory.
- Behavioural stability: the record's workload `behaviour_stability` (share of golden prompts whose outputs
  agree across repeated runs, 0..1), written by the golden-suite runner.
- Cost per 1k requests: [kpis] price_per_hour x hours that 1000 sequential requests take on the device.
"""

from __future__ import annotations

import math

import numpy as np

from harness.gate.policy import KpiConfig
from harness.gate.model import Kpi
from harness.gate.rules import SampleCache, fmt
from harness.metrics import memory_headroom_pct
from harness.records import Record


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def compute(rec: Record, cfg: KpiConfig, cache: SampleCache) -> list[Kpi]:
    """The KPIs whose inputs this record (and the policy) provide."""
    out: list[Kpi] = []
    quality = _number(rec.workload.get("quality"))
    if quality is None:
        quality = cfg.quality.get(rec.artifact.name)
    if quality is not None and rec.artifact.size_bytes > 0:
        mb = rec.artifact.size_bytes / 1e6
        out.append(Kpi("model_efficiency_ratio", quality / mb, "quality/MB",
                       f"quality {quality:.4g} / {mb:.4g} MB"))
    lat = cache.get(rec, "latency_ms")
    if cfg.sla_latency_ms is not None and lat is not None and len(lat):
        under = int(np.searchsorted(lat, cfg.sla_latency_ms, side="right"))
        out.append(Kpi("sla_compliance_pct", 100.0 * under / len(lat), "%",
                       f"{under} of {len(lat)} samples <= {fmt(cfg.sla_latency_ms, 'ms')}"))
    peak, ram = rec.value("peak_rss_mib"), rec.device.ram_mib
    if (headroom := memory_headroom_pct(ram, peak)) is not None:
        out.append(Kpi("memory_headroom_pct", headroom, "%", f"peak {fmt(peak, 'MiB')} of {ram} MiB RAM"))
    stab = _number(rec.workload.get("behaviour_stability"))
    if stab is not None:
        out.append(Kpi("behaviour_stability_pct", 100.0 * stab, "%", "golden outputs agreeing across runs"))
    if cfg.price_per_hour is not None:
        per_req_s: float | None = None
        tput = rec.value("throughput_per_s")
        if tput:
            per_req_s = 1.0 / tput
        elif lat is not None and len(lat):
            per_req_s = float(lat.mean()) / 1000.0
        if per_req_s is not None:
            cost = cfg.price_per_hour * per_req_s * 1000.0 / 3600.0
            out.append(Kpi("cost_per_1k_requests", cost, cfg.currency,
                           f"{cfg.price_per_hour:g} {cfg.currency}/h x {per_req_s * 1000:.3g} s per 1k"))
    return [k for k in out if math.isfinite(k.value)]  # a NaN input makes no KPI, not a NaN KPI
