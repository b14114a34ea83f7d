"""The result record round-trips through JSONL, matches its published schema, and survives torn writes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness.errors import UserError
from harness.provenance import Provenance
from harness.record_check import RecordError
from harness.records import (ArtifactInfo, DeviceInfo, JsonlWriter, Metric, Record, cell_labels, load_run,
                             read_results, record_labels)

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "harness/schemas/result.schema.json").read_text())


def make(i: int = 0) -> Record:
    return Record(
        run_id="r1", status="ok", started_at="2026-11-23T18:00:00.000000Z", finished_at="2026-11-23T18:00:01.000000Z",
        device=DeviceInfo(name="local", transport="local", device_class="laptop", ram_mib=4096,
                          fingerprint={"cpu_model": "x"}),
        artifact=ArtifactInfo(path="/a/m.onnx", name=f"m{i}.onnx", format="onnx", size_bytes=10, sha256="0" * 64),
        metrics={"latency_ms_p95": Metric(value=3.5, unit="ms", n=100, ci=(3.1, 3.9), confidence=0.95),
                 "latency_ms_p99": Metric(value=None, unit="ms", n=100, note="insufficient samples")},
        samples={"latency_ms": [3.0, 3.5, 4.0]},
        provenance=Provenance(harness_version="0.1.0"),
    )


def test_roundtrip_and_schema(tmp_path: Path) -> None:
    with JsonlWriter(tmp_path / "results.jsonl") as w:
        w.write(make(0))
        w.write(make(1))
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), SCHEMA)
    recs = load_run(tmp_path)
    assert [r.artifact.name for r in recs] == ["m0.onnx", "m1.onnx"]
    assert recs[0].metrics["latency_ms_p95"].ci == (3.1, 3.9)
    assert recs[0].to_dict() == make(0).to_dict()


def test_schema_rejects_bad_status() -> None:
    d = make().to_dict()
    d["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, SCHEMA)


def test_every_bad_line_is_named_with_file_line_and_key(tmp_path: Path) -> None:
    good = json.dumps(make().to_dict())
    wrong_type = make().to_dict()
    wrong_type["metrics"]["latency_ms_p95"]["value"] = "3.5"
    lines = [good.encode(), b"null", b"[1, 2]", b'{"schema": "edgefarm.result/1", "run_id": "\xff"}',
             json.dumps(wrong_type).encode(), b"[" * 100_000 + b"]" * 100_000, good[: len(good) // 2].encode()]
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join(lines))
    records, bad = read_results(path)
    assert len(records) == 1
    got = [(b.line, b.key, b.problem) for b in bad]
    assert got[0] == (2, None, "expected a JSON object, got null")
    assert got[1] == (3, None, "expected a JSON object, got array")
    assert got[2][:2] == (4, None) and got[2][2].startswith("not UTF-8 text")
    assert got[3] == (5, "metrics.latency_ms_p95.value", "expected a number or null, got string '3.5'")
    assert got[4] == (6, None, "JSON nested too deeply to read")
    assert got[5][0] == 7 and "torn" in got[5][2]
    assert str(bad[3]) == f"{path}:5: key 'metrics.latency_ms_p95.value': expected a number or null, got string '3.5'"
    assert (bad[3].device, bad[3].artifact) == ("local", "m0.onnx")  # still says what the line was about
    with pytest.raises(UserError, match=r"results.jsonl:2: expected a JSON object, got null \(and 5 more"):
        load_run(tmp_path)  # strict readers (merge, compare, the pytest plugin) name the first


def test_cell_is_device_and_sha256_and_labels_tell_same_names_apart() -> None:
    a, b = make(), make()
    a.artifact.path, b.artifact.path, b.artifact.sha256 = "/x/a/m0.onnx", "/x/b/m0.onnx", "1" * 64
    assert a.key == b.key and a.cell != b.cell
    assert record_labels([a, b]) == {"0" * 64: "a/m0.onnx", "1" * 64: "b/m0.onnx"}
    assert record_labels([a]) == {"0" * 64: "m0.onnx"}  # no clash: the plain name
    same_dir = cell_labels([("0" * 64, "m.onnx", "m.onnx"), ("1" * 64, "m.onnx", "m.onnx")])
    assert same_dir == {"0" * 64: "m.onnx@00000000", "1" * 64: "m.onnx@11111111"}


def test_record_check_follows_the_published_schema() -> None:
    """What check_record accepts, the JSON schema accepts, key by key (one definition in two forms)."""
    d = make().to_dict()
    jsonschema.validate(d, SCHEMA)
    for mutate in (lambda x: x.update(status="fine"), lambda x: x["device"].update(ram_mib="4096"),
                   lambda x: x["artifact"].update(size_bytes=-1), lambda x: x["samples"].update(latency_ms=["1"]),
                   lambda x: x["metrics"]["latency_ms_p95"].update(ci=[1.0]), lambda x: x["device"].update(extra=1)):
        bad = json.loads(json.dumps(d))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)
        with pytest.raises(RecordError):
            Record.from_dict(bad)


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no results.jsonl"):
        load_run(tmp_path)


def test_provenance_is_typed_and_keeps_what_it_does_not_know() -> None:
    raw = {"harness_version": "0.9.0", "agent_sha256": "ab" * 32, "os_peak_rss_mib": 151.5,
           "push": {"bytes_sent": 10, "skipped": False, "seconds": 0.5, "remote_path": "/tmp/x.onnx"},
           "memory_cap": {"kind": "cgroup", "limit_mib": 160, "group_peak_mib": 159.9},
           "commit": "deadbeef", "future_key": {"nested": [1, 2]}}
    p = Provenance.from_dict(raw)
    assert p.push is not None and p.push.bytes_sent == 10 and p.push.remote_path == "/tmp/x.onnx"
    assert p.memory_cap is not None and p.memory_cap.limit_mib == 160.0 and p.memory_cap.group_peak_mib == 159.9
    assert p.os_peak_rss_mib == 151.5 and p.extra == {"commit": "deadbeef", "future_key": {"nested": [1, 2]}}
    again = p.to_dict()
    assert Provenance.from_dict(again) == p
    assert again["future_key"] == {"nested": [1, 2]} and again["push"]["bytes_sent"] == 10
    # a known key in a shape this harness cannot read is written back as it came, not dropped
    odd = Provenance.from_dict({"harness_version": "1", "push": {"bytes_sent": "lots"}, "stopping": "max_s"})
    assert odd.push is None and odd.to_dict()["push"] == {"bytes_sent": "lots"}
    assert odd.stopping is None and odd.to_dict()["stopping"] == "max_s"
