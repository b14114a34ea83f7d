"""Charts beyond one run's samples: thermal and CPU-frequency traces, trends across runs (from the history
store's Trend.to_dict()), and the distill sweep's Pareto front.
"""

from __future__ import annotations

from typing import Any

from harness.records import Record
from harness.reports.escape import h
from harness.reports.keyfigures import num
from harness.reports.svg import Scale, chart, hmark, polyline, spans_decades, x_scale, y_scale

SLOW_FRACTION = 0.8  # a sample whose fastest CPU runs below this share of its maximum is shaded as throttled


def _trace(rec: Record) -> list[dict[str, Any]]:
    th = rec.thermal or {}
    tr = th.get("trace") if isinstance(th, dict) else None
    return [s for s in tr or [] if isinstance(s, dict) and isinstance(s.get("t"), (int, float))]


def _slow_spans(trace: list[dict[str, Any]], hw_max: dict[str, float]) -> list[tuple[float, float]]:
    """(t0, t1) spans where the fastest policy ran below SLOW_FRACTION of its hardware maximum."""
    spans: list[tuple[float, float]] = []
    for a, b in zip(trace, trace[1:] + [trace[-1]]):
        cur = a.get("cur_khz") or {}
        ratios = [float(v) / hw_max[k] for k, v in cur.items() if hw_max.get(k)]
        if ratios and max(ratios) < SLOW_FRACTION:
            t0, t1 = float(a["t"]), float(b["t"])
            if spans and abs(spans[-1][1] - t0) < 1e-9:
                spans[-1] = (spans[-1][0], t1)
            else:
                spans.append((t0, t1))
    return spans


def thermal_svg(rec: Record) -> str:
    """Hottest CPU zone (deg C) and fastest CPU frequency (MHz) over the run, throttled spans shaded."""
    trace = _trace(rec)
    if len(trace) < 2:
        return ""
    th = rec.thermal or {}
    hw_max = {str(p.get("policy")): float(p.get("hw_max_khz") or p.get("max_khz") or 0)
              for p in th.get("cpufreq") or [] if isinstance(p, dict)}
    t0 = float(trace[0]["t"])
    ts = [float(s["t"]) - t0 for s in trace]
    x = x_scale(0.0, max(ts[-1], 1e-3), False)
    x.lo = 0.0
    spans = [(a - t0, b - t0) for a, b in _slow_spans(trace, hw_max)]
    out = []
    temps = [(t, float(s["temp_c"])) for t, s in zip(ts, trace) if isinstance(s.get("temp_c"), (int, float))]
    reasons = "; ".join(str(r) for r in th.get("throttle_reasons") or [])
    shade_note = (f" Shaded: the fastest CPU below {SLOW_FRACTION:.0%} of its maximum frequency."
                  if spans else " No sample had the fastest CPU below "
                                f"{SLOW_FRACTION:.0%} of its maximum.")
    if temps:
        lo, hi = min(v for _, v in temps), max(v for _, v in temps)
        y = y_scale(max(lo - 5, 0.0), hi + 5)
        body = [_shade(x, y, spans), polyline([x(t) for t, _ in temps], [y(v) for _, v in temps], "temp")]
        idle = th.get("idle_c")
        if isinstance(idle, (int, float)) and y.lo <= idle <= y.hi:
            body.append(hmark(x, y, float(idle), "idle", "mark-base", f"idle {num(float(idle))} °C"))
        out.append(chart("thermal", x, y, "time since sampling started (s)", "hottest CPU zone (°C)", body,
                         f"CPU temperature sampled every {num(float(th.get('poll_s') or 1))} s by the controller."
                         + shade_note + (f" Throttling found: {reasons}." if reasons else "")))
    freqs = [(t, max(float(v) for v in (s.get("cur_khz") or {}).values()) / 1000.0)
             for t, s in zip(ts, trace) if s.get("cur_khz")]
    if freqs:
        hi = max([v for _, v in freqs] + [v / 1000.0 for v in hw_max.values()])
        y = y_scale(0.0, hi * 1.1)
        body = [_shade(x, y, spans), polyline([x(t) for t, _ in freqs], [y(v) for _, v in freqs], "freq")]
        if hw_max:
            m = max(hw_max.values()) / 1000.0
            body.append(hmark(x, y, m, "hw-max", "mark-base", f"hardware max {num(m)} MHz"))
        out.append(chart("cpufreq", x, y, "time since sampling started (s)", "fastest CPU frequency (MHz)", body,
                         "Current frequency of the fastest CPU policy in each sample." + shade_note))
    return "".join(out)


def _shade(x: Scale, y: Scale, spans: list[tuple[float, float]]) -> str:
    return "".join(f'<rect x="{x(a):.1f}" y="{y.b:.1f}" width="{max(x(b) - x(a), 1.0):.1f}" '
                   f'height="{y.a - y.b:.1f}" class="throttled" data-span="throttled"/>' for a, b in spans)


