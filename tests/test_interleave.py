"""Interleaved A/B on the device (`edgefarm run --artifact NEW --baseline-artifact OLD`): the real CLI and agent."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from agent_helpers import onnx_students
from fault_helpers import edgefarm, one_line_error, procs_mentioning, result_lines, start, wait_for
from harness.interleave import abba


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two students of one architecture, weights from two seeds: the same work in different bytes (an A/A)."""
    new, old = onnx_students(tmp_path_factory.mktemp("twins"), ("new.onnx", 1, 1), ("old.onnx", 1, 0))
    return new, old


def test_abba_order_keeps_each_pair_adjacent() -> None:
    order = abba(4)
    assert order == ["candidate", "baseline", "baseline", "candidate"] * 2
    cand = [i for i, r in enumerate(order) if r == "candidate"]
    base = [i for i, r in enumerate(order) if r == "baseline"]
    assert all(abs(c - b) == 1 for c, b in zip(cand, base))  # the j-th of each role are neighbours


def test_an_interleaved_run_gives_paired_records_and_the_gate_judges_the_pair(
        fast_profiles: Path, twins: tuple[Path, Path], tmp_path: Path) -> None:
    new, old = twins
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(new),
                   "--baseline-artifact", str(old), "--blocks", "3", "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    recs = {r["artifact"]["name"]: r for r in result_lines(out)}
    assert set(recs) == {"new.onnx", "old.onnx"}
    cand, base = recs["new.onnx"], recs["old.onnx"]
    assert cand["status"] == base["status"] == "ok"
    assert cand["pairing"]["session"] == base["pairing"]["session"]
    assert (cand["pairing"]["role"], base["pairing"]["role"]) == ("candidate", "baseline")
    assert cand["pairing"]["partner_sha256"] == base["artifact"]["sha256"]
    assert cand["pairing"]["blocks_each"] == 3
    # blocks in ABBA order: A at 0, 3, 4; B at 1, 2, 5; every block a launch with its own samples
    assert [b["index"] for b in cand["blocks"]] == [0, 3, 4]
    assert [b["index"] for b in base["blocks"]] == [1, 2, 5]
    assert sum(b["n"] for b in cand["blocks"]) == len(cand["samples"]["latency_ms"])
    assert all(b["stats"]["latency_ms_p50"] > 0 for b in cand["blocks"] + base["blocks"])
    assert [x["status"] for x in cand["provenance"]["launches"]] == ["ok"] * 3
    planned = json.loads((out / "run.json").read_text())["planned"]
    assert len(planned) == 2  # both cells are in the manifest: a lost one is never a smaller matrix

    g = edgefarm(tmp_path, "gate", str(out), "--profiles", str(fast_profiles), "--json", str(tmp_path / "g.json"))
    assert g.returncode in (0, 1), g.stderr  # real timings on a shared machine: the verdict itself may vary
    cells = {c["artifact"]: c for c in json.loads((tmp_path / "g.json").read_text())["cells"]}
    rel = [r for r in cells["new.onnx"]["rules"] if r["kind"] == "relative"]
    assert rel and all("adjacent A/B block pairs of one interleaved session" in r["reason"] for r in rel
                       if r["outcome"] != "skipped")
    assert any(r["change_ci_pct"] is not None for r in rel)  # the block ratio's interval
    assert cells["new.onnx"]["provenance"]["pairing"]["role"] == "candidate"
    ref = cells["old.onnx"]["rules"]
    assert [r["rule"] for r in ref] == ["reference"] and ref[0]["outcome"] == "skipped"
    assert not any("no baseline run given" in n for n in json.loads((tmp_path / "g.json").read_text())["notes"])
    md = edgefarm(tmp_path, "report", str(out), "--format", "md", "--profiles", str(fast_profiles))
    assert "interleaved A/B on local: new.onnx against old.onnx" in md.stdout  # the pairing, in every printer


