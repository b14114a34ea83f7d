"""Per-metric comparison of two runs (asv compare style): the ratio B/A and whether the change is significant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.gate.policy import StatsConfig
from harness.gate.rules import SampleCache
from harness.gate.stats import mann_whitney
from harness.metrics import METRICS
from harness.records import Record


@dataclass
class CompareRow:
    device: str
    artifact: str
    metric: str
    unit: str
    a: float | None
    b: float | None
    ratio: float | None  # b / a
    p_value: float | None
    mark: str  # "+" worse, "-" better (both significant), "~" past factor but not significant, "x", ""


def compare(a: Sequence[Record], b: Sequence[Record], factor: float = 1.05,
            stats: StatsConfig | None = None) -> list[CompareRow]:
    """Every metric both runs measured for each (device, artifact), plus rows for what only one run has."""
    cfg = stats or StatsConfig()
    cache = SampleCache()
    ra, rb = {r.key: r for r in a}, {r.key: r for r in b}
    rows: list[CompareRow] = []
    for key in sorted(set(ra) | set(rb)):
        x, y = ra.get(key), rb.get(key)
        if x is None or y is None or x.status != "ok" or y.status != "ok":
            what = "only in B" if x is None else "only in A" if y is None else f"status {x.status} -> {y.status}"
            rows.append(CompareRow(key[0], key[1], what, "", None, None, None, None, "x"))
            continue
        for metric in sorted((set(x.metrics) | set(y.metrics)) & set(METRICS)):
            d = METRICS[metric]
            fa, fb = cache.figure(x, metric, cfg), cache.figure(y, metric, cfg)
            if fa.value is None or fb.value is None or fa.value == 0:
                rows.append(CompareRow(key[0], key[1], metric, d.unit, fa.value, fb.value, None, None, "x"))
                continue
            ratio = fb.value / fa.value
            worse = ratio if d.better == "lower" else 1.0 / ratio if ratio else float("inf")
            p: float | None = None
            # single figures: memory and load figures count as they stand; a min / max / std of samples
            # without a test is never called significant
            significant = d.sampled_from is None
            if fa.samples is not None and fb.samples is not None and len(fa.samples) > 1 and len(fb.samples) > 1:
                p = mann_whitney(fb.samples, fa.samples, (fa.infl + fb.infl) / 2.0).p
                significant = p < cfg.alpha
            mark = ""
            if worse > factor or worse < 1.0 / factor:
                mark = ("+" if worse > 1.0 else "-") if significant else "~"
            rows.append(CompareRow(key[0], key[1], metric, d.unit, fa.value, fb.value, ratio, p, mark))
    return rows
