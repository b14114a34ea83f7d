"""Plain-text printers for the terminal: the gate's summary and `edgefarm compare`'s table."""

from __future__ import annotations

from harness.gate.compare import CompareRow
from harness.gate.model import GateReport
from harness.gate.rules import fmt

MARK = {"pass": "ok", "fail": "FAIL", "inconclusive": "??", "skipped": "--", "error": "ERR"}


def gate_text(report: GateReport, max_lines: int = 40) -> str:
    """The verdict line, then every blocking or non-pass rule (most severe first), clipped to max_lines."""
    lines = [report.summary]
    rows = [(c, r) for c in report.cells for r in c.rules if r.outcome not in ("pass", "skipped")]
    rank = {"fail": 0, "error": 1, "inconclusive": 2}
    rows.sort(key=lambda cr: (not cr[1].blocking, rank.get(cr[1].outcome, 3)))
    for c, r in rows[:max_lines]:
        flag = "" if r.blocking else " (not blocking)"
        lines.append(f"  {MARK[r.outcome]:4} {c.device} x {c.artifact}: {r.rule}: {r.reason}{flag}")
    if len(rows) > max_lines:
        lines.append(f"  ... and {len(rows) - max_lines} more (see the JSON / HTML report)")
    lines.extend(f"  note: {n}" for n in report.notes)
    return "\n".join(lines) + "\n"


def compare_text(rows: list[CompareRow], a: str, b: str) -> str:
    """asv-compare style: a mark, before, after, ratio, p-value, then what was compared."""
    out = [f"A = {a}", f"B = {b}", "",
           f"{'':2} {'A':>12} {'B':>12} {'ratio':>7} {'p':>8}  device x artifact: metric"]
    for r in rows:
        ratio = "n/a" if r.ratio is None else f"{r.ratio:.3f}"
        p = "" if r.p_value is None else f"{r.p_value:.2g}"
        out.append(f"{r.mark:2} {fmt(r.a, r.unit):>12} {fmt(r.b, r.unit):>12} {ratio:>7} {p:>8}  "
                   f"{r.device} x {r.artifact}: {r.metric}")
    out += ["", "+ worse and significant   - better and significant   ~ changed but not significant",
            "x only in one run / not comparable   (blank) no significant change"]
    return "\n".join(out) + "\n"
