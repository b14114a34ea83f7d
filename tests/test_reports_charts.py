"""Chart markup without a browser: scales, the LLM and thermal charts, the sweep's Pareto front."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate.model import Cell
from synthetic import make_record
from harness.records import Metric
from harness.reports.charts import cell_charts, memory_svg
from harness.reports.charts_device import pareto_svg, thermal_svg
from harness.reports.svg import Scale

AXIS = re.compile(r'<g class="([xy])-axis" data-label="([^"]+)" data-min="([^"]*)" data-max="([^"]*)" '
                  r'data-scale="(\w+)">')


def _cell(rec: Any, rules: list[Any] | None = None) -> Cell:
    lat = np.sort(np.asarray(rec.samples.get("latency_ms") or [], dtype=np.float64))
    return Cell(rec.device.name, rec.device.device_class, rec.artifact.name, rec.status, "pass", rules or [],
                record=rec, latency=lat if len(lat) else None)


def test_scales_and_ticks() -> None:
    log = Scale(0.03, 3.0, 0, 100, True)
    assert log(0.03) == 0 and abs(log(3.0) - 100) < 1e-9 and abs(log(0.3) - 50) < 1e-9
    assert log.ticks()[0] >= 0.03 and log.ticks()[-1] <= 3.0 and 0.1 in log.ticks() and 1.0 in log.ticks()
    lin = Scale(0.0, 58.3, 0, 100)
    t = lin.ticks()
    assert t[0] == 0 and t[-1] <= 58.3 and 3 <= len(t) <= 7
    assert Scale(float("nan"), 1.0, 0, 1).hi == 1.0  # a NaN from a record never reaches a coordinate


def test_llm_cell_has_inter_token_cdf_and_tokens_per_repetition() -> None:
    rec = make_record(artifact="t.gguf", artifact_format="gguf", samples=None)
    rng = np.random.default_rng(2)
    rec.samples = {"itl_ms": list(rng.gamma(20, 0.4, 300)), "prefill_tokens_per_s": [700.0, 640.0, 710.0, 690.0],
                   "decode_tokens_per_s": [120.0, 117.0, 125.0, 96.0]}
    rec.metrics["itl_ms_p50"] = Metric(8.0, "ms", 300, (7.8, 8.2), 0.95)
    rec.metrics["decode_tokens_per_s"] = Metric(114.5, "tok/s", 4)
    svg = cell_charts(_cell(rec))
    kinds = re.findall(r'data-chart="([^"]+)"', svg)
    assert kinds == ["cdf-itl_ms", "tokens-per-s", "memory"]
    rate = svg[svg.index('data-chart="tokens-per-s"'):]
    rate = rate[:rate.index("</figure>")]
    assert rate.count('class="rate-tg-dot"') == 4 and rate.count('class="rate-pp-dot"') == 4
    assert 'data-mark="mean-decode_tokens_per_s"' in rate and "mean-prefill" not in rate  # only claimed means
    itl = svg[:svg.index("</figure>")]
    assert 'data-mark="p50"' in itl and 'data-mark="p95"' not in itl


def test_memory_axis_is_scaled_to_the_data_not_to_the_device_ram() -> None:
    rec = make_record(peak_rss_mib=58.0, ram_mib=4096, samples=[1.0, 2.0, 3.0])
    rec.metrics["peak_rss_load_mib"] = Metric(58.0, "MiB")
    rec.metrics["peak_rss_inference_mib"] = Metric(41.0, "MiB")
    rec.phases = [{"name": "load", "t_start": 5.0, "t_end": 5.3}, {"name": "measure", "t_start": 5.3, "t_end": 9.0}]
    svg = memory_svg(_cell(rec))
    y = [a for a in AXIS.findall(svg) if a[0] == "y"][0]
    assert 58.0 <= float(y[3]) < 100.0, y
    assert 'data-mark="device-RAM"' not in svg and "device RAM 4096 MiB (71x the peak)" in svg
    assert 'data-mark="peak" data-value="58"' in svg and svg.count('class="hwm"') == 2
    x = [a for a in AXIS.findall(svg) if a[0] == "x"][0]
    assert x[1] == "time since load started (s)" and float(x[2]) == 0.0 and float(x[3]) >= 4.0


def test_thermal_traces_shade_slow_spans() -> None:
    rec = make_record(samples=[1.0, 2.0])
    trace = [{"t": 100.0 + i, "temp_c": 50.0 + 3 * i, "cur_khz": {"policy0": 2_400_000 if i < 5 else 1_200_000}}
             for i in range(10)]
    rec.thermal = {"available": True, "poll_s": 1.0, "idle_c": 48.0, "trace": trace,
                   "cpufreq": [{"policy": "policy0", "hw_max_khz": 2_400_000}], "throttled": True,
                   "throttle_reasons": ["CPU frequency below 80% of its maximum in 5 of 10 samples"]}
    svg = thermal_svg(rec)
    assert re.findall(r'data-chart="([^"]+)"', svg) == ["thermal", "cpufreq"]
    spans = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*data-span="throttled"', svg)
    assert len(spans) == 2  # the same span on both charts
    assert "hardware max 2400 MHz" in svg and "Throttling found: CPU frequency below 80%" in svg
    assert thermal_svg(make_record(samples=[1.0, 2.0])) == ""  # nothing sampled, nothing drawn


def test_pareto_front_from_a_sweep_json() -> None:
    points = [{"name": f"s{i}.onnx", "quant": q, "bytes": b, "spearman_vs_teacher": s}
              for i, (q, b, s) in enumerate([("fp32", 90e6, 0.95), ("int8_ptq", 24e6, 0.93), ("int4", 13e6, 0.88),
                                             ("int8_qat", 24e6, 0.90), ("fp32", 60e6, 0.91)])]
    doc = {"schema": "edgefarm.distill.sweep/1", "x_metric": "bytes", "y_metric": "spearman_vs_teacher",
           "points": points, "pareto": ["s0.onnx", "s1.onnx", "s2.onnx"]}
    svg = pareto_svg(doc)
    assert svg.count('data-front="1"') == 3 and svg.count('data-front="0"') == 2
    assert 'class="front"' in svg and "artifact size (MiB)" in svg and "spearman vs teacher" in svg
    assert pareto_svg({"points": []}) == ""


def test_sweep_page_from_a_file(tmp_path: Path) -> None:
    from harness.reports.sweep_page import main

    doc = {"schema": "edgefarm.distill.sweep/1", "x_metric": "peak_rss_mib", "y_metric": "spearman_vs_teacher",
           "points": [{"name": "a<b>.onnx", "quant": "int8", "peak_rss_mib": 90.0, "spearman_vs_teacher": 0.9},
                      {"name": "c.onnx", "quant": "fp32", "peak_rss_mib": 150.0, "spearman_vs_teacher": 0.95}],
           "pareto": ["a<b>.onnx", "c.onnx"]}
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "sweep.json"), "-o", str(tmp_path / "s.html")]) == 0
    page = (tmp_path / "s.html").read_text()
    assert page.count('data-front="1"') == 2 and "a&lt;b&gt;.onnx" in page and "<b>.onnx" not in page
    assert "peak resident memory on the device (MiB)" in page
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    assert main([str(tmp_path / "bad.json")]) == 2


def test_trend_from_the_history_store(tmp_path: Path) -> None:
    """A real SQLite history store, 12 nights, a 30% slowdown from night 7: the chart marks the change point."""
    from synthetic import latency_samples
    from harness.reports.charts_device import trend_svg

    from harness.history.db import parse_url
    from harness.history.ingest import read_run
    from harness.history.store import Store
    from harness.history.trend import trend
    from harness.records import JsonlWriter

    rng = np.random.default_rng(4)
    store = Store(parse_url(str(tmp_path / "h.db")))
    for night in range(12):
        slow = 1.3 if night >= 7 else 1.0
        rec = make_record(run_id=f"n{night:02d}", samples=latency_samples(rng, 400, 20.0 * slow),
                          started_at=f"2026-11-{night + 1:02d}T02:00:00.000000Z")
        with JsonlWriter(tmp_path / rec.run_id / "results.jsonl") as w:
            w.write(rec)
        store.ingest(read_run(tmp_path / rec.run_id))
    t = trend(store, "local", "student-int8", "latency_ms_p95").to_dict()
    svg = trend_svg(t)
    assert svg.count('class="dot"') == 12 and svg.count('class="ci"') == 12
    cps = re.findall(r'data-mark="change-point" data-value="(\d+)"', svg)
    assert cps == [str(c["index"]) for c in t["change_points"]] and "7" in cps
    assert "regression +" in svg
