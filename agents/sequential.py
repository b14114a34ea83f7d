"""Stopping when the verdict is decided (`--adaptive decide`): a sequential rule over a bounded number of looks.

The rule (RULE): at most K looks, at sample counts on a geometric schedule n_1, n_1 g, n_1 g^2, ... (the
last look is the end of the run: the K-th scheduled count, max_runs, or max_s, whichever comes first). At
each look every gated statistic's interval is computed by agents.stats.estimate at the per-look confidence
c' = 1 - (1 - c) / K (Bonferroni alpha spending); the run stops "decided" as soon as every interval lies
wholly on one side of its budget.

Error rate (stated and tested, tests/test_adaptive_decide.py): a budget is judged wrongly only when, at the
look where it is judged, the interval misses the true value on the far side; by the union bound over the K
looks this happens with probability at most K x (1 - c') / 2 = (1 - c) / 2 per budget, the bound of one
interval at confidence c after a fixed count. The gate judges a sequential record's gated budgets on the
final look's interval (stored in the record's `stopping`), never on a narrower one, so an undecided run stays
inconclusive instead of spending the error twice. A decided run's own interval at confidence c lies inside
the look's interval (same samples, c < c'), so it gives the gate the same verdict.

Intervals are computed on the samples as the record will hold them (rounded to SAMPLE_DECIMALS) and their
bounds rounded as the record rounds them (BOUND_DECIMALS), so the look and the record cannot disagree by a
rounding.
"""

from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence, Tuple

from agents.protocol import Json, finite
from agents.stats import ORDERED_BY_DESIGN, estimate, min_samples_for_percentile

RULE = "bonferroni-geometric"
SAMPLE_DECIMALS = 6  # how the child rounds every sample it reports
BOUND_DECIMALS = 4  # how a metric's value and interval are rounded (agents.summary.metric)


class Gated:
    """One gated statistic and its budget: (series, kind, p) as agents.stats names them; lower: a `max`."""

    __slots__ = ("metric", "series", "kind", "p", "limit", "lower", "per_run")

    def __init__(self, metric: str, series: str, kind: str, p: float, limit: float, lower: bool,
                 per_run: int = 1) -> None:
        self.metric, self.series, self.kind, self.p, self.limit, self.lower = metric, series, kind, p, limit, lower
        self.per_run = per_run  # samples each run adds to the series


def look_confidence(confidence: float, looks: int) -> float:
    """The confidence of each look's interval: 1 - (1 - confidence) / looks."""
    return 1.0 - (1.0 - confidence) / looks


def first_look(gated: Sequence[Gated], confidence: float, looks: int, min_runs: int) -> int:
    """The first count at which every gated statistic can have an interval at the per-look confidence."""
    c = look_confidence(confidence, looks)
    need = [int(math.ceil((min_samples_for_percentile(g.p, c) if g.kind == "quantile" else 2) / g.per_run))
            for g in gated]
    return max([min_runs, 8] + need)


def schedule(first: int, looks: int, growth: float, max_runs: int) -> List[int]:
    """The counts of the scheduled looks: first x growth^k, rounded up, strictly increasing, at most looks of
    them, the last one capped at max_runs."""
    out: List[int] = []
    x = float(first)
    while len(out) < looks:
        n = min(max_runs, int(math.ceil(x)))
        if out and n <= out[-1]:
            n = out[-1] + 1
            if n > max_runs:
                break
        out.append(n)
        if n >= max_runs:
            break
        x *= growth
    return out


def _recorded(x: Optional[float]) -> float:
    v = finite(x, BOUND_DECIMALS)
    return math.nan if v is None else v


def judge(series: Mapping[str, Sequence[float]], gated: Sequence[Gated], confidence: float) -> List[Json]:
    """One look: each gated statistic's interval at `confidence` and its side of the budget (pass / fail /
    open), on the samples as the record holds them."""
    out: List[Json] = []
    for g in gated:
        xs = [round(float(x), SAMPLE_DECIMALS) for x in series.get(g.series, ())]
        e = estimate(g.kind, xs, g.p, confidence, g.series not in ORDERED_BY_DESIGN)
        ci: Optional[Tuple[float, float]] = None
        side = "open"
        if e.ci is not None:
            lo, hi = _recorded(e.ci[0]), _recorded(e.ci[1])
            ci = (lo, hi)
            near, far = (hi, lo) if g.lower else (lo, hi)
            if (near <= g.limit) if g.lower else (near >= g.limit):
                side = "pass"
            elif (far > g.limit) if g.lower else (far < g.limit):
                side = "fail"
        out.append({"metric": g.metric, "limit": g.limit, "n": e.n, "n_eff": e.n_eff,
                    "ci": None if ci is None else [ci[0], ci[1]], "side": side})
    return out


def decided(look: Sequence[Json]) -> bool:
    """Every gated statistic lies wholly on one side of its budget."""
    return bool(look) and all(j["side"] != "open" for j in look)


def stopping_record(gated: Sequence[Gated], confidence: float, looks: int, growth: float, planned: Sequence[int],
                    taken: Sequence[int], last: Sequence[Json], reason: str, runs: int, seconds: float) -> Json:
    """The record's `stopping` for a sequential run: the rule, its looks, the confidence per look, why it
    stopped, and the final look's interval of every gated statistic (what the gate judges them on)."""
    return {"adaptive": True, "mode": "decide", "rule": RULE, "stop_reason": reason, "runs": runs,
            "seconds": round(seconds, 4), "confidence": confidence, "looks": looks, "growth": growth,
            "look_confidence": look_confidence(confidence, looks), "planned_looks": list(planned),
            "looks_at": list(taken), "checks": len(taken),
            "error_bound": "each gated budget is judged wrongly with probability <= %g (union bound over %d looks "
                           "at %g)" % ((1.0 - confidence) / 2.0, looks, look_confidence(confidence, looks)),
            "gated": list(last)}


def replay(series: Mapping[str, Sequence[float]], gated: Sequence[Gated], confidence: float, looks: int, growth: float,
           min_runs: int = 1) -> Tuple[str, int, List[Json]]:
    """The rule on recorded series (each in run order, one sample per run): (stop reason, runs used, last look),
    as decide_loop would have stopped on them with no time limit; the end of the data is the final look."""
    n_all = min(len(v) for v in series.values())
    c = look_confidence(confidence, looks)
    planned = schedule(first_look(gated, confidence, looks, min_runs), looks, growth, n_all)
    last: List[Json] = []
    for n in planned:
        last = judge({k: v[:n] for k, v in series.items()}, gated, c)
        if decided(last):
            return "decided", n, last
    return ("undecided_at_last_look" if planned and planned[-1] < n_all else "end_of_data"), \
        (planned[-1] if planned else 0), last
