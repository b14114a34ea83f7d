"""Plain-text printers for the terminal: the gate's summary and `edgefarm compare`'s table."""

from __future__ import annotations

from harness.gate.compare import CompareRow, fmt_p, regressions
from harness.gate.model import GateReport
from harness.gate.rules import fmt
from harness.reports.escape import term

MARK = {"pass": "ok", "fail": "FAIL", "inconclusive": "??", "skipped": "--", "error": "ERR"}


def gate_text(report: GateReport, max_lines: int = 40) -> str:
    """The verdict line, then every blocking or non-pass rule (most severe first), clipped to max_lines."""
    lines = [report.summary]
    rows = [(c, r) for c in report.cells for r in c.rules if r.outcome not in ("pass", "skipped")]
    rank = {"fail": 0, "error": 1, "inconclusive": 2}
    rows.sort(key=lambda cr: (not cr[1].blocking, rank.get(cr[1].outcome, 3)))
    for c, r in rows[:max_lines]:
        flag = "" if r.blocking else " (not blocking)"
        lines.append(term(f"  {MARK[r.outcome]:4} {c.device} x {c.artifact}: {r.rule}: {r.reason}{flag}"))
    if len(rows) > max_lines:
        lines.append(f"  ... and {len(rows) - max_lines} more (see the JSON / HTML report)")
    lines.extend(term(f"  note: {n}") for n in report.notes)
    return "\n".join(lines) + "\n"


def compare_text(rows: list[CompareRow], a: str, b: str, figures: str = "", threshold_pct: float = 5.0) -> str:
    """Key figures of B beside A, then asv-compare style rows, most severe first: mark, A, B, change, p, why."""
    out = [f"A = {term(a)}", f"B = {term(b)}", ""]
    if figures:
        out += ["key figures of B (base = A):", figures.rstrip(), ""]
    reg = regressions(rows)
    out.append(f"{len(reg)} regression(s) past {threshold_pct:g}% (significant, tracked metric, or a cell no "
               "longer ok)" if reg else f"no significant regression past {threshold_pct:g}%")
    out += ["", f"{'':2} {'A':>12} {'B':>12} {'change':>8} {'ratio interval':>17} {'p':>8}  "
                "device x artifact: metric"]
    for r in rows:
        ch = "" if r.change_pct is None else f"{r.change_pct:+.1f}%"
        ci = "" if r.ratio_ci is None else f"[{fmt(r.ratio_ci[0])}, {fmt(r.ratio_ci[1])}]"
        p = fmt_p(r.p_value) if r.a is not None and r.b is not None else ""
        line = (f"{r.mark:2} {fmt(r.a, r.unit):>12} {fmt(r.b, r.unit):>12} {ch:>8} {ci:>17} {p:>8}  "
                f"{term(r.device)} x {term(r.artifact)}: {r.metric}")
        out.append(line + (f"\n{'':6}{r.hint}" if r.hint else ""))
    out += ["", "change: + is worse for the metric's direction (B against A)",
            "+ worse, significant (Mann-Whitney U and the ratio's interval) and past the threshold",
            "- better and significant   ~ past the threshold, not significant (the hint says what decides it)",
            "? past the threshold, untested (one figure per run: never called significant)",
            "x status change, or in one run only   (blank) within the threshold"]
    return "\n".join(out) + "\n"
