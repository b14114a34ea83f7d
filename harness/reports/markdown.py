"""Markdown for a GitHub step summary or a PR comment: verdict, matrix, what blocks, KPIs, provenance.

Every string from a record is escaped (HTML entities, table pipes, backticks), and the text is clipped so a
large farm stays under GitHub's 65,536-character comment limit.
"""

from __future__ import annotations

from collections import Counter

from harness.gate.model import Cell, GateReport, RuleResult
from harness.gate.rules import fmt
from harness.reports.keyfigures import key_row, md_escape, render_rows

ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "inconclusive": "⚠️ inconclusive", "skipped": "⏭️ skipped",
        "error": "💥 error"}
MAX_CHARS = 60_000


def esc(x: object) -> str:
    """Safe inside a Markdown table cell on GitHub: no HTML, no pipes, no code spans, one line, no controls."""
    return md_escape(x)


def _figure(r: RuleResult) -> str:
    if r.kind == "relative":
        if r.change_pct is None:
            return ""
        ci = f" [{r.change_ci_pct[0]:+.1f}, {r.change_ci_pct[1]:+.1f}]" if r.change_ci_pct else ""
        return f"{r.change_pct:+.1f}%{ci} (≤ +{r.threshold:g}%)"
    if r.value is None:
        return ""
    ci = f" [{fmt(r.ci[0])}, {fmt(r.ci[1])}]" if r.ci is not None else ""  # as the HTML report shows it
    return f"{fmt(r.value, r.unit)}{ci} (bound {fmt(r.bound, r.unit)} {r.comparator} {fmt(r.threshold, r.unit)})"


def _rule_rows(rows: list[tuple[Cell, RuleResult]]) -> list[str]:
    out = ["| outcome | device | artifact | rule | figure | why |", "|---|---|---|---|---|---|"]
    for c, r in rows:
        o = ICON[r.outcome] + ("" if r.blocking or r.outcome in ("pass", "skipped") else " (not blocking)")
        out.append(f"| {o} | {esc(c.device)} | {esc(c.artifact)} | {esc(r.rule)} | {esc(_figure(r))} | "
                   f"{esc(r.reason)} |")
    return out


def to_markdown(report: GateReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    lines = [f"## edgefarm gate: {ICON.get(report.verdict, report.verdict)}", "", esc(report.summary), ""]
    devices, artifacts = report.devices, report.artifacts
    cells = {(c.device, c.artifact): c for c in report.cells}
    if len(devices) * len(artifacts) <= 400:
        lines.append("| artifact | " + " | ".join(esc(d) for d in devices) + " |")
        lines.append("|---|" + "---|" * len(devices))
        for a in artifacts:
            row = []
            for d in devices:
                c = cells.get((d, a))
                row.append("" if c is None else ICON[c.outcome])
            lines.append(f"| {esc(a)} | " + " | ".join(row) + " |")
        lines.append("")
    else:  # too wide for a matrix: outcomes counted per artifact
        order = ("fail", "error", "inconclusive", "pass", "skipped")
        lines += ["| artifact | " + " | ".join(ICON[o] for o in order) + " |", "|---|" + "---|" * len(order)]
        tally: Counter[tuple[str, str]] = Counter((c.artifact, str(c.outcome)) for c in report.cells)
        for a in artifacts:
            lines.append(f"| {esc(a)} | " + " | ".join(str(tally[(a, o)]) for o in order) + " |")
        lines.append("")
    rank = {"fail": 0, "error": 1, "inconclusive": 2}
    bad = [(c, r) for c in report.cells for r in c.rules if r.outcome in rank]
    bad.sort(key=lambda cr: (not cr[1].blocking, rank[cr[1].outcome]))
    if bad:
        lines += ["### What did not pass", ""]
        table = _rule_rows(bad)
        room = MAX_CHARS // 2
        shown = 0
        for trow in table:
            if room - len(trow) < 0:
                break
            lines.append(trow)
            room -= len(trow)
            shown += 1
        if shown < len(table):
            lines += ["", f"… and {len(table) - shown} more rules: see the JSON or HTML report."]
        lines.append("")
    measured = [c for c in report.cells if c.record is not None]
    if measured and len(measured) <= 60:  # ~700 characters a row: 60 rows stay well inside a comment
        rows = [key_row(c.record, c.baseline_record, c.outcome) for c in measured if c.record is not None]
        lines += ["### Key figures" + (" (baseline and change in brackets)" if any(r.base for r in rows) else ""),
                  "", render_rows(rows, "md")]
    elif measured:
        lines += ["### Key figures", "", f"{len(measured)} cells: too many for a comment; see the HTML report or "
                  "`edgefarm run -o csv`.", ""]
    kpi_cells = [c for c in report.cells if c.kpis]
    if kpi_cells and len(kpi_cells) <= 100:
        lines += ["### KPIs", "", "| device | artifact | KPI | value | inputs |", "|---|---|---|---|---|"]
        for c in kpi_cells:
            for k in c.kpis:
                lines.append(f"| {esc(c.device)} | {esc(c.artifact)} | {esc(k.name)} | {esc(fmt(k.value, k.unit))} "
                             f"| {esc(k.detail)} |")
        lines.append("")
    lines += ["<details><summary>Provenance and policy</summary>", "",
              f"- policy: {esc(report.policy_source)} (inconclusive → {esc(report.inconclusive_means)}, "
              f"errors → {esc(report.errors_mean)}, not significant → {esc(report.not_significant_means)})",
              f"- run: {esc(report.run)}; baseline: {esc(report.baseline_run or 'none')}",
              f"- edgefarm {esc(report.harness_version)}, generated {esc(report.generated_at)}"]
    for n in report.notes:
        lines.append(f"- note: {esc(n)}")
    if len(report.cells) <= 100:
        lines += ["", "| device | artifact | sha256 | run | runtime |", "|---|---|---|---|---|"]
        for c in report.cells:
            p = c.provenance
            rt = p.get("runtime") or {}
            lines.append(f"| {esc(c.device)} | {esc(c.artifact)} | {esc(str(p.get('artifact_sha256'))[:12])} | "
                         f"{esc(p.get('run_id'))} | {esc(rt.get('name', ''))} {esc(rt.get('version', ''))} |")
    lines += ["", "</details>", ""]
    text = "\n".join(lines)
    return text if len(text) <= MAX_CHARS + 5_000 else text[:MAX_CHARS] + "\n\n… (clipped)\n"
