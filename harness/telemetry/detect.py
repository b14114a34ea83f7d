"""Drift verdicts: one evaluation window of one model, per device class and metric, against the field's own
earlier windows and against the released student's lab figures.

The unit of comparison is the window, not the request. Millions of requests make any per-request interval
tiny, while whole windows move with the fleet's mix, the weather and the hour; so a window counts as moved
only when it is past the policy's practical ratio AND outside the band its baseline windows span
(z x their window-to-window log spread, never below window.spread_floor). Baselines are the windows at the
same phase of window.season (the same hours of earlier days), so day/night swings compare like with like.
The window's own interval (bucket counts or exact binomial) is evidence too: a window whose percentile it cannot
bound, or with fewer than window.min_requests requests, is `insufficient`, never `ok`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.telemetry import contract as c
from harness.telemetry.estimates import Estimate, histogram_quantile, mean_estimate, proportion
from harness.telemetry.policy import DriftPolicy
from harness.telemetry.window import Window

Verdict = Literal["ok", "insufficient", "drift", "rollback"]
SEVERITY: dict[str, int] = {"ok": 0, "insufficient": 1, "drift": 2, "rollback": 3}


@dataclass
class Finding:
    metric: str
    device_class: str
    against: str  # field (earlier windows) | lab | limit (an absolute policy bound)
    verdict: Verdict
    field_value: Estimate
    baseline: dict[str, Any] | None
    keys: list[str]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "device_class": self.device_class, "against": self.against,
                "verdict": self.verdict, "field": self.field_value.to_dict(), "baseline": self.baseline,
                "policy_keys": self.keys, "reason": self.reason}


@dataclass
class LabFigure:
    value: float
    lo: float
    hi: float
    source: str


@dataclass
class WindowVerdict:
    model: str
    start: float
    end: float
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        worst: Verdict = "ok"
        for f in self.findings:
            if SEVERITY[f.verdict] > SEVERITY[worst]:
                worst = f.verdict
        return worst


# (metric name, how to read it from a window, unit, higher is worse, policy section)
def latency_reader(p: float, conf: float) -> Callable[[Window], Estimate]:
    return lambda w: histogram_quantile(c.LATENCY_BUCKETS_S, w.latency_counts, p / 100.0, conf)


def memory_reader(p: float, conf: float) -> Callable[[Window], Estimate]:
    return lambda w: histogram_quantile(c.MEMORY_BUCKETS_BYTES, w.memory_counts, p / 100.0, conf)


def tokens_reader(w: Window) -> Estimate:
    if w.generation_s <= 0 or w.tokens <= 0:
        return Estimate(None, -math.inf, math.inf, 0, "no generated tokens in the window")
    v = w.tokens / w.generation_s  # a ratio of sums: fleet tokens per generation-second, no per-window interval
    return Estimate(v, -math.inf, math.inf, int(round(w.tokens)), "ratio of sums; judged on the window spread")


def baseline_windows(series: dict[float, Window], end: float, pol: DriftPolicy) -> list[Window]:
    """The earlier windows at the same phase of the season, newest first (those present)."""
    out = []
    for k in range(1, pol.window.history + 1):
        w = series.get(end - k * pol.season_s)
        if w is not None:
            out.append(w)
    return out


def _spread(logs: Sequence[float], floor: float) -> float:
    if len(logs) < 3:
        return floor
    med = sorted(logs)[len(logs) // 2]
    mad = sorted(abs(x - med) for x in logs)[len(logs) // 2]
    return max(floor, 1.4826 * mad)


def _fmt(x: float | None, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "unbounded" if x is not None else "n/a"
    if unit == "s":
        return f"{x * 1000:.1f} ms"
    if unit == "bytes":
        return f"{x / 2**20:.0f} MiB"
    if unit == "share":
        return f"{x * 100:.2f}%"
    return f"{x:.3g} {unit}".strip()


def ratio_vs_field(metric: str, dc: str, cur: Estimate, base: list[Estimate], unit: str, higher_worse: bool,
                   drift_ratio: float, rollback_ratio: float | None, section: str, pol: DriftPolicy) -> Finding | None:
    vals = [b.value for b in base if b.value is not None and b.value > 0]
    if cur.value is None or cur.value <= 0 or len(vals) < pol.window.min_history:
        return None
    logs = [math.log(v) for v in vals]
    b = math.exp(sorted(logs)[len(logs) // 2]) if len(logs) % 2 else math.exp(
        (sorted(logs)[len(logs) // 2 - 1] + sorted(logs)[len(logs) // 2]) / 2)
    s = _spread(logs, pol.window.spread_floor)
    half = pol.window.z * s * math.sqrt(1 + 1 / len(vals))
    r = cur.value / b
    moved = math.log(r) > half if higher_worse else math.log(r) < -half
    verdict: Verdict = "ok"
    keys = [f"{section}.drift_ratio", "window.z", "window.spread_floor"]

    def worse(lim: float) -> bool:
        return r > lim if higher_worse else r < lim

    if moved and rollback_ratio is not None and worse(rollback_ratio):
        verdict, keys = "rollback", [f"{section}.rollback_ratio", "window.z", "window.spread_floor"]
    elif moved and worse(drift_ratio):
        verdict = "drift"
    band = (b * math.exp(-half), b * math.exp(half))
    if verdict != "ok":
        tail = f"outside the band and past {keys[0]} {rollback_ratio if verdict == 'rollback' else drift_ratio}"
    elif moved:
        tail = f"outside the band but within {section}.drift_ratio {drift_ratio}"
    else:
        tail = f"inside the band ({section}.drift_ratio {drift_ratio})"
    reason = (f"{_fmt(cur.value, unit)} is {r:.3f}x the baseline {_fmt(b, unit)} (median of {len(vals)} "
              f"same-phase windows; band {_fmt(band[0], unit)}-{_fmt(band[1], unit)}); {tail}")
    return Finding(metric, dc, "field", verdict, cur,
                   {"value": b, "band": list(band), "windows": len(vals), "spread_log": s}, keys, reason)


def ratio_vs_lab(metric: str, dc: str, cur: Estimate, lab: LabFigure | None, unit: str, higher_worse: bool,
                 lab_ratio: float | None, section: str) -> Finding | None:
    if lab is None or lab_ratio is None or cur.value is None:
        return None
    # Both intervals must clear the ratio: the field's far side against the lab's near side.
    if higher_worse:
        r = cur.lo / lab.hi if lab.hi > 0 else math.inf
        bad = math.isfinite(cur.lo) and r > lab_ratio
    else:
        r = cur.hi / lab.lo if lab.lo > 0 else 0.0
        bad = math.isfinite(cur.hi) and r < lab_ratio
    reason = (f"field {_fmt(cur.value, unit)} [{_fmt(cur.lo, unit)}, {_fmt(cur.hi, unit)}] vs lab "
              f"{_fmt(lab.value, unit)} [{_fmt(lab.lo, unit)}, {_fmt(lab.hi, unit)}] ({lab.source}); "
              f"interval ratio {r:.3f} {'past' if bad else 'within'} {section}.lab_drift_ratio {lab_ratio}")
    return Finding(metric, dc, "lab", "drift" if bad else "ok", cur,
                   {"value": lab.value, "ci": [lab.lo, lab.hi], "source": lab.source},
                   [f"{section}.lab_drift_ratio", "lab.run", "lab.devices"], reason)


def oom_findings(dc: str, cur_w: Window, base: list[Window], pol: DriftPolicy) -> list[Finding]:
    cur = proportion(cur_w.requests.get("oom", 0.0), cur_w.total_requests, pol.confidence)
    o = pol.oom
    verdict: Verdict = "ok"
    keys = ["oom.drift_rate"]
    why = f"OOM share {_fmt(cur.value, 'share')} [{_fmt(cur.lo, 'share')}, {_fmt(cur.hi, 'share')}] of {cur.n}"
    basedict: dict[str, Any] | None = None
    if o.rollback_rate is not None and cur.lo > o.rollback_rate:
        verdict, keys = "rollback", ["oom.rollback_rate"]
        why += f": lower bound past oom.rollback_rate {o.rollback_rate}"
    elif cur.lo > o.drift_rate:
        verdict = "drift"
        why += f": lower bound past oom.drift_rate {o.drift_rate}"
    if len(base) >= pol.window.min_history:
        b = proportion(sum(w.requests.get("oom", 0.0) for w in base), sum(w.total_requests for w in base),
                   pol.confidence)
        basedict = {"value": b.value, "ci": [b.lo, b.hi], "windows": len(base)}
        if verdict == "ok" and cur.lo > o.drift_ratio * b.hi:
            verdict, keys = "drift", ["oom.drift_ratio"]
            why += f": lower bound past oom.drift_ratio {o.drift_ratio} x the baseline's upper bound {b.hi:.4%}"
    if verdict == "ok":
        why += ": within oom.drift_rate" + (" and oom.drift_ratio" if basedict else "")
    return [Finding("oom_rate", dc, "limit", verdict, cur, basedict, keys, why)]


def behaviour_finding(dc: str, sims: list[float], base_means: list[float], pol: DriftPolicy) -> Finding:
    bp = pol.behaviour
    cur = mean_estimate(sims, pol.confidence)
    keys = ["behaviour.min_samples"]
    if cur.n < bp.min_samples or cur.value is None:
        return Finding("behaviour_similarity", dc, "limit", "insufficient", cur, None, keys,
                       f"{cur.n} sampled outputs with a reference in the window < behaviour.min_samples "
                       f"{bp.min_samples}")
    verdict: Verdict = "ok"
    why = f"mean similarity to the reference {cur.value:.3f} [{cur.lo:.3f}, {cur.hi:.3f}] over {cur.n} outputs"
    base = sum(base_means) / len(base_means) if base_means else None
    if bp.rollback_similarity is not None and cur.hi < bp.rollback_similarity:
        verdict, keys = "rollback", ["behaviour.rollback_similarity"]
        why += f": upper bound below behaviour.rollback_similarity {bp.rollback_similarity}"
    elif bp.drift_similarity is not None and cur.hi < bp.drift_similarity:
        verdict, keys = "drift", ["behaviour.drift_similarity"]
        why += f": upper bound below behaviour.drift_similarity {bp.drift_similarity}"
    elif base is not None and len(base_means) >= pol.window.min_history and cur.hi < base - bp.drift_drop:
        verdict, keys = "drift", ["behaviour.drift_drop"]
        why += f": upper bound below the earlier windows' {base:.3f} minus behaviour.drift_drop {bp.drift_drop}"
    else:
        why += ": within the behaviour limits"
    return Finding("behaviour_similarity", dc, "limit", verdict, cur,
                   None if base is None else {"value": base, "windows": len(base_means)}, keys, why)