def pareto_svg(sweep: dict[str, Any]) -> str:
    """The distill sweep (sweep.json, edgefarm.distill.sweep/1): quality vs memory, the Pareto front highlighted."""
    xm, ym = str(sweep.get("x_metric") or "bytes"), str(sweep.get("y_metric") or "spearman_vs_teacher")
    pts = [p for p in sweep.get("points") or [] if isinstance(p, dict)
           and isinstance(p.get(xm), (int, float)) and isinstance(p.get(ym), (int, float))]
    if not pts:
        return ""
    scale_x = 2**20 if xm == "bytes" else 1.0
    xunit = {"bytes": "artifact size (MiB)", "peak_rss_mib": "peak resident memory on the device (MiB)"}.get(
        xm, f"{xm.replace('_', ' ')} (MiB)")
    xs = [float(p[xm]) / scale_x for p in pts]
    ys = [float(p[ym]) for p in pts]
    log = spans_decades(min(xs), max(xs))
    x = x_scale(min(xs), max(xs), log)
    pad = (max(ys) - min(ys)) * 0.1 or 0.01
    y = y_scale(min(ys) - pad, max(ys) + pad)
    front = set(map(str, sweep.get("pareto") or []))
    on = sorted((a, b) for a, b, p in zip(xs, ys, pts) if str(p.get("name")) in front)
    body = []
    if len(on) > 1:
        sx, sy = [x(on[0][0])], [y(on[0][1])]
        for a, b in on[1:]:  # a staircase: quality only rises as memory grows along the front
            sx += [x(a), x(a)]
            sy += [sy[-1], y(b)]
        body.append(polyline(sx, sy, "front"))
    for a, b, p in zip(xs, ys, pts):
        is_front = str(p.get("name")) in front
        body.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="{5 if is_front else 3.5}" '
                    f'class="{"pt-front" if is_front else "pt"}" data-front="{int(is_front)}">'
                    f'<title>{h(p.get("name"))}: {num(a)} MiB, {num(b)}</title></circle>')
        if is_front:
            body.append(f'<text x="{x(a) + 6:.1f}" y="{y(b) - 5:.1f}" class="lbl">{h(p.get("quant"))}</text>')
    cap = (f"Distill sweep: {len(pts)} students x quantizations; quality ({ym.replace('_', ' ')}) against "
           f"{xunit.split(' (')[0]}. Larger dots on the staircase are the Pareto front ({len(on)} points): no other "
           "point is both smaller and better.")
    return chart("pareto", x, y, xunit + (", log scale" if log else ""), ym.replace("_", " "), body, cap)


def trend_svg(trend: dict[str, Any]) -> str:
    """One metric across runs (harness.history.trend.Trend.to_dict()): values with intervals, change points."""
    pts = [p for p in trend.get("points") or [] if isinstance(p, dict) and isinstance(p.get("value"), (int, float))]
    if len(pts) < 2:
        return ""
    metric, unit = str(trend.get("metric") or "value"), str(trend.get("unit") or "")
    vals = [float(p["value"]) for p in pts]
    cis = [p["ci"] if isinstance(p.get("ci"), list) and len(p["ci"]) == 2 else None for p in pts]
    lows = [float(c[0]) for c in cis if c is not None and all(isinstance(v, (int, float)) for v in c)]
    highs = [float(c[1]) for c in cis if c is not None and all(isinstance(v, (int, float)) for v in c)]
    lo, hi = min(vals + lows), max(vals + highs)
    x = Scale(0.5, len(pts) + 0.5, 58, 520 - 14, integer=True)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    y = y_scale(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)
    body = []
    for i, c in enumerate(cis, 1):
        if c is not None and all(isinstance(v, (int, float)) for v in c):
            body.append(f'<line x1="{x(i):.1f}" y1="{y(float(c[0])):.1f}" x2="{x(i):.1f}" y2="{y(float(c[1])):.1f}" '
                        'class="ci"/>')
    body.append(polyline([x(i) for i in range(1, len(pts) + 1)], [y(v) for v in vals], "trend"))
    body.extend(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" class="dot"><title>{h(p.get("run_id"))}: '
                f'{num(v)} {h(unit)}</title></circle>' for i, (v, p) in enumerate(zip(vals, pts), 1))
    cps = [c for c in trend.get("change_points") or [] if isinstance(c, dict) and isinstance(c.get("index"), int)]
    for c in cps:
        at = x(c["index"] + 0.5)  # the level changed between run index-1 and index (0-based): between the dots
        pct = c.get("change_pct")
        label = f"{c.get('kind', 'change')} {pct:+.1f}%" if isinstance(pct, (int, float)) else "change"
        body.append(f'<g class="mark-g" data-mark="change-point" data-value="{c["index"]}"><line x1="{at:.1f}" '
                    f'y1="{y.b:.1f}" x2="{at:.1f}" y2="{y.a:.1f}" class="mark-budget"/><text x="{at + 3:.1f}" '
                    f'y="{y.b + 10:.1f}" class="lbl">{h(label)}</text></g>')
    first, last = pts[0].get("started_at", "?"), pts[-1].get("started_at", "?")
    cap = (f"{metric} of {trend.get('device')} x {trend.get('artifact')} over {len(pts)} runs "
           f"({first} to {last}); bars: each run's confidence interval where it has one; red lines: change points "
           f"found by the history store (E-Divisive means), {len(cps)} here.")
    return chart("trend", x, y, "run (oldest first)", f"{metric.replace('_', ' ')} ({unit or 'value'})", body, cap)
