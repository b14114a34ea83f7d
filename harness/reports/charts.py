"""Inline SVG charts for the HTML report: latency distribution and memory against budget, baseline and RAM.

Numbers only go into coordinates; every label passes through html.escape.
"""

from __future__ import annotations

from html import escape

import numpy as np

from harness.gate.model import Cell
from harness.gate.rules import fmt
from harness.gate.stats import FloatArray
from harness.gate.stats import sorted_quantile as q

W, PAD_L, PAD_R = 560, 44, 12


def _x(v: float, lo: float, hi: float) -> float:
    return PAD_L + (W - PAD_L - PAD_R) * (v - lo) / (hi - lo if hi > lo else 1.0)


def _hist(sorted_x: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts per bin of a sorted array, values outside the edges counted in the end bins."""
    idx = np.searchsorted(sorted_x, edges[1:-1], side="right")
    return np.diff(np.concatenate([[0], idx, [len(sorted_x)]])).astype(np.float64)


def _budget(cell: Cell, metric: str) -> float | None:
    vals = [r.threshold for r in cell.rules if r.kind == "budget" and r.metric == metric and r.threshold is not None]
    return min(vals) if vals else None


def latency_svg(cell: Cell, bins: int = 40) -> str:
    """Histogram of warm latency (this run filled, baseline outlined) with p50/p95 and the p95 budget."""
    cur = cell.latency if cell.latency is not None else np.empty(0)
    ref = cell.baseline_latency if cell.baseline_latency is not None else np.empty(0)
    if len(cur) == 0:
        return ""
    lo = min(q(cur, 0.001), q(ref, 0.001)) if len(ref) else q(cur, 0.001)
    hi = max(q(cur, 0.99), q(ref, 0.99)) if len(ref) else q(cur, 0.99)
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo)
    budget = _budget(cell, "latency_ms_p95")
    if budget is not None and budget < hi * 1.6:
        hi = max(hi, budget * 1.03)
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    fc = _hist(cur, edges) / len(cur)
    fb = _hist(ref, edges) / len(ref) if len(ref) else np.zeros(bins)
    top = float(max(fc.max(), fb.max(), 1e-9))
    h, y0 = 170, 140
    parts = [f'<svg class="chart" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" '
             f'aria-label="latency distribution"><title>Warm latency distribution (ms)</title>']
    parts.append(f'<line x1="{PAD_L}" y1="{y0}" x2="{W - PAD_R}" y2="{y0}" class="axis"/>')
    bw = (W - PAD_L - PAD_R) / bins
    lefts: list[float] = (PAD_L + np.arange(bins) * bw).tolist()
    tops: list[float] = (y0 - 120.0 * fc / top).tolist()
    # one path of bars (not 40 rects): a smaller file and DOM for a thousand cells
    bars = "".join(f"M{x:.1f} {y0}V{t:.1f}h{bw - 1:.1f}V{y0}z" for x, t in zip(lefts, tops) if t < y0)
    parts.append(f'<path d="{bars}" class="bar"/>')
    if len(ref):
        ys: list[float] = (y0 - 120.0 * fb / top).tolist()
        pts = " ".join(f"{x:.1f},{y:.1f} {x + bw:.1f},{y:.1f}" for x, y in zip(lefts, ys))
        parts.append(f'<polyline points="{pts}" class="base"/>')
    marks: list[tuple[float, str, str]] = [(q(cur, 0.5), "p50", "mark"), (q(cur, 0.95), "p95", "mark")]
    if len(ref):
        marks.append((q(ref, 0.95), "base p95", "mark-base"))
    if budget is not None:
        marks.append((budget, "budget", "mark-budget"))
    for i, (v, label, cls) in enumerate(marks):
        if lo <= v <= hi:
            x = _x(v, lo, hi)
            parts.append(f'<line x1="{x:.1f}" y1="12" x2="{x:.1f}" y2="{y0}" class="{cls}"/>'
                         f'<text x="{x + 3:.1f}" y="{12 + 11 * i}" class="lbl">{escape(label)} {escape(fmt(v))}</text>')
    for i, t in enumerate(np.linspace(lo, hi, 5).tolist()):
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text x="{_x(t, lo, hi):.1f}" y="{y0 + 14}" class="tick" text-anchor="{anchor}">'
                     f'{escape(fmt(t))}</text>')
    legend = "bars: this run" + (", line: baseline" if len(ref) else "")
    parts.append(f'<text x="{PAD_L}" y="{h - 2}" class="tick">{legend}</text>'
                 f'<text x="{W - PAD_R}" y="{h - 2}" class="tick" text-anchor="end">ms (n={len(cur)}'
                 f'{", baseline n=" + str(len(ref)) if len(ref) else ""}; outside the axis: end bins)</text>')
    parts.append("</svg>")
    return "".join(parts)


def memory_svg(cell: Cell) -> str:
    """Peak resident memory of this run and the baseline against the memory budget and the device RAM."""
    rec = cell.record
    if rec is None:
        return ""
    peak = rec.value("peak_rss_mib")
    oom = [r for r in cell.rules if r.error_kind == "oom" and r.metric == "peak_rss_mib"]
    if peak is None and oom:
        peak = oom[0].value
    if peak is None:
        return ""
    base = cell.baseline_record.value("peak_rss_mib") if cell.baseline_record else None
    budget = _budget(cell, "peak_rss_mib")
    ram = rec.device.ram_mib
    hi = max(v for v in (peak, base, budget, float(ram) if ram else None) if v is not None) * 1.05
    rows: list[tuple[str, float, str]] = [("this run", peak, "bar-oom" if oom else "bar")]
    if base is not None:
        rows.append(("baseline", base, "bar-base"))
    h = 30 + 26 * len(rows) + 22
    parts = [f'<svg class="chart" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" '
             f'aria-label="memory"><title>Peak resident memory (MiB)</title>']
    lx = 84
    span = W - lx - PAD_R
    for i, (label, v, cls) in enumerate(rows):
        y = 22 + 26 * i
        parts.append(f'<text x="{lx - 6}" y="{y + 13}" class="lbl" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{lx}" y="{y}" width="{span * v / hi:.1f}" height="18" class="{cls}"/>'
                     f'<text x="{lx + span * v / hi + 4:.1f}" y="{y + 13}" class="lbl">{escape(fmt(v, "MiB"))}</text>')
    bottom = 22 + 26 * len(rows)
    lines: list[tuple[float | None, str, str]] = [(budget, "budget", "mark-budget"),
                                                  (float(ram) if ram else None, "device RAM", "mark-base")]
    for line_at, label, cls in lines:
        if line_at is not None:
            x = lx + span * line_at / hi
            anchor = "end" if x > W - 90 else "middle"
            parts.append(f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{bottom}" class="{cls}"/>'
                         f'<text x="{x:.1f}" y="{bottom + 14}" class="tick" text-anchor="{anchor}">'
                         f'{escape(label)} {escape(fmt(line_at, "MiB"))}</text>')
    parts.append("</svg>")
    return "".join(parts)
