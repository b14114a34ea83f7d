"""One self-contained HTML file for release managers: no network, inline CSS / JS / SVG only.

An artifact x device matrix of verdicts; each cell opens to its rules (figures vs budgets and baseline),
a latency distribution and a memory chart, KPIs and provenance. Every string from a device, a model output, a
profile or a file name goes through html.escape; the JSON data block escapes <, > and & as \\u003c etc.
A Content-Security-Policy allows only this page's own script (by hash): even a string that slipped past
escaping could not run a script or load anything.
"""

from __future__ import annotations

import base64
import hashlib
import json

from harness.gate.compare import decide_hint
from harness.gate.model import Cell, GateReport, RuleResult
from harness.gate.rules import fmt
from harness.reports.charts import cell_charts
from harness.reports.escape import h
from harness.reports.html_assets import CSS, JS
from harness.reports.keyfigures import COLUMNS, KeyRow, cell_text, key_row
from harness.reports.provenance import provenance_rows

LABEL = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "skipped": "SKIPPED", "error": "ERROR"}
ICON = {"pass": "✔", "fail": "✖", "inconclusive": "?", "skipped": "–", "error": "!"}


def e(x: object) -> str:
    """Escaped text: control characters (ESC, NUL) shown as \\xNN, then HTML-escaped."""
    return h(x)


def script_json(data: object) -> str:
    """JSON safe inside <script>: no </script>, no <!--, no & entity surprises."""
    s = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _num(r: RuleResult) -> tuple[str, str, str]:
    """(figure, limit, baseline) cells of a rule row."""
    if r.kind == "relative":
        fig = "" if r.change_pct is None else f"{r.change_pct:+.1f}%"
        if r.change_ci_pct:
            fig += f" [{r.change_ci_pct[0]:+.1f}, {r.change_ci_pct[1]:+.1f}]"
        base = f"{fmt(r.baseline, r.unit)} → {fmt(r.value, r.unit)}" if r.baseline is not None else ""
        return fig, f"≤ +{r.threshold:g}%", base
    if r.kind == "run":
        return "", "", ""
    fig = fmt(r.value, r.unit)
    if r.ci is not None:
        fig += f" [{fmt(r.ci[0])}, {fmt(r.ci[1])}]"
    return fig, f"{r.comparator} {fmt(r.threshold, r.unit)}", ""


