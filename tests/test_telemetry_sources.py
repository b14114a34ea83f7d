"""JSONL and OpenTelemetry readers: the same requests give the same windows; bad input is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.telemetry import contract as c
from harness.telemetry import traffic
from harness.telemetry.otel import read_windows
from harness.telemetry.store import open_store, read_jsonl
from harness.telemetry.window import bin_records

SHA = "c" * 64


def some_records(n_s: float = 40.0) -> list[c.RequestRecord]:
    spec = traffic.TrafficSpec("1.2.0", SHA, "pixel7", requests_per_h=36000.0, oom_rate=0.05)
    now = time.time()
    out = []
    for sl in traffic.slices(spec, 0.0, n_s, n_s, seed=5):
        out += [c.RequestRecord(now, *(getattr(r, k) for k in ("model_version", "model_sha256", "device_class",
                "outcome", "latency_s", "peak_memory_bytes", "tokens", "generation_s"))) for r in
                traffic.records(spec, sl)]
    return out


def test_otel_sdk_export_matches_jsonl(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    recs = some_records()
    reader = InMemoryMetricReader()
    views = [View(instrument_name="edgefarm.inference.latency",
                  aggregation=ExplicitBucketHistogramAggregation(list(c.LATENCY_BUCKETS_S))),
             View(instrument_name="edgefarm.inference.peak_memory",
                  aggregation=ExplicitBucketHistogramAggregation(list(c.MEMORY_BUCKETS_BYTES)))]
    res = Resource.create({"device.class": "pixel7", "model.version": "1.2.0", "model.sha256": SHA})
    meter = MeterProvider(metric_readers=[reader], resource=res, views=views).get_meter("app")
    lat = meter.create_histogram("edgefarm.inference.latency", unit="s")
    mem = meter.create_histogram("edgefarm.inference.peak_memory", unit="By")
    req = meter.create_counter("edgefarm.inference.requests")
    tok = meter.create_counter("edgefarm.generated_tokens")
    gen = meter.create_counter("edgefarm.generation", unit="s")
    lines = []
    half = len(recs) // 2
    for part in (recs[:half], recs[half:]):  # two cumulative exports: the reader must difference them
        for r in part:
            req.add(1, {"outcome": r.outcome})
            if r.latency_s is not None:
                lat.record(r.latency_s)
            if r.peak_memory_bytes is not None:
                mem.record(r.peak_memory_bytes)
            if r.tokens is not None and r.generation_s is not None:
                tok.add(r.tokens)
                gen.add(r.generation_s)
        data = reader.get_metrics_data()
        assert data is not None
        lines.append(MessageToJson(encode_metrics(data), indent=None))
    (tmp_path / "otel.jsonl").write_text("\n".join(lines) + "\n")
    from_otel = read_windows(tmp_path / "otel.jsonl", 86400.0)
    from_jsonl = bin_records(recs, 86400.0)
    assert len(from_otel) == len(from_jsonl) == 1
    a, b = from_otel[0], from_jsonl[0]
    assert a.latency_counts == b.latency_counts and a.memory_counts == b.memory_counts
    assert a.requests == b.requests and a.requests["oom"] > 0
    assert a.tokens == b.tokens and a.generation_s == pytest.approx(b.generation_s, rel=1e-9)


def test_otel_foreign_buckets_are_refused(tmp_path: Path) -> None:
    doc = {"resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [{"metrics": [{
        "name": "edgefarm_inference_latency_seconds", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in
                           (("model_version", "1"), ("model_sha256", SHA), ("device_class", "x"))],
            "timeUnixNano": "1700000000000000000", "startTimeUnixNano": "1690000000000000000",
            "bucketCounts": ["1", "2"], "explicitBounds": [0.5], "count": "3"}]}}]}]}]}
    (tmp_path / "o.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="bucket bounds differ"):
        read_windows(tmp_path / "o.json", 3600)


def test_jsonl_round_trip_and_idempotent_import(tmp_path: Path) -> None:
    recs = some_records(20.0)
    lines = [json.dumps(c.request_line(r)) for r in recs]
    lines.append(json.dumps(c.sample_line(c.SampleRecord(time.time(), "1.2.0", SHA, "pixel7", "p1", "hi <b>"))))
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + '\n{"schema": "edgefarm.tel')  # torn last line
    back = read_jsonl(tmp_path / "f.jsonl")
    assert len(back) == len(recs) + 1
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "harness.cli", "telemetry", "--jsonl", str(tmp_path / "f.jsonl"),
                            "--window", "1d", "--out", str(tmp_path / "s")], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
    store = open_store(tmp_path / "s")
    (w,) = store.windows("1.2.0")
    assert w.total_requests == len(recs)
    assert [s.output for s in store.samples(SHA)] == ["hi <b>"]


@pytest.mark.parametrize("line, words", [
    ('{"schema": "edgefarm.telemetry/2", "kind": "request"}', "schema"),
    ('{"schema": "edgefarm.telemetry/1", "kind": "request", "time": "2026-01-01T00:00:00Z", "model_version": "1",'
     f' "model_sha256": "{SHA}", "device_class": "User 42 Phone", "outcome": "ok", "latency_s": 1}}', "device_class"),
    ('{"schema": "edgefarm.telemetry/1", "kind": "request", "time": "yesterday", "model_version": "1",'
     f' "model_sha256": "{SHA}", "device_class": "a", "outcome": "ok", "latency_s": 1}}', "time"),
    ('{"schema": "edgefarm.telemetry/1", "kind": "request", "time": 5, "model_version": "1",'
     f' "model_sha256": "{SHA}", "device_class": "a", "outcome": "ok", "latency_s": -1}}', "latency_s"),
    ('{"schema": "edgefarm.telemetry/1", "kind": "request", "time": 5, "model_version": "1", "prompt": "x",'
     f' "model_sha256": "{SHA}", "device_class": "a", "outcome": "ok", "latency_s": 1}}', "unknown field 'prompt'"),
])
def test_bad_jsonl_names_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(line + "\n\n")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "telemetry", "--jsonl", str(p), "--out",
                        str(tmp_path / "s")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"{p}:1:" in r.stderr and words in r.stderr and "Traceback" not in r.stderr
