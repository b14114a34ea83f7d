"""Timing loops. The timed region (t0..t1) holds the model call and nothing else: bookkeeping, interval checks
and progress events happen between runs, after t1 is read.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from agents import sequential
from agents.protocol import Json, finite
from agents.stats import min_samples_for_percentile, mlperf_min_queries, percentile_rel_width

Progress = Callable[[int, float, Optional[float]], None]  # (runs, elapsed s, eta s or None)
PROGRESS_EVERY_S = 0.25  # at most ~4 progress events a second


def timed_loop(fn: Callable[[], None], min_runs: int, min_s: float, max_s: float,
               max_runs: int = 10 ** 9, progress: Optional[Progress] = None) -> Tuple[List[float], float]:
    """Run fn until both min_runs and min_s are met, or max_s has passed, or max_runs were made (a sub-
    microsecond model would otherwise make hundreds of thousands of samples a second); (latencies ms, wall s)."""
    pc = time.perf_counter
    lat: List[float] = []
    start = pc()
    next_report = start + PROGRESS_EVERY_S
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        lat.append((t1 - t0) * 1e3)
        el = t1 - start
        if (len(lat) >= min_runs and el >= min_s) or el >= max_s or len(lat) >= max_runs:
            return lat, el
        if progress is not None and t1 >= next_report:
            need_runs = (min_runs - len(lat)) * el / len(lat)
            progress(len(lat), el, min(max_s - el, max(min_s - el, need_runs, 0.0)))
            next_report = t1 + PROGRESS_EVERY_S


def alternating_loop(fa: Callable[[], None], fb: Callable[[], None], every: int, min_runs: int, min_s: float,
                     max_s: float, max_runs: int = 10 ** 9,
                     progress: Optional[Progress] = None) -> Tuple[List[float], List[float], float]:
    """Two models in turns of `every` requests, ABBA (A B, B A, A B, ...), each request timed alone, until both
    have min_runs and min_s has passed, or max_s, or max_runs each; (latencies of A ms, of B ms, wall s).
    Whatever drifts (frequency, neighbours, a host's speed) hits both within a turn of each other."""
    pc = time.perf_counter
    lat: Tuple[List[float], List[float]] = ([], [])
    fns = (fa, fb)
    start = pc()
    next_report = start + PROGRESS_EVERY_S
    turn = 0
    while True:
        for who in ((0, 1) if turn % 2 == 0 else (1, 0)):
            fn, out = fns[who], lat[who]
            for _ in range(every):
                t0 = pc()
                fn()
                t1 = pc()
                out.append((t1 - t0) * 1e3)
        turn += 1
        el = pc() - start
        n = min(len(lat[0]), len(lat[1]))
        if (n >= min_runs and el >= min_s) or el >= max_s or n >= max_runs:
            return lat[0], lat[1], el
        if progress is not None and start + el >= next_report:
            need_runs = (min_runs - n) * el / n
            progress(n, el, min(max_s - el, max(min_s - el, need_runs, 0.0)))
            next_report = start + el + PROGRESS_EVERY_S


def adaptive_loop(fn: Callable[[], None], min_runs: int, min_s: float, max_s: float, percentiles: Sequence[float],
                  rel_width: float, confidence: float, clock: Callable[[], float] = time.perf_counter,
                  max_runs: int = 10 ** 9, progress: Optional[Progress] = None) -> Tuple[List[float], float, Json]:
    """Run fn until every target percentile's interval is narrower than rel_width x its value and n has reached
    its floor (and min_runs and min_s are met), or max_s has passed; (latencies in ms, wall s, stopping).

    The interval is checked every max(16, n/10) runs, past the timed region, with agents.stats.estimate: the
    interval the record will hold (effective n for serially dependent samples), so a run never stops on a width
    its own record cannot claim.
    """
    floors = {p: max(mlperf_min_queries(p / 100.0), min_samples_for_percentile(p / 100.0, confidence))
              for p in percentiles}
    pc = clock
    lat: List[float] = []
    widths: Dict[float, Optional[float]] = {}
    next_check, checks, reason = max(16, min_runs, max(floors.values())), 0, "max_s"
    start = pc()
    next_report = start + PROGRESS_EVERY_S
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        lat.append((t1 - t0) * 1e3)
        el = t1 - start
        if el >= max_s:
            break
        if len(lat) >= max_runs:
            reason = "max_runs"
            break
        if len(lat) >= next_check and el >= min_s:
            checks += 1
            widths = {p: percentile_rel_width(lat, p, confidence) for p in percentiles}
            if all(w is not None and w <= rel_width for w in widths.values()):
                reason = "ci_width"
                break
            next_check = len(lat) + max(16, len(lat) // 10)
        if progress is not None and t1 >= next_report:
            progress(len(lat), el, None)
            next_report = t1 + PROGRESS_EVERY_S
    if reason != "ci_width":
        widths = {p: percentile_rel_width(lat, p, confidence) for p in percentiles}
    return lat, el, {"stop_reason": reason, "runs": len(lat), "seconds": round(el, 4), "checks": checks,
                     "adaptive": True, "percentiles": list(percentiles), "rel_width": rel_width,
                     "confidence": confidence, "floors": {"p%g" % p: floors[p] for p in percentiles},
                     "rel_widths": {"p%g" % p: finite(w, 6) for p, w in widths.items()}}


def decide_loop(fn: Callable[[], None], min_runs: int, min_s: float, max_s: float, gated: Sequence[sequential.Gated],
                confidence: float, looks: int, growth: float, series: Callable[[], Dict[str, List[float]]],
                clock: Callable[[], float] = time.perf_counter, max_runs: int = 10 ** 9,
                progress: Optional[Progress] = None) -> Tuple[List[float], float, Json]:
    """Run fn until every gated statistic's interval lies on one side of its budget at a scheduled look
    (agents/sequential.py), or the last look, max_runs or max_s (the final look) is reached; (latencies ms,
    wall s, stopping). series() gives the backend's other sample series (GGUF: ttft_ms, itl_ms, ...)."""
    c = sequential.look_confidence(confidence, looks)
    planned = sequential.schedule(sequential.first_look(gated, confidence, looks, min_runs), looks, growth, max_runs)
    pc = clock
    lat: List[float] = []
    taken: List[int] = []
    last: List[Json] = []
    k, reason = 0, "max_s"
    start = pc()
    next_report = start + PROGRESS_EVERY_S
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        lat.append(round((t1 - t0) * 1e3, sequential.SAMPLE_DECIMALS))  # as the record holds it
        el = t1 - start
        end = "max_s" if el >= max_s else "max_runs" if len(lat) >= max_runs else None
        if end is not None or (k < len(planned) and len(lat) >= planned[k] and el >= min_s):
            data = dict(series())
            data["latency_ms"] = lat
            last = sequential.judge(data, gated, c)
            taken.append(len(lat))
            while k < len(planned) and planned[k] <= len(lat):  # a look delayed by min_s replaces those passed
                k += 1
            if sequential.decided(last):
                reason = "decided"
                break
            if end is not None:
                reason = end
                break
            if k >= len(planned):
                reason = "undecided_at_last_look"
                break
        if progress is not None and t1 >= next_report:
            progress(len(lat), el, None)
            next_report = t1 + PROGRESS_EVERY_S
    return lat, el, sequential.stopping_record(gated, confidence, looks, growth, planned, taken, last, reason,
                                               len(lat), el)
