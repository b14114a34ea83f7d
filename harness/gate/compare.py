"""Per-metric comparison of two runs (asv compare style), sorted by severity.

A change is called significant only where a test ran on raw samples: Mann-Whitney U on the two sample
series AND a bootstrap interval of the statistic's ratio that excludes 1. A figure measured once per run
(load time, first inference, throughput, peak memory) has no test: it is reported as past the threshold
"untested", never as significant. A regression is a tracked metric worse by more than the threshold and
significant, or a cell that was ok in A and is not in B; `compare_exit` turns that into exit code 1.
Where a change is past the threshold but not significant, the row says how many more samples would decide
and which flag or profile key sets that (`--min-runs`, `run.gguf_repetitions`).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.gate.hints import LLM_SERIES as _LLM_SERIES, MAX_SUGGEST
from harness.gate.hints import decide_hint as decide_hint  # re-exported: reports import it from here
from harness.gate.policy import StatsConfig
from harness.gate.rules import SampleCache
from harness.gate.stats import estimator_for, mann_whitney, ratio_interval, samples_to_decide
from harness.metrics import METRICS
from harness.records import Record

Outcome = Literal["regressed", "worse_untested", "worse_not_significant", "status", "missing", "better",
                  "better_untested", "unchanged"]
# most severe first: what a reader must see at the top
SEVERITY: dict[str, int] = {"status": 0, "regressed": 1, "worse_not_significant": 2, "worse_untested": 3,
                            "missing": 4, "better": 5, "better_untested": 6, "unchanged": 7}
MARK = {"status": "x", "regressed": "+", "worse_not_significant": "~", "worse_untested": "?", "missing": "x",
        "better": "-", "better_untested": "?", "unchanged": ""}
# the metrics a regression of which fails `compare` (the others are listed, never fail it)
TRACKED = frozenset({"latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "itl_ms_p50", "itl_ms_p95",
                     "itl_ms_p99", "ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_mib",
                     "load_time_ms", "first_inference_ms", "throughput_per_s"})


@dataclass
class CompareRow:
    device: str
    artifact: str
    metric: str
    unit: str
    a: float | None
    b: float | None
    ratio: float | None  # b / a
    p_value: float | None  # None: no test ran
    mark: str
    outcome: Outcome = "unchanged"
    change_pct: float | None = None  # + is worse (direction-aware)
    ratio_ci: tuple[float, float] | None = None
    test: str = ""  # what ran: "Mann-Whitney U + bootstrap ratio interval", or "" (none)
    tracked: bool = False
    hint: str = ""  # why no decision, and what to change

    @property
    def severity(self) -> int:
        return SEVERITY[self.outcome]

    @property
    def significant(self) -> bool | None:
        """True/False where a test ran; None where none did (a single figure per run)."""
        if self.p_value is None:
            return None
        return self.outcome in ("regressed", "better")


def fmt_p(p: float | None) -> str:
    """A p-value for a reader: never "0" (the normal approximation underflows, the evidence does not)."""
    if p is None:
        return "no test"
    if p < 1e-6:
        return "< 1e-6"
    return f"{p:.2g}"


def _more_hint(series: str, n: int, more: int | None) -> str:
    if more is None:
        return "the change sits on the threshold: no sample count decides it"
    total = min(n + more, MAX_SUGGEST)
    capped = " (capped)" if n + more > MAX_SUGGEST else ""
    if series == "itl_ms":  # counted in decoded tokens: repetitions x new tokens
        return (f"~{more} more decoded tokens would decide: raise the profile key run.gguf_repetitions "
                f"(repetitions x new tokens >= {total}{capped}) for both runs")
    if series in _LLM_SERIES:
        return (f"~{more} more repetitions would decide: set the profile key run.gguf_repetitions = "
                f"{total}{capped} for both runs")
    return f"~{more} more samples would decide: rerun both with `edgefarm run --min-runs {total}`{capped}"


def _judge(x: Record, y: Record, metric: str, threshold: float, cfg: StatsConfig, cache: SampleCache,
           rng: np.random.Generator) -> CompareRow:
    d = METRICS[metric]
    fa, fb = cache.figure(x, metric, cfg), cache.figure(y, metric, cfg)
    row = CompareRow(x.device.name, x.artifact.name, metric, d.unit, fa.value, fb.value, None, None, "",
                     tracked=metric in TRACKED)
    if fa.value is None or fb.value is None or fa.value == 0:
        row.outcome, row.mark = "missing", "x"
        row.hint = "no value in " + ("A" if fa.value is None else "B" if fb.value is None else "A (zero)")
        return row
    row.ratio = fb.value / fa.value
    worse = row.ratio if d.better == "lower" else 1.0 / row.ratio if row.ratio else math.inf
    row.change_pct = 100.0 * (worse - 1.0)
    past = worse > 1.0 + threshold or worse < 1.0 / (1.0 + threshold)
    est = fa.est
    tested = (est is not None and fa.samples is not None and fb.samples is not None
              and len(fa.samples) > 1 and len(fb.samples) > 1)
    if not tested:
        if past:
            row.outcome = "worse_untested" if worse > 1.0 else "better_untested"
            row.hint = ("one figure per run: no test can call this significant; compare repeated runs "
                        "(history) before acting on it")
        row.mark = MARK[row.outcome]
        return row
    assert est is not None and fa.samples is not None and fb.samples is not None
    infl = (fa.infl + fb.infl) / 2.0
    row.p_value = mann_whitney(fb.samples, fa.samples, infl).p
    lo, hi = ratio_interval(est, fb.samples, fa.samples, cfg.confidence, 400, rng, fb.infl, fa.infl)
    row.ratio_ci = (lo, hi)
    row.test = "Mann-Whitney U + bootstrap ratio interval"
    excludes_one = lo > 1.0 or hi < 1.0
    significant = row.p_value < cfg.alpha and excludes_one
    if past and significant:
        row.outcome = "regressed" if worse > 1.0 else "better"
    elif past and worse > 1.0:
        row.outcome = "worse_not_significant"
        half = (hi - lo) / 2.0 if math.isfinite(hi - lo) else math.inf
        n = min(len(fa.samples), len(fb.samples))
        more = samples_to_decide(n, half, abs(row.ratio - 1.0))
        if row.p_value >= cfg.alpha and row.p_value < 1.0:
            # the test's z grows like sqrt(n): the count at which this p would fall below alpha
            z_now = NormalDist().inv_cdf(1.0 - row.p_value / 2.0)
            z_need = NormalDist().inv_cdf(1.0 - cfg.alpha / 2.0)
            by_p = math.ceil(n * (z_need / z_now) ** 2) - n if z_now > 0 else None
            more = None if by_p is None else max(more or 0, by_p)
        row.hint = _more_hint(est.series, n, more)
    row.mark = MARK[row.outcome]
    return row


def compare(a: Sequence[Record], b: Sequence[Record], factor: float = 1.05,
            stats: StatsConfig | None = None) -> list[CompareRow]:
    """Every metric both runs measured for each (device, artifact), most severe first.

    `factor` is the ratio that counts as a change (1.05: 5% worse); sorting is by severity, then by size.
    """
    cfg = stats or StatsConfig()
    threshold = factor - 1.0
    cache = SampleCache()
    rng = np.random.default_rng(0)  # the bootstrap is seeded: one pair of runs, one answer
    ra, rb = {r.key: r for r in a}, {r.key: r for r in b}
    rows: list[CompareRow] = []
    for key in sorted(set(ra) | set(rb)):
        x, y = ra.get(key), rb.get(key)
        if x is None or y is None or x.status != "ok" or y.status != "ok":
            if x is None or y is None:
                what, outcome = ("only in B" if x is None else "only in A"), "missing"
            else:
                what = f"status {x.status} -> {y.status}"
                outcome = "status" if x.status == "ok" else "missing" if y.status != "ok" else "better"
            rows.append(CompareRow(key[0], key[1], what, "", None, None, None, None, MARK[outcome],
                                   outcome=outcome, tracked=True))  # type: ignore[arg-type]
            continue
        for metric in sorted((set(x.metrics) | set(y.metrics)) & set(METRICS)):
            rows.append(_judge(x, y, metric, threshold, cfg, cache, rng))
    rows.sort(key=lambda r: (r.severity, -abs(r.change_pct or 0.0), r.device, r.artifact, r.metric))
    return rows


def regressions(rows: Sequence[CompareRow]) -> list[CompareRow]:
    """Tracked rows that regressed significantly past the threshold, or cells that stopped being ok."""
    return [r for r in rows if r.tracked and r.outcome in ("regressed", "status")]


def compare_exit(rows: Sequence[CompareRow]) -> int:
    """1 when something regressed (see `regressions`), else 0."""
    return 1 if regressions(rows) else 0
