"""The report's charts of one cell: latency CDF, memory timeline, LLM inter-token latency and tokens/s.

Each chart marks only what the record claims: a percentile line is drawn where the record has a value for
that percentile (a p95 the agent declined to claim for too few samples is not drawn), a budget where a rule
judged one. Axes are scaled to the data (the device's RAM is a reference line only when it is on the scale).
"""

from __future__ import annotations

import math

import numpy as np

from harness.gate.model import Cell
from harness.gate.stats import FloatArray
from harness.records import Record
from harness.reports.escape import h as _h
from harness.reports.keyfigures import num
from harness.reports.svg import H, Scale, chart, hmark, polyline, spans_decades, vmark, x_scale, y_scale

PCTS = (50, 95, 99)
MAX_POINTS = 120  # per curve: a 2000-sample CDF looks the same from 120 quantiles, at a tenth of the bytes


def budget(cell: Cell, metric: str) -> float | None:
    """The tightest budget a rule judged on this metric (None where no budget rule exists)."""
    vals = [r.threshold for r in cell.rules if r.kind == "budget" and r.metric == metric and r.threshold is not None]
    return min(vals) if vals else None


def claimed(rec: Record | None, series: str) -> list[tuple[int, float]]:
    """(percentile, value) of each of PCTS that the record claims (has a value for)."""
    if rec is None:
        return []
    out = []
    for p in PCTS:
        m = rec.metrics.get(f"{series}_p{p}")
        if m is not None and m.value is not None and math.isfinite(m.value):
            out.append((p, m.value))
    return out


def _ecdf(x: Scale, y: Scale, s: FloatArray, cls: str) -> str:
    n = len(s)
    if n <= MAX_POINTS:  # exact steps
        xs = np.repeat(s, 2)
        ys = np.concatenate([[0.0], np.repeat(np.arange(1, n) / n, 2), [1.0]])
    else:
        idx = np.unique(np.round(np.linspace(0, n - 1, MAX_POINTS)).astype(np.int64))
        xs, ys = s[idx], (idx + 1) / n
    px = (x.a + (x.b - x.a) * (np.log10(np.maximum(xs, 1e-12)) - np.log10(x.lo)) / (np.log10(x.hi) - np.log10(x.lo))
          if x.log else x.a + (x.b - x.a) * (xs - x.lo) / (x.hi - x.lo))
    py = y.a + (y.b - y.a) * ys  # y runs 0..100 %: ys (0..1) is the share of the axis
    return polyline(px, py, cls)


def cdf_svg(cell: Cell, series: str = "latency_ms", title: str = "warm latency") -> str:
    """Empirical CDF of a latency series, this run and the baseline overlaid; log axis where data span decades."""
    rec, base = cell.record, cell.baseline_record
    if series == "latency_ms":
        cur, ref = cell.latency, cell.baseline_latency
    else:
        cur = np.sort(np.asarray(rec.samples.get(series) or [], dtype=np.float64)) if rec else None
        ref = np.sort(np.asarray(base.samples.get(series) or [], dtype=np.float64)) if base else None
    if cur is None or len(cur) == 0 or rec is None:
        return ""
    cur = cur[np.isfinite(cur)]
    ref = ref[np.isfinite(ref)] if ref is not None and len(ref) else None
    lo, hi = float(cur[0]), float(cur[-1])
    if ref is not None and len(ref):
        lo, hi = min(lo, float(ref[0])), max(hi, float(ref[-1]))
    marks: list[tuple[float, str, str, str]] = []  # (value, data-mark, class, label)
    for p, v in claimed(rec, series):
        marks.append((v, f"p{p}", "mark", f"p{p} {num(v)} ms"))
    for p, v in claimed(base, series):
        if p == 95:
            marks.append((v, "base-p95", "mark-base", f"baseline p95 {num(v)} ms"))
    off = ""
    for p in PCTS:
        b = budget(cell, f"{series}_p{p}")
        if b is None:
            continue
        if b <= hi * 3:
            marks.append((b, f"budget-p{p}", "mark-budget", f"budget p{p} ≤ {num(b)} ms"))
            hi = max(hi, b)
        else:
            off += f" The p{p} budget, {num(b)} ms, is off this axis (≥ 3x the slowest sample)."
    # log from a 4x span on: a long tail would otherwise squeeze the bulk of the runs into a few pixels
    log = lo > 0 and hi / lo >= 4 or spans_decades(lo, hi)
    x, y = x_scale(lo, hi, log), y_scale(0.0, 100.0)
    body = []
    if ref is not None and len(ref):
        body.append(_ecdf(x, y, ref, "cdf-base"))
    body.append(_ecdf(x, y, cur, "cdf"))
    for i, (v, name, cls, label) in enumerate(sorted(marks)):
        body.append(vmark(x, y, v, name, cls, label, row=i % 4))
    n_ref = f", baseline n={len(ref)}" if ref is not None and len(ref) else ""
    unclaimed = [p for p in PCTS if p not in dict(claimed(rec, series))]
    cap = (f"Empirical CDF of {title} (share of runs at or below each latency), n={len(cur)}{n_ref}; "
           f"{'log' if log else 'linear'} latency axis. Lines mark the percentiles this record claims"
           + (f" (not claimed here: {', '.join(f'p{p}' for p in unclaimed)})" if unclaimed else "")
           + " and the budgets the gate judged." + off)
    legend = [("cdf", "this run")] + ([("cdf-base", "baseline")] if n_ref else [])
    return chart(f"cdf-{series}", x, y, f"{title} (ms, {'log' if log else 'linear'} scale)",
                 "runs at or below x (%)", body, cap, legend=legend)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


