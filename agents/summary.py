"""Metrics (harness/metrics.py names) from the model process's raw figures and sample series.

Every statistic comes from stats.estimate, the definition the gate uses too.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from agents.protocol import Json, finite
from agents.stats import ORDERED_BY_DESIGN as ORDERED_BY_DESIGN  # re-exported: its home was here
from agents.stats import PERCENTILES, Estimate, estimate, mean_std, percentile_type7

# Series whose metric is named after the series itself (GGUF repetitions): statistic and quantile.
SELF_SERIES: Dict[str, Tuple[str, float]] = {
    "ttft_ms": ("quantile", 0.5),
    "prefill_tokens_per_s": ("rate", 0.0),
    "decode_tokens_per_s": ("rate", 0.0),
}
SINGLE_FIGURES = (("load_time_ms", "ms"), ("first_inference_ms", "ms"), ("load_footprint_mib", "MiB"),
                  ("peak_rss_mib", "MiB"), ("peak_rss_load_mib", "MiB"), ("peak_rss_inference_mib", "MiB"),
                  ("rss_anon_mib", "MiB"), ("rss_file_mib", "MiB"), ("throughput_per_s", "1/s"))


def metric(value: Optional[float], unit: str, n: Optional[int] = None, ci: Optional[Tuple[float, float]] = None,
           confidence: Optional[float] = None, note: Optional[str] = None, nd: int = 4) -> Json:
    """One metric entry as the protocol writes it."""
    return {"value": finite(value, nd), "unit": unit, "n": n,
            "ci": None if ci is None else [finite(ci[0], nd), finite(ci[1], nd)],
            "confidence": confidence if ci is not None else None, "note": note}


def from_estimate(e: Estimate, unit: str, confidence: float, note: Optional[str] = None) -> Json:
    """A metric entry from a stats.Estimate."""
    return metric(e.value, unit, n=e.n, ci=e.ci, confidence=confidence, note=note if e.value is not None and
                  note else e.note)


def percentile_metric(xs: Sequence[float], pct: float, unit: str, confidence: float, dependence: bool = True) -> Json:
    """A percentile with its order-statistic interval, or null with a note when the sample is too small."""
    return from_estimate(estimate("quantile", xs, pct / 100.0, confidence, dependence), unit, confidence)


def mean_metric(xs: Sequence[float], unit: str, confidence: float, kind: str = "mean", dependence: bool = True) -> Json:
    """Mean with a t-interval (kind "rate": a log-scale interval that stays positive)."""
    return from_estimate(estimate(kind, xs, 0.0, confidence, dependence), unit, confidence)


def series_metrics(prefix: str, xs: Sequence[float], unit: str, confidence: float) -> Json:
    """mean/std/min/max and p50..p99 of one sample series (latency_ms, itl_ms), xs in run order."""
    out: Json = {}
    dep = prefix not in ORDERED_BY_DESIGN
    if xs:
        out[prefix + "_mean"] = mean_metric(xs, unit, confidence, dependence=dep)
        sd = mean_std(xs)[1]
        out[prefix + "_std"] = metric(sd, unit, n=len(xs), note=None if sd is not None else "one sample")
        out[prefix + "_min"] = metric(min(xs), unit, n=len(xs))
        out[prefix + "_max"] = metric(max(xs), unit, n=len(xs))
    for pct in PERCENTILES:
        out["%s_p%d" % (prefix, pct)] = percentile_metric(xs, pct, unit, confidence, dep)
    return out


def build_metrics(raw: Json, samples: Dict[str, List[float]], confidence: float) -> Json:
    """Metrics from the child's raw figures and sample series."""
    m: Json = {}
    for name, unit in SINGLE_FIGURES:
        if raw.get(name) is not None:
            m[name] = metric(raw[name], unit, n=1)
    m.update(series_metrics("latency_ms", samples.get("latency_ms") or [], "ms", confidence))
    if "itl_ms" in samples:
        itl = samples["itl_ms"]
        m.update({k: v for k, v in series_metrics("itl_ms", itl, "ms", confidence).items()
                  if k[len("itl_ms_"):] in ("p50", "p90", "p95", "p99")})
        m["tpot_ms"] = mean_metric(itl, "ms", confidence, dependence=False)
        ttft = samples.get("ttft_ms") or []
        if ttft:
            m["ttft_ms"] = ttft_metric(ttft, confidence)
        for name in ("prefill_tokens_per_s", "decode_tokens_per_s"):
            m[name] = mean_metric(samples.get(name) or [], "tok/s", confidence, kind="rate")
    return m


def ttft_metric(ttft: List[float], confidence: float) -> Json:
    """Time to first token: the median of the requests, with its interval where one is claimable."""
    e = estimate("quantile", ttft, 0.5, confidence)
    if e.value is None:  # the median is still reported; without an interval the gate cannot claim it
        return metric(percentile_type7(sorted(ttft), 0.5), "ms", n=e.n, note="median; no interval: %s" % e.note)
    return from_estimate(e, "ms", confidence, note="median")
