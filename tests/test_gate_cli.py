"""edgefarm gate / report / compare / merge through the real command line entry point."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.commands import gate_cmds
from harness.records import load_run

RESULTS = Path(__file__).parent / "fixtures" / "results"
POLICY = RESULTS / "policy.toml"


def gate(*args: str) -> int:
    if "--policy" not in args:
        args = (*args, "--policy", str(POLICY))
    # a directory holding no *.toml: no device profiles, so only the fixture policy's budgets apply
    return main(["gate", *args, "--profiles", str(RESULTS / "baseline")])


def test_register_adds_the_four_commands() -> None:
    parser = argparse.ArgumentParser()
    gate_cmds.register(parser.add_subparsers())
    for argv in (["gate", "R"], ["report", "R", "--format", "html"], ["compare", "A", "B"], ["merge", "O", "S"]):
        assert callable(parser.parse_args(argv).func)


def test_gate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate(str(RESULTS / "candidate_same"), "--baseline", str(RESULTS / "baseline")) == 0
    assert "PASS" in capsys.readouterr().out
    assert gate(str(RESULTS / "candidate_slow"), "--baseline", str(RESULTS / "baseline")) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "latency_ms_p95 vs baseline" in out
    assert gate(str(RESULTS / "mixed")) == 3  # a device_lost cell: the verdict is incomplete


def test_gate_usage_and_config_errors_exit_2_without_traceback(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert gate(str(tmp_path)) == 2
    assert "no results.jsonl" in capsys.readouterr().err
    bad = tmp_path / "p.toml"
    bad.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmaxx = 3\n')
    assert gate(str(RESULTS / "mixed"), "--policy", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "budget[0].maxx" in err and "Traceback" not in err


def test_gate_writes_every_report(tmp_path: Path) -> None:
    outs = {f: tmp_path / f"gate.{f}" for f in ("json", "xml", "md", "html")}
    rc = gate(str(RESULTS / "mixed"), "--baseline", str(RESULTS / "baseline"), "--json", str(outs["json"]),
              "--junit", str(outs["xml"]), "--md", str(outs["md"]), "--html", str(outs["html"]))
    assert rc == 3
    assert json.loads(outs["json"].read_text())["verdict"] == "fail"
    assert outs["xml"].read_text().startswith("<?xml")
    assert "edgefarm gate" in outs["md"].read_text()
    assert outs["html"].read_text().startswith("<!doctype html>")


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.md"
    assert main(["report", str(RESULTS / "mixed"), "--format", "md", "-o", str(out)]) == 0
    assert "What did not pass" in out.read_text()
    assert main(["report", str(RESULTS / "mixed"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "edgefarm.gate/1"


def test_compare_marks_significant_changes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_slow"), "--only-changed"]) == 1
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "latency_ms_p95" in ln]
    assert len(lines) == 7 and all(ln.startswith("+") for ln in lines)
    assert main(["compare", str(RESULTS / "baseline"), str(RESULTS / "candidate_same"), "--only-changed"]) == 0
    out = capsys.readouterr().out
    assert not [ln for ln in out.splitlines() if ln.startswith(("+", "-")) and "latency_ms_p" in ln]


def test_merge_dedupes_by_run_device_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nested = tmp_path / "shard_b_download" / "runs" / "nightly-42"
    nested.mkdir(parents=True)
    shutil.copy(RESULTS / "shard_b" / "results.jsonl", nested / "results.jsonl")
    out = tmp_path / "merged"
    assert main(["merge", str(out), str(RESULTS / "shard_a"), str(tmp_path / "shard_b_download")]) == 0
    assert "1 identical duplicates dropped" in capsys.readouterr().out
    recs = load_run(out)
    keys = [(r.run_id, r.device.name, r.artifact.name) for r in recs]
    assert len(keys) == len(set(keys)) == 7
    assert main(["merge", str(out), str(RESULTS / "shard_a")]) == 2  # never overwrites
    assert main(["merge", str(tmp_path / "m2"), str(tmp_path / "nothing")]) == 2


def test_merge_keeps_the_later_of_two_differing_copies(tmp_path: Path) -> None:
    recs = load_run(RESULTS / "shard_a")[:1]
    later = recs[0].to_dict()
    later["finished_at"] = "2026-11-23T23:59:59.000000Z"
    later["status"] = "crashed"
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    (tmp_path / "s1" / "results.jsonl").write_text(json.dumps(recs[0].to_dict()) + "\n")
    (tmp_path / "s2" / "results.jsonl").write_text(json.dumps(later) + "\n")
    n, same, conflicts = gate_cmds.merge_runs(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])
    assert (n, same, conflicts) == (1, 0, 1)
    assert load_run(tmp_path / "out")[0].status == "crashed"
