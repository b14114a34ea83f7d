"""The result record round-trips through JSONL, matches its published schema, and survives torn writes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness.errors import UserError
from harness.records import ArtifactInfo, DeviceInfo, JsonlWriter, Metric, Record, load_run

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
        provenance={"harness_version": "0.1.0"},
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


def test_torn_last_line_is_skipped_but_middle_corruption_is_an_error(tmp_path: Path) -> None:
    good = json.dumps(make().to_dict())
    (tmp_path / "results.jsonl").write_text(good + "\n" + good[: len(good) // 2])
    assert len(load_run(tmp_path)) == 1
    (tmp_path / "results.jsonl").write_text(good[:20] + "\n" + good + "\n")
    with pytest.raises(UserError, match=r"results.jsonl:1: not valid JSON"):
        load_run(tmp_path)


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no results.jsonl"):
        load_run(tmp_path)