def _rules_table(cell: Cell) -> str:
    rows = []
    order = {"fail": 0, "error": 1, "inconclusive": 2, "pass": 3, "skipped": 4}
    for r in sorted(cell.rules, key=lambda r: order[r.outcome]):
        fig, limit, base = _num(r)
        nb = "" if r.blocking or r.outcome in ("pass", "skipped") else ' <span class="nb">not blocking</span>'
        p = "" if r.p_value is None else "< 1e-15" if r.p_value < 1e-15 else f"{r.p_value:.2g}"
        more = (f'<br><span class="more">~{r.more_samples} more samples: '
                f"{e(decide_hint(r.metric, r.n, r.more_samples))}</span>" if r.more_samples else "")
        rows.append(
            f'<tr class="o-{r.outcome}"><td><span class="badge o-{r.outcome}">{LABEL[r.outcome]}</span>{nb}</td>'
            f"<td>{e(r.rule)}<div class=\"src\">{e(r.source)}</div></td><td>{e(fig)}</td><td>{e(limit)}</td>"
            f"<td>{e(base)}</td><td>{e(p)}</td><td class=\"why\">{e(r.reason)}{more}</td></tr>")
    return ('<table class="rules"><thead><tr><th>outcome</th><th>rule</th><th>figure [interval]</th>'
            "<th>limit</th><th>baseline → now</th><th>p</th><th>why</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _provenance(cell: Cell, report: GateReport) -> str:
    rows = provenance_rows(cell, report.harness_version)
    return ('<table class="prov">' + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
            + "</table>")


def _row(cell: Cell) -> KeyRow | None:
    if cell.record is None:
        return None
    return key_row(cell.record, cell.baseline_record, cell.outcome)


def _key_table(row: KeyRow) -> str:
    """One cell's key figures: figure, baseline, change (a column each where a baseline exists)."""
    has_base = bool(row.base)
    head = "<tr><th>figure</th><th>this run</th>" + ("<th>baseline</th><th>change</th>" if has_base else "") + "</tr>"
    body = []
    for c in COLUMNS:
        f = row.figs[c.key]
        cls = ' class="why"' if f.value is None and f.why else ""
        tds = f"<td{cls}>{e(f.text)}</td>"
        if has_base:
            b = row.base.get(c.key)
            ch = row.change.get(c.key)
            tds += f"<td>{e(b.text if b else '')}</td><td>{'' if ch is None else f'{ch:+.1f}%'}</td>"
        body.append(f'<tr data-key="{c.key}"><th title="{e(c.definition)}">{e(c.header)}</th>{tds}</tr>')
    note = ('<p class="src">p50/p95/p99 here are of inter-token latency (decode).</p>'
            if row.series == "itl_ms" else "")
    return f'<table class="keyfig">{head}{"".join(body)}</table>{note}'


def key_summary(report: GateReport, rows_by_cell: list[KeyRow | None] | None = None, limit: int = 200) -> str:
    """Every cell's key figures in one table (the first `limit` cells), the baseline's change beside each."""
    by = rows_by_cell if rows_by_cell is not None else [_row(c) for c in report.cells]
    rows = [(i, r) for i, r in enumerate(by) if r is not None][:limit]
    if not rows:
        return ""
    head = "".join(f'<th title="{e(c.definition)}">{e(c.header)}</th>' for c in COLUMNS)
    trs = []
    for i, r in rows:
        tds = "".join(f"<td>{e(cell_text(r, c.key))}</td>" for c in COLUMNS)
        trs.append(f'<tr class="o-{e(r.verdict)}"><td><a href="#c{i}" data-cell="{i}">{e(r.device)} × '
                   f'{e(r.artifact)}</a></td><td><span class="badge o-{e(r.verdict)}">{e(r.verdict)}</span></td>'
                   f"{tds}</tr>")
    more = (f'<p class="src">first {limit} of {len(report.cells)} cells; every cell has its own table below</p>'
            if len(report.cells) > limit else "")
    return (f'<section class="keyfigs"><h2>Key figures</h2><div class="kwrap"><table class="keyfig-all"><thead>'
            f"<tr><th>cell</th><th>verdict</th>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table></div>"
            f"{more}</section>")


CHARTS_FOR_ALL_UP_TO = 200  # cells; above, passing cells show figures without charts (file size, render time)


def _detail(i: int, cell: Cell, report: GateReport, row: KeyRow | None, charts_ok: bool = True) -> str:
    opened = " open" if cell.outcome in ("fail", "error", "inconclusive") else ""
    head = (f'<section class="detail o-{cell.outcome}{opened}" id="c{i}" data-outcome="{cell.outcome}">'
            f'<h2><span class="badge o-{cell.outcome}">{LABEL[cell.outcome]}</span> '
            f'<span class="dev">{e(cell.device)}</span> × <span class="art">{e(cell.artifact)}</span></h2>'
            f'<p class="meta">status <b>{e(cell.status)}</b>')
    if cell.message:
        head += f' · message: <span class="msg">{e(cell.message)}</span>'
    head += "</p>"
    for t in cell.tainted:
        head += f'<p class="warn">tainted: {e(t)}: its figures are not trusted, its rules are inconclusive</p>'
    for n in cell.notes:
        head += f'<p class="note">{e(n)}</p>'
    charts = cell_charts(cell) if charts_ok or cell.outcome != "pass" else ""
    if not charts and cell.outcome == "pass" and not charts_ok:
        charts = (f'<p class="src">charts are drawn for every cell that did not pass; this report has '
                  f"{len(report.cells)} cells (over {CHARTS_FOR_ALL_UP_TO}), so passing cells show figures "
                  "only</p>")
    kpis = "".join(f"<li><b>{e(k.name)}</b> {e(fmt(k.value, k.unit))} <span class=\"src\">{e(k.detail)}</span></li>"
                   for k in cell.kpis)
    # key figures beside the charts: what a release manager reads first, above the rules
    figs = f'<div class="kcol"><h3>Key figures</h3>{_key_table(row)}</div>' if row else ""
    return (head + f'<div class="cellbody">{figs}' + (f'<div class="charts">{charts}</div>' if charts else "")
            + "</div>" + _rules_table(cell)
            + (f'<h3>KPIs</h3><ul class="kpis">{kpis}</ul>' if kpis else "")
            + "<h3>Provenance</h3>" + _provenance(cell, report) + "</section>")


def _matrix(report: GateReport) -> str:
    devices, artifacts = report.devices, report.artifacts
    by = {(c.device, c.artifact): (i, c) for i, c in enumerate(report.cells)}
    cls = {c.device: c.device_class for c in report.cells}
    head = "".join(f'<th scope="col">{e(d)}<div class="src">{e(cls[d])}</div></th>' for d in devices)
    rows = []
    for a in artifacts:
        tds = []
        for d in devices:
            hit = by.get((d, a))
            if hit is None:
                tds.append('<td class="cell none">—</td>')
                continue
            i, c = hit
            n_out = sum(1 for r in c.rules if r.outcome == c.outcome)
            n_skip = sum(1 for r in c.rules if r.outcome == "skipped")
            small = (f"{n_out} pass · {n_skip} skipped" if c.outcome == "pass"
                     else f"{n_out} of {len(c.rules)} rules")
            tds.append(f'<td class="cell o-{c.outcome}" data-outcome="{c.outcome}"><a href="#c{i}" data-cell="{i}" '
                       f'title="{e(d)} × {e(a)}: {LABEL[c.outcome]}">{ICON[c.outcome]} {LABEL[c.outcome]}'
                       f'<small>{small}</small></a></td>')
        rows.append(f'<tr><th scope="row">{e(a)}</th>{"".join(tds)}</tr>')
    return (f'<div class="mwrap"><table class="matrix"><thead><tr><th>artifact \\ device</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _worst(report: GateReport, limit: int = 30) -> str:
    """The cells that did not pass, worst first, each a link to its detail: what a release manager reads first."""
    rank = {"fail": 0, "error": 1, "inconclusive": 2}
    bad = sorted((rank[c.outcome], i, c) for i, c in enumerate(report.cells) if c.outcome in rank)
    if not bad:
        return ""
    items = []
    for _, i, c in bad[:limit]:
        first = next((r for r in c.rules if r.outcome == c.outcome), None)
        why = f"{first.rule}: {first.reason}" if first else ""
        items.append(f'<li><span class="badge o-{c.outcome}">{LABEL[c.outcome]}</span> '
                     f'<a href="#c{i}" data-cell="{i}">{e(c.device)} × {e(c.artifact)}</a> '
                     f'<span class="src">{e(why)}</span></li>')
    more = f"<p class=\"src\">… and {len(bad) - limit} more in the matrix</p>" if len(bad) > limit else ""
    return (f'<section class="worst"><h2>Did not pass ({len(bad)} of {len(report.cells)} cells)</h2>'
            f"<ol>{''.join(items)}</ol>{more}</section>")


def to_html(report: GateReport) -> str:
    """The report as one HTML file that opens offline."""
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    counts = " ".join(f'<span class="chip o-{o}">{report.counts.get(o, 0)} {o}</span>'
                      for o in ("fail", "error", "inconclusive", "pass", "skipped"))
    policy = (f"{report.policy_source} · inconclusive → {report.inconclusive_means} · errors → "
              f"{report.errors_mean} · not significant → {report.not_significant_means}")
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in report.notes)
    data = {"schema": report.schema, "verdict": report.verdict, "exit_code": report.exit_code,
            "cells": [{"device": c.device, "artifact": c.artifact, "outcome": c.outcome} for c in report.cells]}
    rows = [_row(c) for c in report.cells]  # once per cell: the summary table and each detail share it
    every = len(report.cells) <= CHARTS_FOR_ALL_UP_TO
    details = "".join(_detail(i, c, report, rows[i], every) for i, c in enumerate(report.cells))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgefarm gate: {LABEL.get(report.verdict, e(report.verdict))}</title>
<style>{CSS}</style></head>
<body>
<header class="banner o-{report.verdict}"><div class="verdict">{LABEL.get(report.verdict, e(report.verdict))}</div>
<div><div class="summary">{e(report.summary)}</div>
<div class="sub">run {e(report.run) or "(in memory)"} · baseline {e(report.baseline_run or "none")} ·
exit code {report.exit_code}</div>
<div class="sub">policy {e(policy)}</div>
<div class="sub">edgefarm {e(report.harness_version)} · generated {e(report.generated_at)}</div></div></header>
<main>
<div class="counts">rules: {counts}</div>{notes}
{_worst(report)}
{key_summary(report, rows)}
<div class="controls"><label><input type="checkbox" id="only-bad"> only cells that did not pass</label>
<button type="button" id="expand-all">expand all</button> <button type="button" id="collapse-all">collapse all</button>
<span class="hint">failing and inconclusive cells are open; click a cell to open its rules, charts and provenance</span></div>
{_matrix(report)}
<div id="details">{details}</div>
</main>
<footer>One file, no network: inline CSS, JS and SVG. Schema {e(report.schema)}.</footer>
<script type="application/json" id="gate-data">{script_json(data)}</script>
<script>{JS}</script>
</body></html>
"""
