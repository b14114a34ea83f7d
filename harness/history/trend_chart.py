"""The HTML report's trend charts: each gated metric of a cell across the runs in the store, change points marked.

Drawn with the report's own SVG frame (harness/reports/svg.py). Only when a store is configured (EDGEFARM_DB);
a store that cannot be read gives a one-line note in the report, never a failed report.
"""

from __future__ import annotations

from harness.errors import UserError
from harness.gate.model import Cell
from harness.history.db import configured_url
from harness.history.store import Store
from harness.history.trend import Trend, trend
from harness.reports.escape import h
from harness.reports.svg import chart, polyline, vmark, x_scale, y_scale

MAX_POINTS = 365  # a year of nights; older points are left to `edgefarm history trend`


def trend_svg(t: Trend) -> str:
    """One metric's series by run (oldest left), a vertical mark where each change point starts."""
    pts = t.points[-MAX_POINTS:]
    if len(pts) < 2:
        return ""
    offset = len(t.points) - len(pts)
    xs = [float(i) for i in range(len(pts))]
    ys = [p.value for p in pts]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    x = x_scale(0.0, float(len(pts) - 1), False)
    y = y_scale(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)
    body = [polyline([x(v) for v in xs], [y(v) for v in ys], "rate-tg")]  # the report's line style
    for c in t.change_points:
        if c.index >= offset:
            body.append(vmark(x, y, float(c.index - offset), f"change-{c.index}", "mark",
                              f"{c.kind} {c.change_pct:+.1f}%"))
    cap = (f"{t.metric} of {t.artifact} on {t.device} over the last {len(pts)} recorded runs (first "
           f"{pts[0].started_at[:10]}, last {pts[-1].started_at[:10]}); {len(t.change_points)} change point(s) "
           "(Apache Otava, p < 0.001) marked where the new level starts.")
    return chart(f"trend-{t.metric}", x, y, "run (oldest to newest)", f"{t.metric} ({t.unit or 'no unit'})",
                 body, cap)


def cell_trends(cell: Cell) -> str:
    """Trend charts for every metric a rule of this cell gated on; empty without a store."""
    url = configured_url()
    if url is None:
        return ""
    metrics = sorted({r.metric for r in cell.rules if r.metric})
    if not metrics:
        return ""
    parts: list[str] = []
    try:
        with Store(url) as store:
            for m in metrics:
                try:
                    parts.append(trend_svg(trend(store, cell.device, cell.artifact, m)))
                except UserError as e:
                    if "Otava" in str(e):
                        raise
    except UserError as e:
        return f'<p class="note">Trends not shown: {h(e)}</p>'
    return "".join(parts)
