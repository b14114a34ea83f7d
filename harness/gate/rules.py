"""Judging one rule on one record: absolute budgets (policy or profile) and relative rules against a baseline.

Budgets on statistics of raw samples are judged on the confidence interval: pass when the whole interval is
within budget, fail when the whole interval is past it, inconclusive otherwise. Relative rules count a change
only when it is past the threshold AND significant on run-level evidence (harness/gate/blocks.py: blocks of an
interleaved A/B session, or the launches of two runs measured with --processes); past the threshold but not
significant is inconclusive (asv's "~"), never a silent pass.
"""

from __future__ import annotations

import math

import numpy as np

from harness.gate.blocks import PROCESSES_HINT, evidence, more_hint
from harness.gate.hints import decide_hint
from harness.gate.model import RuleResult
from harness.gate.policy import StatsConfig
from harness.gate.sequential import sequential_look
from harness.gate.stats import (
    Estimator,
    FloatArray,
    MannWhitney,
    inflation,
    estimator_for,
    interval,
    mann_whitney,
    min_n_for_bounded,
    ratio_interval,
    samples_to_decide,
    z_of,
)
from harness.metrics import METRICS, memory_headroom_pct
from harness.records import Record

MEMORY_METRICS = frozenset({
    "peak_rss_mib", "peak_rss_load_mib", "peak_rss_inference_mib", "load_footprint_mib", "rss_anon_mib",
    "rss_file_mib", "memory_headroom_pct",
})


def fmt(x: float | None, unit: str = "") -> str:
    """A figure for a sentence: 3 significant digits, unit attached."""
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "unbounded"
    s = f"{x:.4g}" if abs(x) < 10000 else f"{x:.0f}"
    return f"{s} {unit}".rstrip() if unit and unit != "%" else f"{s}{unit}"


class SampleCache:
    """Sorted raw-sample arrays and their variance inflation, computed once per (record, series)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], tuple[FloatArray | None, FloatArray | None]] = {}
        self._infl: dict[tuple[int, Estimator], float] = {}
        self._mw: dict[tuple[int, int, str], MannWhitney] = {}
        self._fig: dict[tuple[int, str], Figure] = {}

    def figure(self, rec: Record, metric: str, cfg: StatsConfig) -> Figure:
        """A record's figure for a metric, shared by every rule on it (one StatsConfig per cache)."""
        key = (id(rec), metric)
        if key not in self._fig:
            self._fig[key] = Figure(rec, metric, cfg, self)
        return self._fig[key]

    def _load(self, rec: Record, series: str) -> tuple[FloatArray | None, FloatArray | None]:
        key = (id(rec), series)
        if key not in self._cache:
            raw = rec.samples.get(series)
            if not raw:
                self._cache[key] = (None, None)
            else:
                run_order = np.fromiter(raw, dtype=np.float64, count=len(raw))
                finite = np.isfinite(run_order)
                if not finite.all():
                    run_order = run_order[finite]
                self._cache[key] = (np.sort(run_order), run_order)
        return self._cache[key]

    def get(self, rec: Record, series: str) -> FloatArray | None:
        return self._load(rec, series)[0]

    def inflation(self, rec: Record, est: Estimator) -> float:
        """n / effective n of the series for this statistic (agents.stats), once per (record, estimator)."""
        key = (id(rec), est)
        if key not in self._infl:
            run_order = self._load(rec, est.series)[1]
            self._infl[key] = 1.0 if run_order is None else inflation(run_order, est)
        return self._infl[key]

    def mann_whitney(self, rec: Record, base: Record, series: str, a: FloatArray, b: FloatArray,
                     infl: float) -> MannWhitney:
        """One test per (record, baseline record, series), shared by the rules on that series."""
        key = (id(rec), id(base), series)
        if key not in self._mw:
            self._mw[key] = mann_whitney(a, b, infl)
        return self._mw[key]


class Figure:
    """A metric of one record: point estimate, interval, sample count, and why it may be missing."""

    def __init__(self, rec: Record, metric: str, cfg: StatsConfig, cache: SampleCache) -> None:
        self.metric, self.rec = metric, rec
        self.est: Estimator | None = estimator_for(metric)
        self.samples: FloatArray | None = cache.get(rec, self.est.series) if self.est else None
        self.infl = cache.inflation(rec, self.est) if self.est else 1.0
        m = rec.metrics.get(metric)
        self.note = m.note if m else None
        self.value: float | None = m.value if m else None
        self.ci: tuple[float, float] | None = m.ci if m else None
        if self.value is not None and not math.isfinite(self.value):  # NaN / inf in a hand-made record
            self.value, self.ci, self.note = None, None, f"recorded value {self.value} is not a finite number"
        if self.ci is not None and not all(math.isfinite(v) for v in self.ci):
            self.ci = None
        self.n: int | None = m.n if m else None
        have = self.samples is not None and len(self.samples) > 0
        if self.est is not None and have:
            assert self.samples is not None
            if self.value is None and not self.note:
                self.value = self.est.point(self.samples)
            if self.ci is None:
                self.ci = interval(self.est, self.samples, cfg.confidence, self.infl)
            elif self.infl > 1.1:
                # the record's interval assumes independent samples; bursts make it too narrow: widen
                lo, hi = interval(self.est, self.samples, cfg.confidence, self.infl)
                self.ci = (min(self.ci[0], lo), max(self.ci[1], hi))
            self.n = self.n or len(self.samples)
        if metric == "memory_headroom_pct" and self.value is None:
            self.value = memory_headroom_pct(rec.device.ram_mib, rec.value("peak_rss_mib"))