_PHASE_CLS = {"load": "ph-load", "first": "ph-first", "warmup": "ph-warm", "measure": "ph-measure"}


def memory_svg(cell: Cell) -> str:
    """Resident-memory high-water marks over the run's phases, against budget and device RAM when on scale."""
    rec = cell.record
    if rec is None:
        return ""
    load, infer, peak = (_finite(rec.value(k)) for k in ("peak_rss_load_mib", "peak_rss_inference_mib",
                                                         "peak_rss_mib"))
    oom = rec.status == "oom"
    if peak is None and load is None and infer is None:
        return ""
    top = max(v for v in (peak, load, infer) if v is not None)
    base = _finite(cell.baseline_record.value("peak_rss_mib")) if cell.baseline_record else None
    bud = budget(cell, "peak_rss_mib")
    ram = float(rec.device.ram_mib) if rec.device.ram_mib else None
    phases = [p for p in rec.phases if isinstance(p.get("t_start"), (int, float))
              and isinstance(p.get("t_end"), (int, float)) and p["t_end"] >= p["t_start"]]
    refs = [(v, n) for v, n in ((bud, "budget"), (ram, "device RAM"), (base, "baseline peak")) if v is not None]
    ymax = max([top] + [v for v, _ in refs if v <= top * 2.5]) * 1.15
    x: Scale
    if phases:
        t0 = float(phases[0]["t_start"])
        t1 = max(float(p["t_end"]) for p in phases)
        x = x_scale(0.0, max(t1 - t0, 1e-3), False)
        x.lo = 0.0
    else:
        t0, x = 0.0, x_scale(0.0, 1.0, False)
    y = y_scale(0.0, ymax)
    body: list[str] = []
    if phases:
        for p in phases:
            a, b = x(float(p["t_start"]) - t0), x(float(p["t_end"]) - t0)
            name = str(p.get("name"))
            level = load if name == "load" else (infer if infer is not None else peak)
            body.append(f'<rect x="{a:.1f}" y="{y.b:.1f}" width="{max(b - a, 0.5):.1f}" height="{y.a - y.b:.1f}" '
                        f'class="phase {_PHASE_CLS.get(name, "ph-other")}" data-phase="{_h(name)}">'
                        f"<title>{_h(name)}: {float(p['t_end']) - float(p['t_start']):.3g} s</title></rect>"
                        + (f'<text x="{a + 2:.1f}" y="{y.a - 4:.1f}" class="tick">{_h(name)}</text>'
                           if b - a >= 6 * len(name) + 4 else ""))  # a label only where it fits its band
            if level is not None:
                body.append(f'<line x1="{a:.1f}" y1="{y(level):.1f}" x2="{b:.1f}" y2="{y(level):.1f}" class="hwm"/>')
    else:
        body.append(f'<line x1="{x.a:.1f}" y1="{y(top):.1f}" x2="{x.b:.1f}" y2="{y(top):.1f}" class="hwm"/>')
    at = x(0.0)
    if phases and top == load:
        at = x((float(phases[0]["t_end"]) + float(phases[0]["t_start"])) / 2 - t0)
    elif phases:
        at = x((float(phases[-1]["t_start"]) + float(phases[-1]["t_end"])) / 2 - t0)
    body.append(f'<g class="mark-g" data-mark="peak" data-value="{top:.6g}"><circle cx="{at:.1f}" cy="{y(top):.1f}" '
                f'r="4" class="{"dot-oom" if oom else "dot"}"/><text x="{at + 6:.1f}" y="{y(top) + 14:.1f}" '
                f'class="lbl">{"peak at OOM " if oom else "peak "}{num(top)} MiB</text></g>')
    off = []
    for v, name in refs:
        cls = {"budget": "mark-budget", "device RAM": "mark-ram", "baseline peak": "mark-base"}[name]
        if v <= ymax:
            body.append(hmark(x, y, v, name.replace(" ", "-"), cls, f"{name} {num(v)} MiB"))
        else:
            off.append(f"{name} {num(v)} MiB ({v / top:.0f}x the peak)")
    cap = ("Resident memory high-water mark (VmHWM) per phase: the load phase's peak, then the inference "
           "phases' peak (reset after load where the device allows)"
           + ("" if phases else "; no phase timing was recorded") + ". Axis scaled to the data"
           + (f"; off the axis: {'; '.join(off)}" if off else "") + ".")
    return chart("memory", x, y, "time since load started (s)" if phases else "run (no phase times recorded)",
                 "resident memory (MiB)", body, cap)


