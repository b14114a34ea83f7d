"""Run-level evidence for relative rules: the blocks (agent launches) of two records, tested between them.

- Both records from one interleaved A/B session (same `pairing.session`): the j-th candidate block is paired
  with the j-th baseline block (adjacent in the ABBA order), a paired test on their log ratios (Wilcoxon
  signed-rank, Hodges-Lehmann ratio and interval).
- Two runs with >= 2 launches each (`--processes N`): a between-run (Welch) test on their per-launch values.
- Otherwise there is no run-level evidence: within-run samples alone never make a change significant, because
  the noise that matters (placement, frequency, neighbours) moves a whole run. The statistics are agents.stats'.
"""

from __future__ import annotations

import math

from agents import runlevel as one
from harness.records import Record

PROCESSES_HINT = "rerun both with `edgefarm run --processes 3`, or measure both in one session with " \
                 "`edgefarm run --artifact NEW --baseline-artifact OLD`"


def paired(rec: Record, base: Record) -> bool:
    """True when the two records are the candidate and baseline of one interleaved A/B session."""
    return (rec.pairing is not None and base.pairing is not None and rec.pairing.session == base.pairing.session
            and rec.pairing.role != base.pairing.role)


def values(rec: Record, metric: str) -> list[float | None]:
    """The metric's per-block values in session order (None where a block has none)."""
    return [b.stats.get(metric) for b in sorted(rec.blocks, key=lambda b: b.index)]


def evidence(rec: Record, base: Record, metric: str, confidence: float,
             run_spread_pct: float | None = None) -> one.RatioTest | None:
    """candidate / baseline on the blocks, paired or between runs (with the device's recorded run-to-run spread,
    profile [run] run_spread_pct, where it has one); None without run-level evidence."""
    c, b = values(rec, metric), values(base, metric)
    if paired(rec, base):
        pairs = [(x, y) for x, y in zip(c, b) if x is not None and y is not None]
        return one.paired_ratio([x for x, _ in pairs], [y for _, y in pairs], confidence)
    cv, bv = [x for x in c if x is not None], [y for y in b if y is not None]
    if len(cv) < 2 or len(bv) < 2:
        return None
    return one.between_ratio(cv, bv, confidence, math.log1p((run_spread_pct or 0.0) / 100.0))


def more_hint(rec: Record, test: one.RatioTest) -> str:
    """Which flag would make an undecided block test decide."""
    if test.design == "paired":
        k = rec.pairing.blocks_each if rec.pairing is not None and rec.pairing.blocks_each else test.k
        return f"more blocks would decide: rerun with `--blocks {min(64, 2 * k)}`"
    return f"more launches would decide: rerun both with `--processes {min(64, 2 * test.k)}`"
