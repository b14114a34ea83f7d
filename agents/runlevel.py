"""Run-level evidence: a launch's (block's) statistic and the ratio tests between blocks (issue 12).

Beside agents/stats.py (the one statistics; this is its run-level part, a file of its own to keep both short):
the unit of evidence between two measurements is the launch, not the sample, because placement, frequency and
neighbours move a whole launch. A block's statistic is stats.estimate()'s value where it claims one, else the
same type-7 point (the tests here carry the uncertainty from block to block, not the block's own interval).
Standard library only: the agent ships it, the gate (harness/gate/blocks.py) imports it.
"""

from __future__ import annotations

import functools
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

from agents.stats import estimate, mean_std, percentile_type7, t_cdf, t_quantile

def block_statistic(kind: str, run_order: Sequence[float], p: float, confidence: float) -> Optional[float]:
    """One launch's value of a statistic: estimate()'s value, or its type-7 point where too few samples claim
    an interval (a quantile of a short block); None without samples."""
    e = estimate(kind, run_order, p, confidence, dependence=False)
    if e.value is not None:
        return e.value
    xs = sorted(float(x) for x in run_order if math.isfinite(x))
    return percentile_type7(xs, p) if xs and kind == "quantile" else None


class RatioTest(NamedTuple):
    """A test of candidate / baseline on the log scale: geometric-mean ratio, its interval, two-sided p."""

    ratio: float
    ci: Tuple[float, float]
    p: float
    k: int  # pairs (paired) or the smaller block count (between runs)
    df: float
    design: str  # "paired" | "between"


def _t_result(mean: float, se: float, df: float, confidence: float, k: int, design: str) -> RatioTest:
    if se <= 0.0:  # identical blocks: the ratio is known exactly
        return RatioTest(math.exp(mean), (math.exp(mean), math.exp(mean)), 1.0 if mean == 0.0 else 0.0, k, df, design)
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, df) * se
    t = mean / se
    p = 2.0 * (1.0 - t_cdf(abs(t), df))
    return RatioTest(math.exp(mean), (math.exp(mean - half), math.exp(mean + half)), max(0.0, min(1.0, p)), k, df,
                     design)


@functools.lru_cache(maxsize=128)
def signed_rank_cdf(k: int) -> Tuple[float, ...]:
    """P(W+ <= w), w = 0 .. k(k+1)/2, of the Wilcoxon signed-rank statistic of k pairs under no change (exact)."""
    counts = [1]
    for r in range(1, k + 1):  # each rank joins the positive sum or not
        nxt = counts + [0] * r
        for w, c in enumerate(counts):
            nxt[w + r] += c
        counts = nxt
    total = float(2 ** k)
    acc, out = 0, []
    for c in counts:
        acc += c
        out.append(acc / total)
    return tuple(out)


def paired_ratio(cand: Sequence[float], base: Sequence[float], confidence: float) -> Optional[RatioTest]:
    """Adjacent candidate/baseline blocks of an ABBA session, on log ratios: the Hodges-Lehmann ratio (median of
    the Walsh averages) with its exact Wilcoxon signed-rank interval and p. Distribution-free, so one block that
    a burst of contention hit cannot swing it (a t interval's sd would). Drift and neighbours hit both blocks
    of a pair alike and cancel. Below 6 pairs no 95% interval excludes no change. None below two pairs."""
    d = [math.log(c / b) for c, b in zip(cand, base) if c > 0.0 and b > 0.0 and math.isfinite(c / b)]
    k = len(d)
    if k < 2:
        return None
    walsh = sorted((d[i] + d[j]) / 2.0 for i in range(k) for j in range(i, k))
    m = len(walsh)
    point = walsh[m // 2] if m % 2 else (walsh[m // 2 - 1] + walsh[m // 2]) / 2.0
    cdf = signed_rank_cdf(k)
    tail = (1.0 - confidence) / 2.0
    c = max((w for w in range(len(cdf)) if cdf[w] <= tail), default=-1)  # P(W+ <= c) <= tail
    lo, hi = (walsh[c], walsh[m - 1 - c]) if c >= 0 else (-math.inf, math.inf)  # W_(c+1), W_(m-c)
    nz = sorted((abs(x), x > 0) for x in d if x != 0.0)
    if nz:
        kk = len(nz)
        ranks = _average_ranks([a for a, _ in nz])
        wplus = sum(r for r, (_, pos) in zip(ranks, nz) if pos)
        cdz = signed_rank_cdf(kk)
        w = int(math.floor(wplus))
        below = cdz[min(w, len(cdz) - 1)]
        above = 1.0 - (cdz[int(math.ceil(wplus)) - 1] if math.ceil(wplus) >= 1 else 0.0)
        p = min(1.0, 2.0 * min(below, above))
    else:
        p = 1.0
    return RatioTest(math.exp(point), (math.exp(lo), math.exp(hi)), p, k, k - 1.0, "paired")


def _average_ranks(sorted_abs: Sequence[float]) -> List[float]:
    """1-based ranks of sorted values, ties given their average rank."""
    out: List[float] = []
    i = 0
    while i < len(sorted_abs):
        j = i
        while j + 1 < len(sorted_abs) and sorted_abs[j + 1] == sorted_abs[i]:
            j += 1
        out += [(i + j + 2) / 2.0] * (j - i + 1)
        i = j + 1
    return out


def between_ratio(cand: Sequence[float], base: Sequence[float], confidence: float,
                  run_sd_log: float = 0.0) -> Optional[RatioTest]:
    """Welch t on the logs of two runs' per-launch values (each run >= 2 launches): the spread between launches
    is the noise a difference must clear - plus, where the device has one recorded, its run-to-run spread
    `run_sd_log` (the sd of a whole run's log statistic between A/A runs: drift slower than a run, which moves
    all of a run's launches alike), counted once for each run. None below two usable values on either side."""
    lc = [math.log(x) for x in cand if x > 0.0 and math.isfinite(x)]
    lb = [math.log(x) for x in base if x > 0.0 and math.isfinite(x)]
    if len(lc) < 2 or len(lb) < 2:
        return None
    (mc, sc), (mb, sb) = mean_std(lc), mean_std(lb)
    assert sc is not None and sb is not None
    vc, vb = sc * sc / len(lc), sb * sb / len(lb)
    df = (vc + vb) ** 2 / (vc * vc / (len(lc) - 1) + vb * vb / (len(lb) - 1)) if vc + vb > 0.0 \
        else float(len(lc) + len(lb) - 2)
    se = math.sqrt(vc + vb + 2.0 * run_sd_log * run_sd_log)  # the recorded spread is known: df stays Welch's
    return _t_result(mc - mb, se, df, confidence, min(len(lc), len(lb)), "between")
