"""Trends: one metric of one device x artifact across runs, and where its level changed.

Change points come from Apache Otava (formerly Hunter, MongoDB's E-Divisive means with a Student's t-test
significance step; Fleming et al. 2023): see the README's "History and trends" for why Otava and not
signal-processing-algorithms. Only `otava.analysis` is used (numpy + scipy); the package is installed without
its dependencies because it pins numpy==2.2.* and pulls BigQuery/Slack clients we never import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.history.store import Point, Store
from harness.metrics import METRICS

# Otava's defaults for nightly series: a change needs p < 0.001 (t-test between the segments) to count.
MAX_PVALUE = 0.001
WINDOW = 50  # Otava's sliding window: long enough to see a level, short enough to find several changes a year
# A level needs this many runs on each side: one bad night at the end of a series is an outlier until the next
# night confirms it (the gate judges that night against its baseline anyway).
MIN_SEGMENT = 2


@dataclass(frozen=True)
class ChangePoint:
    """The series' level changed between point index-1 and index."""

    index: int
    run_id: str
    started_at: str
    mean_before: float
    mean_after: float
    pvalue: float
    change_pct: float  # (after - before) / before * 100
    kind: str  # regression | improvement | change (metric without a direction)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "run_id": self.run_id, "started_at": self.started_at,
                "mean_before": self.mean_before, "mean_after": self.mean_after, "pvalue": self.pvalue,
                "change_pct": self.change_pct, "kind": self.kind}


@dataclass(frozen=True)
class Trend:
    device: str
    artifact: str
    metric: str
    unit: str
    points: list[Point]
    change_points: list[ChangePoint]

    def to_dict(self) -> dict[str, Any]:
        """The data a report's trend chart draws: points (time, value, CI) and the change points marked."""
        return {"device": self.device, "artifact": self.artifact, "metric": self.metric, "unit": self.unit,
                "points": [{"run_id": p.run_id, "started_at": p.started_at, "value": p.value,
                            "ci": None if p.ci_low is None or p.ci_high is None else [p.ci_low, p.ci_high],
                            "n": p.n, "branch": p.branch, "commit": p.commit, "artifact_sha256": p.artifact_sha256}
                           for p in self.points],
                "change_points": [c.to_dict() for c in self.change_points]}


def change_points(values: list[float], *, max_pvalue: float = MAX_PVALUE, window: int = WINDOW) -> list[Any]:
    """Otava's change points of a series (objects with .index and .stats), oldest first."""
    if len(values) < 4:
        return []  # nothing can be significant with fewer than two points a side
    try:
        from otava.analysis import compute_change_points
    except ImportError:
        raise UserError("change-point detection needs Apache Otava",
                        hint="pip install --no-deps apache-otava scipy (ci/setup.sh does)") from None
    cps, _weak = compute_change_points(list(values), window_len=window, max_pvalue=max_pvalue)
    cps = sorted(cps, key=lambda c: int(c.index))
    bounds = [0, *(int(c.index) for c in cps), len(values)]
    return [c for k, c in enumerate(cps) if bounds[k + 1] - bounds[k] >= MIN_SEGMENT
            and bounds[k + 2] - bounds[k + 1] >= MIN_SEGMENT]


def _kind(metric: str, before: float, after: float) -> str:
    d = METRICS.get(metric)
    if d is None or after == before:
        return "change"
    worse = after < before if d.better == "higher" else after > before
    return "regression" if worse else "improvement"


def trend(store: Store, device: str, artifact: str, metric: str, *, branch: str | None = None,
          since: str | None = None, max_pvalue: float = MAX_PVALUE) -> Trend:
    """The series and its change points. A series with no points is a UserError naming what was asked."""
    points = store.series(device, artifact, metric, branch=branch, since=since)
    if not points:
        known = sorted({m for d, a, m in store.cells() if d == device and a == artifact})
        hint = f"metrics recorded for it: {', '.join(known)}" if known else "no runs of that device x artifact"
        raise UserError(f"no history of {metric} for device '{device}', artifact '{artifact}'", hint=hint)
    values = [p.value for p in points]
    cps: list[ChangePoint] = []
    for cp in change_points(values, max_pvalue=max_pvalue):
        s = cp.stats
        before, after = float(s.mean_1), float(s.mean_2)
        pct = (after - before) / before * 100.0 if before else float("inf")
        i = int(cp.index)  # numpy int64 from Otava
        at = points[i]
        cps.append(ChangePoint(i, at.run_id, at.started_at, before, after, float(s.pvalue), pct,
                               _kind(metric, before, after)))
    unit = METRICS[metric].unit if metric in METRICS else ""
    return Trend(device, artifact, metric, unit, points, cps)


def format_trend(t: Trend) -> str:
    """The text `edgefarm history trend` prints: one line a point, change points marked where they start."""
    at = {c.index: c for c in t.change_points}
    lines = [f"{t.metric} ({t.unit or 'no unit'}) of {t.artifact} on {t.device}: {len(t.points)} runs, "
             f"{len(t.change_points)} change point(s) (Otava, p < {MAX_PVALUE})"]
    for i, p in enumerate(t.points):
        ci = f"  [{p.ci_low:.4g}, {p.ci_high:.4g}]" if p.ci_low is not None and p.ci_high is not None else ""
        mark = ""
        if i in at:
            c = at[i]
            mark = (f"  <-- {c.kind}: {c.mean_before:.4g} -> {c.mean_after:.4g} ({c.change_pct:+.1f}%, "
                    f"p={c.pvalue:.1e})")
        commit = (p.commit or "")[:10]
        lines.append(f"{p.started_at[:19]}  {p.run_id:<28} {p.branch or '-':<12} {commit:<10} {p.value:>12.4g}{ci}{mark}")
    return "\n".join(lines) + "\n"
