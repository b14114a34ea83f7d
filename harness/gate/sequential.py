"""The gate's side of `--adaptive decide` (agents/sequential.py): a record whose run stopped on a sequential
rule is judged, for each statistic that run gated, on the final look's interval (at the per-look confidence),
so the looks spend the policy's error rate once. A decided run's own interval gives the same verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.records import Record


@dataclass(frozen=True)
class Look:
    """The final look of a sequential run for one gated metric: its interval (None: it had none) and a note."""

    ci: tuple[float, float] | None
    confidence: float
    note: str


def sequential_look(rec: Record, metric: str) -> Look | None:
    """The final look for `metric` when rec was measured with --adaptive decide and its run gated `metric`."""
    st = rec.provenance.stopping
    if not isinstance(st, dict) or st.get("mode") != "decide":
        return None
    conf = st.get("look_confidence")
    if not isinstance(conf, (int, float)) or not 0.0 < conf < 1.0:
        return None
    for g in st.get("gated") or []:
        if not isinstance(g, dict) or g.get("metric") != metric:
            continue
        raw = g.get("ci")
        ci = None
        if isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                           for v in raw):
            ci = (float(raw[0]), float(raw[1]))
        looks_at = st.get("looks_at")
        taken = len(looks_at) if isinstance(looks_at, list) else 0
        note = (f"sequential run ({st.get('rule')}, look {taken} of at most {st.get('looks')} at "
                f"{conf:.4g} confidence each; stopped: {st.get('stop_reason')})")
        return Look(ci, float(conf), note)
    return None
