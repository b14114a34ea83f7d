"""Evaluating one window (or every window of a series) of one model: gathers the figures per device class
and asks detect.py for each metric's verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.telemetry.detect import (
    Finding,
    LabFigure,
    WindowVerdict,
    latency_reader,
    memory_reader,
    tokens_reader,
    baseline_windows,
    behaviour_finding,
    oom_findings,
    ratio_vs_field,
    ratio_vs_lab,
)
from harness.telemetry.estimates import Estimate
from harness.telemetry.policy import DriftPolicy
from harness.telemetry.window import Window, group


@dataclass(frozen=True)
class ScoredSample:
    """A sampled field output scored against the reference output for the same prompt."""

    time: float
    device_class: str
    prompt_id: str
    similarity: float


@dataclass
class Context:
    """Everything a verdict needs besides the windows."""

    policy: DriftPolicy
    lab: dict[tuple[str, str], LabFigure] = field(default_factory=dict)  # (device class, metric) -> figure
    scored: list[ScoredSample] = field(default_factory=list)
    behaviour_on: bool = False
    # Each window's figures are computed once, however many later windows use it as a baseline
    # (an exact binomial interval over thousands of requests is not free).
    _figures: dict[tuple[str, str, float], Estimate] = field(default_factory=dict)
    _sims: dict[tuple[str, float], list[float]] | None = None

    def figure(self, metric: str, w: Window, read: Callable[[Window], Estimate]) -> Estimate:
        k = (metric, w.device_class, w.end)
        if k not in self._figures:
            self._figures[k] = read(w)
        return self._figures[k]

    def sims(self, dc: str, w: Window) -> list[float]:
        """Similarities of the samples that fell in window w (windows are aligned on multiples of their length)."""
        if self._sims is None:
            self._sims = {}
            for s in self.scored:
                start = math.floor(s.time / self.policy.window_s) * self.policy.window_s
                self._sims.setdefault((s.device_class, start), []).append(s.similarity)
        return self._sims.get((dc, w.start), [])


def _insufficient(metric: str, dc: str, est: Estimate, key: str, why: str) -> Finding:
    return Finding(metric, dc, "limit", "insufficient", est, None, [key], why)


def evaluate_window(windows: list[Window], end: float, ctx: Context) -> WindowVerdict:
    """The verdict for the window ending at `end`, over every device class seen in the baseline or the window."""
    pol = ctx.policy
    model = windows[0].model if windows else ""
    out = WindowVerdict(model, end - pol.window_s, end)
    for (_m, dc), series in sorted(group(windows).items()):
        by_end = {w.end: w for w in series}
        base = baseline_windows(by_end, end, pol)
        cur = by_end.get(end)
        if cur is None:
            if base:  # it was reporting and stopped: never an ok
                out.findings.append(_insufficient("requests", dc, Estimate(0, 0, 0, 0), "window.min_requests",
                                                  "no field data in this window (the class reported before)"))
            continue
        if cur.total_requests < pol.window.min_requests:
            out.findings.append(_insufficient(
                "requests", dc, Estimate(cur.total_requests, 0, 0, int(cur.total_requests)), "window.min_requests",
                f"{cur.total_requests:.0f} requests < window.min_requests {pol.window.min_requests}"))
            continue
        if len(base) < pol.window.min_history:
            out.notes.append(f"{dc}: {len(base)} earlier same-phase windows < window.min_history "
                             f"{pol.window.min_history}: no field-to-field comparison yet")
        specs = [(f"latency_p{p:g}", latency_reader(p, pol.confidence), "s", True, pol.latency.drift_ratio,
                  pol.latency.rollback_ratio, pol.latency.lab_drift_ratio, "latency") for p in pol.latency.percentiles]
        mp = pol.memory
        specs.append((f"peak_memory_p{mp.percentile:g}", memory_reader(mp.percentile, pol.confidence), "bytes", True,
                      mp.drift_ratio, mp.rollback_ratio, mp.lab_drift_ratio, "memory"))
        tp = pol.tokens_per_s
        specs.append(("tokens_per_s", tokens_reader, "tok/s", False, tp.drift_ratio, tp.rollback_ratio,
                      tp.lab_drift_ratio, "tokens_per_s"))
        for metric, read, unit, higher_worse, dr, rr, lr, section in specs:
            est = ctx.figure(metric, cur, read)
            if est.value is None:
                if metric != "tokens_per_s":  # tokens/s only for models that generate
                    out.findings.append(_insufficient(metric, dc, est, "window.min_requests", est.note or "no data"))
                continue
            if metric != "tokens_per_s" and not (math.isfinite(est.lo) and math.isfinite(est.hi)):
                out.findings.append(_insufficient(metric, dc, est, "window.min_requests",
                                                  f"the window cannot bound {metric}: {est.note}"))
                continue
            f = ratio_vs_field(metric, dc, est, [ctx.figure(metric, b, read) for b in base], unit, higher_worse, dr, rr, section, pol)
            if f is not None:
                out.findings.append(f)
            f = ratio_vs_lab(metric, dc, est, ctx.lab.get((dc, metric)), unit, higher_worse, lr, section)
            if f is not None:
                out.findings.append(f)
        out.findings.extend(oom_findings(dc, cur, base, pol))
        if ctx.behaviour_on:
            sims = ctx.sims(dc, cur)
            base_means = []
            for b in base:
                bs = ctx.sims(dc, b)
                if len(bs) >= pol.behaviour.min_samples:
                    base_means.append(sum(bs) / len(bs))
            out.findings.append(behaviour_finding(dc, sims, base_means, pol))
    return out


def evaluate_series(windows: list[Window], ctx: Context) -> list[WindowVerdict]:
    """A verdict for every window end present in the data, oldest first (what a scheduled job would have said)."""
    ends = sorted({w.end for w in windows})
    return [evaluate_window(windows, e, ctx) for e in ends]
