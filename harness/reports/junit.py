"""JUnit XML: one testsuite per device x artifact (with provenance properties), one testcase per rule.

fail -> <failure>, error -> <error>, skipped -> <skipped>; inconclusive is a <failure type="inconclusive">
when it blocks the gate under the policy, else a <skipped> that says why (JUnit has no third state).
"""

from __future__ import annotations

import json
import re
from html import escape

from harness.reports.keyfigures import COLUMNS, cell_text, key_row
from harness.gate.model import Cell, GateReport, RuleResult

# XML 1.0 cannot carry most control characters at all, escaped or not: replace them.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _s(x: object) -> str:
    """Text or attribute value: XML-escaped (quotes too), no characters XML forbids."""
    return escape(_BAD_XML.sub("\ufffd", str(x)), quote=True)


def _props(items: dict[str, object], indent: str) -> str:
    out = []
    for k, v in items.items():
        if v is None or v == {} or v == "":
            continue
        if isinstance(v, bool):
            val: object = "true" if v else "false"
        else:
            val = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        out.append(f'{indent}  <property name="{_s(k)}" value="{_s(val)}"/>\n')
    return f"{indent}<properties>\n{''.join(out)}{indent}</properties>\n" if out else ""


def _key_props(cell: Cell) -> dict[str, object]:
    """The key figures as properties `key.<column>` (the text a reader sees, interval or reason included)."""
    if cell.record is None:
        return {}
    row = key_row(cell.record, cell.baseline_record, cell.outcome)
    return {f"key.{c.key}": cell_text(row, c.key) for c in COLUMNS}


def _case(cell: Cell, r: RuleResult) -> str:
    head = (f'    <testcase classname="{_s(f"edgefarm.gate.{cell.device}.{cell.artifact}")}" '
            f'name="{_s(f"{r.rule} [{r.source}]")}" time="0">\n')
    props = _props({"outcome": r.outcome, "metric": r.metric, "value": r.value, "bound": r.bound,
                    "threshold": r.threshold, "baseline": r.baseline, "change_pct": r.change_pct,
                    "p_value": r.p_value, "more_samples": r.more_samples, "blocking": r.blocking}, "      ")
    kind = r.error_kind or r.kind
    why = _s(r.reason)
    if r.outcome == "fail":
        body = f'      <failure message="{why}" type="{_s(kind)}">{why}</failure>\n'
    elif r.outcome == "error":
        body = f'      <error message="{why}" type="{_s(kind)}">{_s(cell.message or r.reason)}</error>\n'
    elif r.outcome == "inconclusive" and r.blocking:
        body = f'      <failure message="inconclusive: {why}" type="inconclusive"/>\n'
    elif r.outcome in ("inconclusive", "skipped"):
        body = f'      <skipped message="{_s(r.outcome)}: {why}"/>\n'
    else:
        body = f"      <system-out>{why}</system-out>\n"
    return head + props + body + "    </testcase>\n"


def to_junit(report: GateReport) -> str:
    """The report as JUnit XML (the dialect Jenkins, GitLab and GitHub test reporters read)."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites: list[str] = []
    for cell in report.cells:
        prov = cell.provenance
        props = _props({
            "device": cell.device, "device_class": cell.device_class, "artifact": cell.artifact,
            "artifact_sha256": prov.get("artifact_sha256"), "device_fingerprint": prov.get("device_fingerprint"),
            "harness_version": prov.get("harness_version") or report.harness_version,
            "gate_harness_version": report.harness_version, "run_id": prov.get("run_id"),
            "runtime": prov.get("runtime"), "status": cell.status, "outcome": cell.outcome,
            "tainted": cell.tainted or None, "policy": report.policy_source,
            **_key_props(cell),
        }, "    ")
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        cases = []
        for r in cell.rules:
            cases.append(_case(cell, r))
            n["tests"] += 1
            if r.outcome == "fail" or (r.outcome == "inconclusive" and r.blocking):
                n["failures"] += 1
            elif r.outcome == "error":
                n["errors"] += 1
            elif r.outcome in ("skipped", "inconclusive"):
                n["skipped"] += 1
        for k, v in n.items():
            totals[k] += v
        counts = " ".join(f'{k}="{v}"' for k, v in n.items())
        stamp = _s(prov.get("started_at") or report.generated_at)
        suites.append(f'  <testsuite name="{_s(f"{cell.device} x {cell.artifact}")}" timestamp="{stamp}" {counts}>\n'
                      + props + "".join(cases) + "  </testsuite>\n")
    counts = " ".join(f'{k}="{v}"' for k, v in totals.items())
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuites name="edgefarm gate" {counts}>\n' + "".join(suites) + "</testsuites>\n")
