"""JUnit XML: one testsuite per device x artifact (with provenance properties), one testcase per rule.

fail -> <failure>, error -> <error>, skipped -> <skipped>; inconclusive is a <failure type="inconclusive">
when it blocks the gate under the policy, else a <skipped> that says why (JUnit has no third state).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from harness.gate.model import Cell, GateReport, RuleResult

# XML 1.0 cannot carry most control characters at all, escaped or not: drop them.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _s(x: object) -> str:
    return _BAD_XML.sub("\ufffd", str(x))


def _props(parent: ET.Element, items: dict[str, object]) -> None:
    props = ET.SubElement(parent, "properties")
    for k, v in items.items():
        if v is None or v == {} or v == "":
            continue
        if isinstance(v, bool):
            val: object = "true" if v else "false"
        else:
            val = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        ET.SubElement(props, "property", name=_s(k), value=_s(val))


def _case(suite: ET.Element, cell: Cell, r: RuleResult) -> None:
    tc = ET.SubElement(suite, "testcase", classname=_s(f"edgefarm.gate.{cell.device}.{cell.artifact}"),
                       name=_s(f"{r.rule} [{r.source}]"), time="0")
    _props(tc, {"outcome": r.outcome, "metric": r.metric, "value": r.value, "bound": r.bound,
                "threshold": r.threshold, "baseline": r.baseline, "change_pct": r.change_pct,
                "p_value": r.p_value, "more_samples": r.more_samples, "blocking": r.blocking})
    kind = r.error_kind or r.kind
    if r.outcome == "fail":
        ET.SubElement(tc, "failure", message=_s(r.reason), type=_s(kind)).text = _s(r.reason)
    elif r.outcome == "error":
        ET.SubElement(tc, "error", message=_s(r.reason), type=_s(kind)).text = _s(cell.message or r.reason)
    elif r.outcome == "inconclusive" and r.blocking:
        ET.SubElement(tc, "failure", message=_s(f"inconclusive: {r.reason}"), type="inconclusive")
    elif r.outcome in ("inconclusive", "skipped"):
        ET.SubElement(tc, "skipped", message=_s(f"{r.outcome}: {r.reason}"))
    else:
        ET.SubElement(tc, "system-out").text = _s(r.reason)


def to_junit(report: GateReport) -> str:
    """The report as JUnit XML (the dialect Jenkins, GitLab and GitHub test reporters read)."""
    root = ET.Element("testsuites", name="edgefarm gate")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for cell in report.cells:
        suite = ET.SubElement(root, "testsuite", name=_s(f"{cell.device} x {cell.artifact}"),
                              timestamp=_s(cell.provenance.get("started_at") or report.generated_at))
        prov = cell.provenance
        _props(suite, {
            "device": cell.device, "device_class": cell.device_class, "artifact": cell.artifact,
            "artifact_sha256": prov.get("artifact_sha256"), "device_fingerprint": prov.get("device_fingerprint"),
            "harness_version": prov.get("harness_version") or report.harness_version,
            "gate_harness_version": report.harness_version, "run_id": prov.get("run_id"),
            "runtime": prov.get("runtime"), "status": cell.status, "outcome": cell.outcome,
            "tainted": cell.tainted or None, "policy": report.policy_source,
        })
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for r in cell.rules:
            _case(suite, cell, r)
            n["tests"] += 1
            if r.outcome == "fail" or (r.outcome == "inconclusive" and r.blocking):
                n["failures"] += 1
            elif r.outcome == "error":
                n["errors"] += 1
            elif r.outcome in ("skipped", "inconclusive"):
                n["skipped"] += 1
        for k, v in n.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