def _unmeasured(base: RuleResult, fig: Figure, cfg: StatsConfig) -> RuleResult:
    if fig.note:
        base.outcome, base.reason = "inconclusive", f"{fig.metric} not claimed: {fig.note}"
        if fig.est is not None and fig.est.kind == "quantile":
            n = fig.n or 0
            base.more_samples = max(1, min_n_for_bounded(fig.est.p, cfg.confidence, n, fig.infl) - n)
            base.reason += (f"; ~{base.more_samples} more samples would allow a claim: "
                            f"{decide_hint(fig.metric, n, base.more_samples, fig.rec)}")
        return base
    base.outcome, base.reason = "skipped", f"{fig.metric} was not measured on this run"
    return base


def judge_budget(rec: Record, metric: str, limit: float, rule: str, source: str, cfg: StatsConfig,
                 cache: SampleCache) -> RuleResult:
    """An absolute budget: max for lower-is-better metrics, min for higher-is-better ones."""
    d = METRICS[metric]
    lower = d.better == "lower"
    res = RuleResult(rule=rule, kind="budget", source=source, outcome="pass", reason="", metric=metric,
                     unit=d.unit, comparator="<=" if lower else ">=", threshold=limit)
    if metric == "memory_headroom_pct" and rec.metrics.get(metric) is None and not rec.device.ram_mib:
        res.outcome, res.reason = "skipped", "device RAM unknown: memory headroom cannot be computed"
        return res
    fig = cache.figure(rec, metric, cfg)
    res.value, res.ci, res.n = fig.value, fig.ci, fig.n
    if fig.value is None:
        return _unmeasured(res, fig, cfg)
    u, v = d.unit, fig.value
    seq = sequential_look(rec, metric)  # --adaptive decide: judged on the final look's interval
    ci = fig.ci if seq is None else seq.ci or (-math.inf, math.inf)
    if ci is None:  # a single figure: judged as it stands
        ok = v <= limit if lower else v >= limit
        res.bound = v
        res.outcome = "pass" if ok else "fail"
        res.reason = f"{fmt(v, u)} {'within' if ok else 'past'} budget {res.comparator} {fmt(limit, u)}"
        return res
    lo, hi = res.ci = ci
    near, far = (hi, lo) if lower else (lo, hi)  # near: the bound that must be within budget to pass

    def within(x: float) -> bool:
        return x <= limit if lower else x >= limit

    conf = f"{cfg.confidence:.0%}" if seq is None else f"{seq.confidence:.4g}"
    if within(near):
        res.outcome, res.bound = "pass", near
        res.reason = (f"{fmt(v, u)}; {conf} bound {fmt(near, u)} within budget {res.comparator} {fmt(limit, u)}")
    elif not within(far):
        res.outcome, res.bound = "fail", far
        res.reason = (f"{fmt(v, u)}; even the {conf} bound {fmt(far, u)} is past budget "
                      f"{res.comparator} {fmt(limit, u)}")
    else:
        res.outcome, res.bound = "inconclusive", near
        n = fig.n or 0
        if math.isinf(near) and fig.est is not None and fig.est.kind == "quantile":
            res.more_samples = max(1, min_n_for_bounded(fig.est.p, cfg.confidence, n, fig.infl) - n)
        else:
            half = (hi - lo) / 2.0 if math.isfinite(hi - lo) else math.inf
            res.more_samples = samples_to_decide(n, half, abs(v - limit))
        more = (f"~{res.more_samples} more samples would decide: {decide_hint(metric, n, res.more_samples, rec)}"
                if res.more_samples else "no sample count decides")
        res.reason = (f"{fmt(v, u)} but the {conf} interval [{fmt(lo, u)}, {fmt(hi, u)}] straddles budget "
                      f"{res.comparator} {fmt(limit, u)}; {more}")
    if seq is not None:
        res.reason += f"; {seq.note}"
    return res


