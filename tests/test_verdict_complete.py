"""No false green: the gate accounts for every planned cell and every results line (issue 11), driven through
the real `edgefarm` command in a subprocess. Each test checks the exit code, the line that says why, and that
the gate left results.jsonl as it was (every finished record still there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fault_helpers import FIXTURE_POLICY, FIXTURE_RESULTS, cli, gate_fixture

RESULTS, POLICY = FIXTURE_RESULTS, FIXTURE_POLICY
gate = gate_fixture


def records(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (RESULTS / name / "results.jsonl").read_text().splitlines()]


def manifest(recs: list[dict[str, Any]], extra: list[dict[str, str]] = (), **over: Any) -> dict[str, Any]:  # type: ignore[assignment]
    arts = {r["artifact"]["sha256"]: r["artifact"] for r in recs}
    d = {"schema": "edgefarm.run/1", "run_id": "cand-same", "started_at": "2026-11-23T18:00:00Z",
         "finished_at": "2026-11-23T18:10:00Z", "harness_version": "0.1.0",
         "devices": sorted({r["device"]["name"] for r in recs}),
         "artifacts": [{"name": a["name"], "label": a["name"], "path": a["path"], "sha256": s,
                        "size_bytes": a["size_bytes"], "format": a["format"]} for s, a in arts.items()],
         "planned": [{"device": r["device"]["name"], "sha256": r["artifact"]["sha256"]} for r in recs] + list(extra),
         "interrupted": None, "exit_code": 0}
    d.update(over)
    return d


def run_dir(tmp: Path, recs: list[dict[str, Any]], lines: list[bytes] = (), man: dict[str, Any] | None = None  # type: ignore[assignment]
            ) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    body = b"".join(json.dumps(r).encode() + b"\n" for r in recs) + b"".join(x + b"\n" for x in lines)
    (tmp / "results.jsonl").write_bytes(body)
    if man is not None:
        (tmp / "run.json").write_text(json.dumps(man))
    return tmp


def unchanged(d: Path, before: bytes) -> None:
    assert (d / "results.jsonl").read_bytes() == before


def test_a_complete_run_with_its_manifest_passes(tmp_path: Path) -> None:
    recs = records("candidate_same")
    d = run_dir(tmp_path / "run", recs, man=manifest(recs))
    r = gate(d, "--baseline", str(RESULTS / "baseline"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("PASS") and "no run.json" not in r.stdout


def test_a_planned_cell_with_no_record_is_an_error_and_exit_3(tmp_path: Path) -> None:
    recs = records("candidate_same")
    ghost = {"device": "pixel7", "sha256": recs[-1]["artifact"]["sha256"]}  # tiny-llm was planned on pixel7 too
    d = run_dir(tmp_path / "run", recs, man=manifest(recs, [ghost]))
    before = (d / "results.jsonl").read_bytes()
    r = gate(d, "--baseline", str(RESULTS / "baseline"), "--json", str(tmp_path / "g.json"))
    assert r.returncode == 3, r.stdout + r.stderr
    assert not r.stdout.startswith("PASS") and "Traceback" not in r.stderr
    doc = json.loads((tmp_path / "g.json").read_text())
    miss = [c for c in doc["cells"] if c["status"] == "missing"]
    assert [(c["device"], c["artifact"], c["outcome"]) for c in miss] == [("pixel7", "tiny-llm", "error")]
    assert "planned in run.json but results.jsonl has no record for it" in miss[0]["rules"][0]["reason"]
    assert doc["exit_code"] == 3 and doc["verdict"] == "error"
    unchanged(d, before)


def test_a_torn_line_is_named_and_its_planned_cell_is_missing(tmp_path: Path) -> None:
    recs = records("candidate_same")
    torn = json.dumps(recs[-1]).encode()[:300]
    d = run_dir(tmp_path / "run", recs[:-1], [torn], man=manifest(recs))
    before = (d / "results.jsonl").read_bytes()
    r = gate(d)
    assert r.returncode == 3, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if "results.jsonl:7" in x)
    assert "not valid JSON" in line and "torn" in line
    unchanged(d, before)


def test_without_a_manifest_a_bad_line_is_still_an_error_cell(tmp_path: Path) -> None:
    recs = records("candidate_same")
    d = run_dir(tmp_path / "run", recs, [b"null"])
    r = gate(d, "--baseline", str(RESULTS / "baseline"))
    assert r.returncode == 1, r.stdout + r.stderr  # an error cell blocks; nothing says a device was lost
    assert "results.jsonl:8: expected a JSON object, got null" in r.stdout
    assert "no run.json beside the results" in r.stdout


def _hostile_lines(recs: list[dict[str, Any]]) -> list[bytes]:
    wrong = json.loads(json.dumps(recs[0]))
    wrong["metrics"]["latency_ms_p95"]["value"] = "12.5"
    return [b"null", b"[1, 2]", b'{"schema": "edgefarm.result/1", "run_id": "\xff\xfe"}', json.dumps(wrong).encode()]


def test_null_list_non_utf8_and_string_numbers_are_named_in_gate_report_compare_merge(tmp_path: Path) -> None:
    recs = records("candidate_same")
    d = run_dir(tmp_path / "run", recs, _hostile_lines(recs))
    before = (d / "results.jsonl").read_bytes()
    r = gate(d)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    for want in ("results.jsonl:8: expected a JSON object, got null", "results.jsonl:9: expected a JSON object, got array",
                 "results.jsonl:10: not UTF-8 text",
                 "results.jsonl:11: key 'metrics.latency_ms_p95.value': expected a number or null, got string '12.5'"):
        assert want in r.stdout, want
    md = cli("report", str(d), "--format", "md", "--policy", str(POLICY), "--profiles", str(RESULTS / "baseline"))
    assert md.returncode == 0 and "results.jsonl:11" in md.stdout and "Traceback" not in md.stderr
    for args in (["compare", str(RESULTS / "baseline"), str(d)], ["merge", str(tmp_path / "m"), str(d)]):
        c = cli(*args)
        assert c.returncode == 2, (args, c.stderr)
        assert c.stderr.strip() == (f"edgefarm: error: {d / 'results.jsonl'}:8: expected a JSON object, got null "
                                    "(and 3 more bad lines)")
    unchanged(d, before)


def test_an_old_run_dir_without_planned_cells_still_loads_and_says_what_it_assumed(tmp_path: Path) -> None:
    recs = records("candidate_same")
    old = {"run_id": "cand-same", "started_at": "2026-11-23T18:00:00Z", "finished_at": "2026-11-23T18:10:00Z",
           "devices": ["local", "pixel7", "rpi5"], "artifacts": ["student-int8", "student-fp16", "tiny-llm"]}
    d = run_dir(tmp_path / "run", recs, man=old)
    r = gate(d, "--baseline", str(RESULTS / "baseline"))
    assert "assumed planned, matched by artifact file name" in r.stdout
    # tiny-llm ran on local only, so the old manifest's full matrix has two holes: said, and exit 3
    assert r.returncode == 3
    assert r.stdout.count("planned in run.json but results.jsonl has no record") == 2


def test_same_named_files_are_two_cells_with_labels_and_baseline_matching_says_how(tmp_path: Path) -> None:
    recs = [r for r in records("candidate_same") if r["device"]["name"] == "local"][:1]
    a, b = json.loads(json.dumps(recs[0])), json.loads(json.dumps(recs[0]))
    a["artifact"].update(name="model.onnx", path="/w/a/model.onnx")
    b["artifact"].update(name="model.onnx", path="/w/b/model.onnx", sha256="b" * 64)
    d = run_dir(tmp_path / "run", [a, b])
    base = run_dir(tmp_path / "base", [a])  # the same bytes as a; b's baseline is found by its name
    pol = _policy(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmax = 250.0\n'
                            '[[relative]]\nmetric = "latency_ms_p95"\nmax_worse_pct = 5.0\n')
    r = gate(d, "--baseline", str(base), "--json", str(tmp_path / "g.json"), policy=pol)
    cells = json.loads((tmp_path / "g.json").read_text())["cells"]
    assert [(c["artifact"], c["sha256"][:1]) for c in cells] == [("a/model.onnx", a["artifact"]["sha256"][:1]),
                                                                ("b/model.onnx", "b")]
    assert "baseline record matched by the same artifact bytes (sha256)" in cells[0]["notes"]
    assert "baseline record matched by file name 'model.onnx' (sha256 differs)" in cells[1]["notes"]
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr


def _policy(tmp: Path, text: str) -> Path:
    p = tmp / "policy.toml"
    p.write_text("schema = 1\nprofile_budgets = false\n" + text)
    return p


def test_an_empty_baseline_skips_each_relative_rule_with_the_reason_or_errors_by_policy(tmp_path: Path) -> None:
    recs = records("candidate_same")
    d = run_dir(tmp_path / "run", recs, man=manifest(recs))
    empty = run_dir(tmp_path / "empty", [])
    rel = '[[relative]]\nmetric = "latency_ms_p95"\nmax_worse_pct = 5.0\n'
    r = gate(d, "--baseline", str(empty), "--json", str(tmp_path / "g.json"), policy=_policy(tmp_path, rel))
    assert "edgefarm: warning: BASELINE IS EMPTY" in r.stderr
    rules = [x for c in json.loads((tmp_path / "g.json").read_text())["cells"] for x in c["rules"]]
    assert len(rules) == len(recs) and all(x["outcome"] == "skipped" for x in rules)
    assert all(x["reason"].startswith("no baseline record for this device and artifact") for x in rules)
    assert r.returncode == 1  # nothing was judged: not a pass
    strict = _policy(tmp_path, 'missing_baseline = "error"\n' + rel)
    r = gate(d, "--baseline", str(empty), policy=strict)
    assert r.returncode == 1 and not r.stdout.startswith("PASS")
    assert 'the policy says missing_baseline = "error"' in r.stdout


def test_an_unrelated_baseline_is_said(tmp_path: Path) -> None:
    recs = records("candidate_same")
    other = [json.loads(json.dumps(x)) for x in recs]
    for o in other:
        o["device"]["name"] = "elsewhere-" + o["device"]["name"]
    base = run_dir(tmp_path / "other", other)
    d = run_dir(tmp_path / "run", recs)
    r = gate(d, "--baseline", str(base), "--json", str(tmp_path / "g.json"))
    assert "edgefarm: warning: BASELINE MATCHES NOTHING" in r.stderr
    assert r.returncode == 0  # the budgets passed; each relative rule says it was skipped, and why
    rel = [x for c in json.loads((tmp_path / "g.json").read_text())["cells"] for x in c["rules"]
           if x["kind"] == "relative"]
    assert len(rel) == 4 * len(recs)  # the fixture policy's four relative rules on every cell
    assert all(x["outcome"] == "skipped" and "no baseline record for this device" in x["reason"] for x in rel)
    strict = tmp_path / "strict.toml"
    strict.write_text(POLICY.read_text().replace('errors = "fail"', 'errors = "fail"\nmissing_baseline = "error"'))
    r = gate(d, "--baseline", str(base), policy=strict)
    assert r.returncode == 1 and r.stdout.startswith("ERROR")


def test_an_empty_policy_is_a_loud_note_on_the_terminal_and_in_every_report(tmp_path: Path) -> None:
    recs = records("candidate_same")
    d = run_dir(tmp_path / "run", recs, man=manifest(recs))
    empty = _policy(tmp_path, "")
    r = gate(d, "--md", str(tmp_path / "r.md"), "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
             policy=empty)
    assert f"edgefarm: warning: POLICY HAS NO RULES: {empty}" in r.stderr
    assert "POLICY HAS NO RULES" in r.stdout
    for f in ("r.md", "r.json", "r.html"):
        assert "POLICY HAS NO RULES" in (tmp_path / f).read_text(), f
    assert r.returncode == 1  # judged nothing: never a pass


def test_a_lost_device_never_passes_even_when_errors_are_tolerated(tmp_path: Path) -> None:
    recs = [r for r in records("mixed") if r["status"] in ("ok", "device_lost")]
    d = run_dir(tmp_path / "run", recs)
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(POLICY.read_text().replace('errors = "fail"', 'errors = "pass"')
                       .replace('inconclusive = "fail"', 'inconclusive = "pass"'))
    r = gate(d, policy=lenient)
    assert r.returncode == 3 and not r.stdout.startswith("PASS"), r.stdout


def test_control_characters_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    recs = records("candidate_same")[:1]
    evil = json.loads(json.dumps(recs[0]))
    evil["artifact"]["name"] = "m\x1b[2J\x1b]0;pwned\x07.onnx"
    evil["status"], evil["message"] = "error", "agent said \x1b[31mRED\x1b[0m\r\x9bover"
    d = run_dir(tmp_path / "run", [evil])
    r = gate(d, policy=_policy(tmp_path, '[[budget]]\nmetric = "latency_ms_p95"\nmax = 250.0\n'))
    out = r.stdout + r.stderr
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\x9b" not in out
    assert "m\\x1b[2J\\x1b]0;pwned\\x07.onnx" in r.stdout and "\\u009bover" in r.stdout
    shutil.rmtree(d)


def test_merge_unites_the_shards_checklists(tmp_path: Path) -> None:
    recs = records("candidate_same")
    local = [r for r in recs if r["device"]["name"] == "local"]
    others = [r for r in recs if r["device"]["name"] != "local"]
    a = run_dir(tmp_path / "a", local, man=manifest(local))
    b = run_dir(tmp_path / "b", others[:-1], man=manifest(others))  # shard b lost its last cell
    m = cli("merge", str(tmp_path / "m"), str(a), str(b))
    assert m.returncode == 0, m.stderr
    planned = json.loads((tmp_path / "m" / "run.json").read_text())["planned"]
    assert len(planned) == len(recs)
    r = gate(tmp_path / "m", "--baseline", str(RESULTS / "baseline"))
    assert r.returncode == 3 and "planned in run.json but results.jsonl has no record" in r.stdout
    before = (a / "results.jsonl").read_bytes()
    (a / "run.json").unlink()
    m = cli("merge", str(tmp_path / "m2"), str(a), str(b))
    assert m.returncode == 0 and "has no run.json: the merged run has no checklist" in m.stderr
    assert not (tmp_path / "m2" / "run.json").exists()
    unchanged(a, before)
