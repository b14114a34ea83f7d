"""One GateReport, four printers: JSON against its schema, JUnit structure and provenance, Markdown, escaping."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from harness.gate import GateReport, evaluate, load_policy
from harness.records import load_run
from harness.reports import render
from harness.reports.html import script_json
from harness.reports.json_report import SCHEMA_PATH

RESULTS = Path(__file__).parent / "fixtures" / "results"
POLICY = RESULTS / "policy.toml"
PAYLOADS = ("<script>document.title='pwned'</script>", "<img src=x onerror=")


@pytest.fixture(scope="module")
def mixed() -> GateReport:
    return evaluate(load_run(RESULTS / "mixed"), load_policy(POLICY), baseline=load_run(RESULTS / "baseline"),
                    run="mixed", baseline_run="baseline")


@pytest.fixture(scope="module")
def hostile() -> GateReport:
    return evaluate(load_run(RESULTS / "hostile"), load_policy())


def test_json_matches_its_published_schema(mixed: GateReport, hostile: GateReport) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for rep in (mixed, hostile, evaluate(load_run(RESULTS / "candidate_slow"), load_policy(),
                                         baseline=load_run(RESULTS / "baseline"))):
        doc = json.loads(render(rep, "json"))
        jsonschema.validate(doc, schema)
    assert doc["schema"] == "edgefarm.gate/1"


def test_json_carries_the_verdict_and_every_rule(mixed: GateReport) -> None:
    doc = json.loads(render(mixed, "json"))
    assert doc["verdict"] == "fail" and doc["exit_code"] == 3  # a device_lost cell (harness/errors.py)
    assert sum(len(c["rules"]) for c in doc["cells"]) == sum(doc["counts"].values())
    oom = next(c for c in doc["cells"] if c["status"] == "oom")
    assert oom["rules"][0]["error_kind"] == "oom" and oom["rules"][0]["value"] == 3071.5
    straddle = [r for c in doc["cells"] for r in c["rules"] if r["more_samples"]]
    assert straddle and all(r["outcome"] == "inconclusive" for r in straddle)


def test_junit_one_testcase_per_rule_with_provenance(mixed: GateReport) -> None:
    root = ET.fromstring(render(mixed, "junit"))
    suites = root.findall("testsuite")
    assert len(suites) == len(mixed.cells)
    assert int(root.get("tests", "0")) == sum(len(c.rules) for c in mixed.cells)
    for suite, cell in zip(suites, mixed.cells):
        assert len(suite.findall("testcase")) == len(cell.rules)
        props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
        assert props["artifact_sha256"] == cell.provenance["artifact_sha256"]
        assert json.loads(props["device_fingerprint"] or "{}") == cell.provenance["device_fingerprint"]
        assert props["harness_version"] and props["gate_harness_version"]
    kinds = {c.find("failure").get("type") for c in root.iter("testcase") if c.find("failure") is not None}
    assert {"oom", "inconclusive"} <= kinds
    errors = [c.find("error").get("type") for c in root.iter("testcase") if c.find("error") is not None]
    assert sorted(errors) == ["crashed", "device_lost", "timeout"]
    assert int(root.get("failures", "0")) >= 2 and int(root.get("skipped", "0")) >= 1


def test_markdown_has_matrix_and_what_blocks(mixed: GateReport) -> None:
    md = render(mixed, "md")
    assert md.startswith("## edgefarm gate: ❌ FAIL")
    assert "| artifact | local | pixel7 | rpi5 |" in md
    assert "device&#95;lost" in md and "3072 MiB" in md


def test_every_printer_escapes_hostile_strings(hostile: GateReport) -> None:
    assert any("<script>" in c.device for c in hostile.cells)
    md, html, xml = render(hostile, "md"), render(hostile, "html"), render(hostile, "junit")
    for p in PAYLOADS:
        assert p not in md and p not in html
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    ET.fromstring(xml)  # still well-formed XML
    assert json.loads(render(hostile, "json"))["cells"]  # and valid JSON
    assert html.count("<script") == 2  # the data block and the page's own script, nothing else


def test_script_json_cannot_close_its_script() -> None:
    s = script_json({"device": "</script><script>alert(1)</script>&<!--"})
    assert "<" not in s and ">" not in s and "&" not in s
    assert json.loads(s)["device"].startswith("</script>")


def test_html_is_self_contained(mixed: GateReport) -> None:
    html = render(mixed, "html")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("<svg") >= 2 and 'class="cell o-fail"' in html


def test_html_for_a_clean_run(tmp_path: Path) -> None:
    rep = evaluate(load_run(RESULTS / "candidate_same"), load_policy(), baseline=load_run(RESULTS / "baseline"))
    html = render(rep, "html")
    matrix = html.split('<table class="matrix">')[1].split("</table>")[0]
    assert '<header class="banner o-pass">' in html and "o-fail" not in matrix and "o-pass" in matrix


def test_control_characters_from_a_device_keep_junit_well_formed() -> None:
    from synthetic import make_record

    rec = make_record(status="error", samples=None, device="dev\x1b[31mred", message="boom \x00\x07 \ufffe end")
    rep = evaluate([rec], load_policy())
    root = ET.fromstring(render(rep, "junit"))
    err = next(root.iter("error"))
    assert "boom" in (err.get("message") or "") and "\x00" not in (err.text or "")
    json.loads(render(rep, "json"))