def rate_svg(cell: Cell) -> str:
    """LLM tokens/s per repetition: prefill and decode, with the record's mean where it claims one."""
    rec = cell.record
    if rec is None:
        return ""
    series = [(k, rec.samples.get(k) or []) for k in ("prefill_tokens_per_s", "decode_tokens_per_s")]
    series = [(k, v) for k, v in series if v]
    if not series:
        return ""
    reps = max(len(v) for _, v in series)
    top = max(max(v) for _, v in series)
    x = Scale(0.5, max(reps, 2) + 0.5, 58, 520 - 14, integer=True)  # two ticks even for one repetition
    y = y_scale(0.0, top * 1.15)
    body = []
    for k, v in series:
        cls = "rate-pp" if k.startswith("prefill") else "rate-tg"
        xs = [x(i + 1) for i in range(len(v))]
        ys = [y(t) for t in v]
        body.append(polyline(xs, ys, cls))
        body.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" class="{cls}-dot"/>' for a, b in zip(xs, ys))
        m = rec.value(k)
        if m is not None:
            body.append(hmark(x, y, m, f"mean-{k}", "mark", f"{'prefill' if cls == 'rate-pp' else 'decode'} "
                                                         f"mean {num(m)} tok/s"))
    cap = (f"Tokens per second in each of {reps} repetitions: prompt processing (prefill, llama-bench's pp) and "
           "generation (decode, tg). A drift across repetitions suggests throttling or contention.")
    return chart("tokens-per-s", x, y, "repetition", "tokens per second (tok/s)", body, cap,
                 legend=[("rate-pp", "prefill"), ("rate-tg", "decode")], legend_at="top-left")


def cell_charts(cell: Cell) -> str:
    """Every chart that has data for this cell."""
    from harness.reports.charts_device import thermal_svg

    rec = cell.record
    if rec is None:
        return ""
    parts = []
    if rec.samples.get("latency_ms") and not rec.samples.get("itl_ms"):  # an LLM: one request per repetition
        parts.append(cdf_svg(cell))
    if rec.samples.get("itl_ms"):
        parts.append(cdf_svg(cell, "itl_ms", "inter-token latency (decode)"))
        parts.append(rate_svg(cell))
    parts.append(memory_svg(cell))
    parts.append(thermal_svg(rec))
    from harness.history.trend_chart import cell_trends  # across runs, when a results store is configured
    parts.append(cell_trends(cell))
    return "".join(parts)


__all__ = ["H", "budget", "cdf_svg", "cell_charts", "claimed", "memory_svg", "rate_svg"]
