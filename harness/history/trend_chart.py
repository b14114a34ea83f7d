"""The HTML report's trend charts: each gated metric of a cell across the runs in the store, change points marked.

The data comes from here (harness.history.trend), the drawing from the report's trend_svg (charts_device.py).
Only when a store is configured (EDGEFARM_DB); a store that cannot be read gives a one-line note in the
report, never a failed report.
"""

from __future__ import annotations

from harness.errors import UserError
from harness.gate.model import Cell
from harness.history.db import configured_url
from harness.history.store import Store
from harness.history.trend import trend
from harness.reports.charts_device import trend_svg
from harness.reports.escape import h


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
                    parts.append(trend_svg(trend(store, cell.device, cell.artifact, m).to_dict()))
                except UserError as e:
                    if "Otava" in str(e):
                        raise
    except UserError as e:
        return f'<p class="note">Trends not shown: {h(e)}</p>'
    return "".join(parts)