def test_requests_interleaving_alternates_within_each_launch(
        fast_profiles: Path, twins: tuple[Path, Path], tmp_path: Path) -> None:
    """--interleave requests: one launch per block pair, both models loaded, their requests alternating; the
    records keep their own bytes and samples, memory figures come from each artifact's own warmup launch."""
    new, old = twins
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(new),
                   "--baseline-artifact", str(old), "--blocks", "3", "--interleave", "requests", "--out", str(out),
                   "-q")
    assert res.returncode == 0, res.stderr
    recs = {r["artifact"]["name"]: r for r in result_lines(out)}
    cand, base = recs["new.onnx"], recs["old.onnx"]
    assert cand["status"] == base["status"] == "ok"
    assert cand["pairing"]["unit"] == base["pairing"]["unit"] == "requests"
    # launch j holds block j of both: indexes 2j and 2j+1, the first-loaded role alternating with j
    assert sorted(b["index"] for b in cand["blocks"] + base["blocks"]) == list(range(6))
    assert [b["index"] for b in cand["blocks"]] == [0, 3, 4]
    for rec, other in ((cand, base), (old_rec := base, cand)):
        assert rec["provenance"]["artifact_sha256_loaded"] == rec["artifact"]["sha256"]  # its own bytes
        alt = rec["workload"]["alternate"]
        assert alt is not None and alt["every"] == 1
        assert alt["artifact_sha256"] in (rec["artifact"]["sha256"], other["artifact"]["sha256"])
        assert "own (warmup) launch" in (rec["metrics"]["peak_rss_mib"]["note"] or "")
        assert "throughput_per_s" not in rec["metrics"] or rec["metrics"]["throughput_per_s"]["value"] is None
    # both models ran the same number of requests in each launch (turns of one request each)
    assert [b["n"] for b in cand["blocks"]] == [b["n"] for b in sorted(base["blocks"], key=lambda b: b["index"])]
    assert old_rec is base
    g = edgefarm(tmp_path, "gate", str(out), "--profiles", str(fast_profiles), "--json", str(tmp_path / "g.json"))
    assert g.returncode in (0, 1), g.stderr
    doc = json.loads((tmp_path / "g.json").read_text())
    assert any("requests alternating within each launch" in n for n in doc["notes"])
    cells = {c["artifact"]: c for c in doc["cells"]}
    assert cells["new.onnx"]["provenance"]["pairing"]["unit"] == "requests"


@pytest.mark.parametrize("case", ["same file", "same bytes", "missing", "two artifacts", "processes 0",
                                  "processes with pair", "blocks alone", "blocks 1", "interleave alone",
                                  "interleave bad"])
def test_bad_interleave_input_is_one_line_and_exit_2(twins: tuple[Path, Path], tmp_path: Path, case: str) -> None:
    new, old = twins
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(old.read_bytes())
    args = {
        "same file": ["--artifact", str(old), "--baseline-artifact", str(old)],
        "same bytes": ["--artifact", str(copy), "--baseline-artifact", str(old)],
        "missing": ["--artifact", str(new), "--baseline-artifact", str(tmp_path / "nope.onnx")],
        "two artifacts": ["--artifact", str(new), "--artifact", str(copy), "--baseline-artifact", str(old)],
        "processes 0": ["--artifact", str(new), "--processes", "0"],
        "processes with pair": ["--artifact", str(new), "--baseline-artifact", str(old), "--processes", "3"],
        "blocks alone": ["--artifact", str(new), "--blocks", "4"],
        "blocks 1": ["--artifact", str(new), "--baseline-artifact", str(old), "--blocks", "1"],
        "interleave alone": ["--artifact", str(new), "--interleave", "requests"],
        "interleave bad": ["--artifact", str(new), "--baseline-artifact", str(old), "--interleave", "tokens"],
    }[case]
    res = edgefarm(tmp_path, "run", *args, "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    want = {"same file": "same bytes", "same bytes": "same bytes", "missing": "nope.onnx",
            "two artifacts": "exactly one --artifact", "processes 0": "--processes",
            "processes with pair": "--blocks", "blocks alone": "--baseline-artifact", "blocks 1": "--blocks",
            "interleave alone": "--interleave needs --baseline-artifact", "interleave bad": "--interleave"}[case]
    assert want in line
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_sigint_mid_interleave_keeps_finished_blocks_and_exits_130(
        fast_profiles: Path, twins: tuple[Path, Path], tmp_path: Path) -> None:
    new, old = twins
    out = tmp_path / "run"
    proc = start(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(new), "--baseline-artifact",
                 str(old), "--blocks", "8", "--min-s", "4", "--max-s", "8", "--out", str(out), "-q")
    seen: set[int] = set()

    def launches() -> int:  # each launch runs one model process (`agents _child`) under the test's cache dir
        seen.update(pid for pid, cmd in procs_mentioning(str(tmp_path / "cache")) if "-m agents _child " in cmd)
        return len(seen)

    try:
        # 2 warmup launches, then block 0; the 4th launch means block 0 (the candidate's first) has finished
        wait_for("the second block's agent launch", lambda: launches() >= 4 or proc.poll() is not None, 240,
                 poll_s=0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    recs = {r["artifact"]["name"]: r for r in result_lines(out)}
    assert set(recs) == {"new.onnx", "old.onnx"}  # both cells keep their record
    cand = recs["new.onnx"]
    assert cand["status"] == "error" and "interrupted (SIGINT)" in cand["message"]
    assert len(cand["blocks"]) >= 1 and cand["samples"]["latency_ms"], (cand["message"], cand["provenance"])  # kept
    assert cand["pairing"]["partner_sha256"] == recs["old.onnx"]["artifact"]["sha256"]
    assert json.loads((out / "run.json").read_text())["interrupted"] == "SIGINT"