def judge_oom(rec: Record, metric: str, limit: float, rule: str, source: str) -> RuleResult:
    """An out-of-memory run against a memory budget: a fail that says how much memory was reached."""
    d = METRICS[metric]
    cap_info = rec.provenance.memory_cap
    peak = rec.value("peak_rss_mib") if metric == "memory_headroom_pct" else (
        rec.value(metric) if rec.value(metric) is not None else rec.value("peak_rss_mib"))
    for fallback in (cap_info.group_peak_mib if cap_info else None, rec.provenance.os_peak_rss_mib):
        if peak is None and fallback is not None:
            peak = float(fallback)  # what the host saw when the agent could not report
    reached = f"memory reached {fmt(peak, 'MiB')}" if peak is not None else "memory reached not recorded"
    value = peak
    if metric == "memory_headroom_pct" and (value := memory_headroom_pct(rec.device.ram_mib, peak)) is not None:
        reached += f" (headroom {fmt(value, '%')})"
    capped = f" under a {cap_info.limit_mib:g} MiB {cap_info.kind} memory cap".replace("  ", " ") if cap_info else ""
    return RuleResult(rule=rule, kind="budget", source=source, outcome="fail",
                      reason=f"out of memory{capped}: {reached}; budget {'<=' if d.better == 'lower' else '>='} "
                             f"{fmt(limit, d.unit)}",
                      metric=metric, unit=d.unit, comparator="<=" if d.better == "lower" else ">=",
                      threshold=limit, value=value, bound=value, error_kind="oom")


def _no_evidence(res: RuleResult, head: str, metric: str, worse: float, limit: float) -> RuleResult:
    """Candidate and baseline each measured in one launch: nothing tells run-to-run noise from a change."""
    if worse <= limit:
        res.outcome, res.reason = "pass", head
    elif metric in MEMORY_METRICS:  # memory is not timing noise: one figure per run, judged as it stands, no test
        res.outcome, res.reason = "fail", f"{head}; one figure per run, judged as it stands (no test)"
    else:
        res.outcome, res.not_significant = "inconclusive", True
        res.reason = (f"{head}; past the threshold but not significant: no run-level evidence (each run is one "
                      f"launch; within-run samples do not show run-to-run noise): {PROCESSES_HINT}")
    return res


def judge_relative(rec: Record, base: Record | None, metric: str, max_worse_pct: float, rule: str, source: str,
                   cfg: StatsConfig, cache: SampleCache, rng: np.random.Generator,
                   run_spread_pct: float | None = None) -> RuleResult:
    """Candidate vs baseline on run-level evidence (harness/gate/blocks.py): fail only when the ratio is past
    the threshold AND its interval lies wholly on the worse side of 1 (significant)."""
    d = METRICS[metric]
    lower = d.better == "lower"
    res = RuleResult(rule=rule, kind="relative", source=source, outcome="pass", reason="", metric=metric,
                     unit=d.unit, comparator="<=", threshold=max_worse_pct)
    if base is None:
        res.outcome, res.reason = "skipped", "no baseline record for this device and artifact"
        return res
    if base.status != "ok":
        res.outcome, res.reason = "skipped", f"baseline run has status '{base.status}'"
        return res
    fc, fb = cache.figure(rec, metric, cfg), cache.figure(base, metric, cfg)
    res.value, res.ci, res.n, res.baseline = fc.value, fc.ci, fc.n, fb.value
    limit = 1.0 + max_worse_pct / 100.0
    u = d.unit
    # the blocks decide even where a pooled figure is not claimed
    test = evidence(rec, base, metric, cfg.confidence, run_spread_pct)
    if test is None and fc.value is None:
        return _unmeasured(res, fc, cfg)
    if test is None and (fb.value is None or fb.value == 0 or fc.value == 0):
        res.outcome, res.reason = "skipped", f"baseline has no usable {metric}"
        return res
    if test is None:
        assert fc.value is not None and fb.value is not None
        worse = fc.value / fb.value if lower else fb.value / fc.value
        res.change_pct = (worse - 1.0) * 100.0
        head = (f"{fmt(fc.value, u)} vs baseline {fmt(fb.value, u)} ({res.change_pct:+.1f}%, "
                f"allowed +{max_worse_pct:g}%)")
        return _no_evidence(res, head, metric, worse, limit)
    worse = test.ratio if lower else 1.0 / test.ratio
    rlo, rhi = test.ci if lower else (1.0 / test.ci[1], 1.0 / test.ci[0])
    res.change_pct = (worse - 1.0) * 100.0
    res.change_ci_pct = ((rlo - 1.0) * 100.0, (rhi - 1.0) * 100.0)
    res.p_value = test.p
    what = (f"{test.k} adjacent A/B block pairs of one interleaved session" if test.design == "paired"
            else f"{test.k}+ launches per run" + (f" and the device's run-to-run spread of {run_spread_pct:g}%"
                                                   if run_spread_pct else ""))
    head = (f"{fmt(fc.value, u)} vs baseline {fmt(fb.value, u)}; block ratio {res.change_pct:+.1f}% "
            f"(allowed +{max_worse_pct:g}%)")
    stat = (f"{what}: {cfg.confidence:.0%} CI of change [{res.change_ci_pct[0]:+.1f}%, "
            f"{res.change_ci_pct[1]:+.1f}%], p={test.p:.2g}")
    if worse <= limit:
        res.outcome, res.reason = "pass", f"{head}; {stat}"
    elif rlo > 1.0:
        res.outcome, res.reason = "fail", f"{head}; significant ({stat})"
    else:
        res.outcome, res.not_significant = "inconclusive", True
        res.reason = f"{head}; past the threshold but not significant ({stat}); {more_hint(rec, test)}"
    return res
