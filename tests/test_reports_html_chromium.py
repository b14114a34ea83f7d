"""The HTML report in a real browser (Debian's headless chromium): renders, shows failure, runs no injected script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.gate import GateReport, evaluate, load_policy
from harness.records import Metric, Record, load_run
from harness.reports import render

RESULTS = Path(__file__).parent / "fixtures" / "results"
POLICY = RESULTS / "policy.toml"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (ci/setup.sh --test installs it; or apt-get install chromium)")


def browse(tmp_path: Path, html: str, *extra: str) -> str:
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    assert CHROMIUM is not None
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", *extra, page.as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def dump_dom(tmp_path: Path, html: str) -> str:
    return browse(tmp_path, html, "--dump-dom")


def gate(run: str) -> GateReport:
    return evaluate(load_run(RESULTS / run), load_policy(POLICY), baseline=load_run(RESULTS / "baseline"),
                    run=run, baseline_run="baseline")


def test_the_probe_detects_a_script_that_runs(tmp_path: Path) -> None:
    # control: the same check on a page that does run the payload must see it
    dom = dump_dom(tmp_path, "<html><head><title>t</title></head><body>"
                             "<script>document.title='pwned'</script></body></html>")
    assert "<title>pwned</title>" in dom


def test_matrix_renders_and_the_failing_cell_is_visibly_failing(tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, render(gate("mixed"), "html"))
    assert re.search(r'<html[^>]*class="js"[^>]*data-ready="1"', dom), "the page's script did not run"
    assert '<table class="matrix">' in dom
    cells = re.findall(r'<td class="cell o-(\w+)" data-outcome="\w+"><a href="#c(\d+)"[^>]*title="([^"]*)"', dom)
    by_title = {t.split(":")[0]: o for o, _, t in cells}
    assert by_title["local × student-fp16"] == "fail"
    assert by_title["local × student-int8"] == "pass"
    assert by_title["pixel7 × student-int8"] == "error"
    assert by_title["pixel7 × student-fp16"] == "inconclusive"
    # the script opened the worst cell's detail and marked its matrix cell selected
    assert re.search(r'<section class="detail o-fail open" id="c\d+"', dom)
    assert re.search(r'<a href="#c\d+" data-cell="\d+" [^>]*class="sel"', dom)
    assert '<header class="banner o-fail">' in dom and "out of memory" in dom


def test_injected_markup_does_not_execute_and_shows_as_text(tmp_path: Path) -> None:
    rep = evaluate(load_run(RESULTS / "hostile"), load_policy())
    dom = dump_dom(tmp_path, render(rep, "html"))
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title and title.group(1).startswith("edgefarm gate:"), title
    assert "pwned</title>" not in dom
    assert not re.search(r"<img\b", dom), "an <img> element was created from a record string"
    assert len(re.findall(r"<script\b", dom)) == 2  # the JSON data block and the page's own script
    # the payloads are there, as text
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=" in dom


def test_screenshot_shows_the_failure(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "shot.png"
    browse(tmp_path, render(gate("mixed"), "html"), f"--screenshot={shot}", "--window-size=1280,1000")
    img = image.open(shot).convert("RGB")
    assert img.size == (1280, 1000)
    px = np.asarray(img, dtype=np.int32)
    red = int((np.abs(px - np.array([0xC6, 0x28, 0x28])).max(axis=2) < 12).sum())
    assert red > 20_000, "the FAIL banner / failing cell colour is not on screen"


# --- charts and layout, checked in the DOM the browser built (issue 15) ------------------------------------

SECTION = re.compile(r'<section class="detail ([^"]*)" id="c(\d+)"[^>]*>(.*?)</section>', re.S)
FIGURE = re.compile(r'<figure class="fig" data-chart="([^"]+)">(.*?)</figure>', re.S)
AXIS = re.compile(r'<g class="([xy])-axis" data-label="([^"]*)" data-min="([^"]*)" data-max="([^"]*)" '
                  r'data-scale="(\w+)">(.*?)</g>', re.S)


def _decades_run(tmp_path: Path) -> tuple[list[Record], list[Record]]:
    """A TFLite-like cell whose latencies span two decades (0.03-3 ms), and its baseline; plus the fixtures'."""
    from synthetic import make_record

    rng = np.random.default_rng(11)
    fast = list(np.exp(rng.normal(np.log(0.045), 0.25, 1500)))
    fast += list(rng.uniform(0.5, 3.0, 40))  # scheduler hiccups: the tail that makes a linear axis useless
    base = list(np.exp(rng.normal(np.log(0.043), 0.25, 1500))) + list(rng.uniform(0.5, 2.5, 40))
    cand = load_run(RESULTS / "mixed") + [make_record(run_id="mixed", artifact="student.tflite",
                                                      artifact_format="tflite", samples=fast)]
    baseline = load_run(RESULTS / "baseline") + [make_record(run_id="base", artifact="student.tflite",
                                                             artifact_format="tflite", samples=base)]
    for r in cand + baseline:
        if r.status == "ok" and not r.phases:
            r.phases = [{"name": "load", "t_start": 10.0, "t_end": 10.4}, {"name": "first", "t_start": 10.4,
                         "t_end": 10.45}, {"name": "warmup", "t_start": 10.45, "t_end": 10.6},
                        {"name": "measure", "t_start": 10.6, "t_end": 14.0}]
            r.metrics.setdefault("peak_rss_load_mib", Metric(r.value("peak_rss_mib") or 50.0, "MiB"))
    return cand, baseline


def test_charts_have_labelled_axes_span_the_data_and_mark_only_claimed_percentiles(tmp_path: Path) -> None:
    cand, baseline = _decades_run(tmp_path)
    rep = evaluate(cand, load_policy(POLICY), baseline=baseline, run="mixed", baseline_run="baseline")
    shot = tmp_path / "shot.png"
    browse(tmp_path, render(rep, "html"), f"--screenshot={shot}", "--window-size=1280,2200")
    assert shot.stat().st_size > 10_000
    dom = dump_dom(tmp_path, render(rep, "html"))
    sections = SECTION.findall(dom)
    assert len(sections) == len(rep.cells)
    seen_log = charts = 0
    for classes, idx, body in sections:
        cell = rep.cells[int(idx)]
        # every failing, erroring or inconclusive cell is open when the page loads
        assert ("open" in classes.split()) == (cell.outcome in ("fail", "error", "inconclusive")) or \
            cell.outcome in ("pass", "skipped")
        for kind, fig in FIGURE.findall(body):
            charts += 1
            axes = {a[0]: a for a in AXIS.findall(fig)}
            assert set(axes) == {"x", "y"}, kind
            for _, label, lo, hi, scale, inner in axes.values():
                assert re.search(r"\(.+\)", label), f"{kind}: axis label without a unit: {label!r}"
                assert inner.count('class="tick"') >= 2, f"{kind}: fewer than two ticks"
                assert float(lo) < float(hi)
            assert re.search(r"<figcaption>.{40,}</figcaption>", fig), f"{kind}: no caption"
            if kind == "cdf-latency_ms":
                assert cell.record is not None and cell.latency is not None
                _, _, lo, hi, scale, _ = axes["x"]
                data = np.concatenate([cell.latency] + ([cell.baseline_latency]
                                                        if cell.baseline_latency is not None else []))
                assert 0 <= float(lo) <= data.min() and float(hi) >= data.max(), (lo, hi, data.min(), data.max())
                if data.max() / data.min() >= 10:
                    assert scale == "log"
                    seen_log += 1
                marks = set(re.findall(r'data-mark="(p\d+)"', fig))
                claimed = {f"p{p}" for p in (50, 90, 95, 99)
                           if (m := cell.record.metrics.get(f"latency_ms_p{p}")) is not None and m.value is not None}
                assert marks <= claimed, (cell.device, cell.artifact, marks - claimed)
                if cell.baseline_record is not None and "base-p95" in fig:
                    bm = cell.baseline_record.metrics.get("latency_ms_p95")
                    assert bm is not None and bm.value is not None
            if kind == "memory":
                _, _, lo, hi, _, _ = axes["y"]
                rec = cell.record
                assert rec is not None
                peak = max(v for k in ("peak_rss_mib", "peak_rss_load_mib", "peak_rss_inference_mib")
                           if (v := rec.value(k)) is not None)
                assert float(hi) <= max(peak * 3, 1.0) or 'data-mark="device-RAM"' in fig, \
                    "memory axis scaled to something far above the data"
                assert float(hi) >= peak
    assert seen_log == 1 and charts >= 10
    # the cell whose p95 the agent declined to claim (12 samples): no p95 line anywhere in its CDF
    big = next(i for i, c in enumerate(rep.cells) if (c.device, c.artifact) == ("rpi5", "student-big"))
    fig = dict(FIGURE.findall(dict((i, b) for _, i, b in sections)[str(big)]))["cdf-latency_ms"]
    assert 'data-mark="p50"' in fig and 'data-mark="p95"' not in fig and "not claimed here: p95, p99" in fig


def test_expand_all_opens_every_cell(tmp_path: Path) -> None:
    import base64
    import hashlib

    page = render(gate("mixed"), "html")
    probe = ("document.getElementById('expand-all').click();document.body.setAttribute('data-open',"
             "String(document.querySelectorAll('.detail.open').length))")
    digest = base64.b64encode(hashlib.sha256(probe.encode()).digest()).decode()
    page = page.replace("script-src ", f"script-src 'sha256-{digest}' ", 1).replace(
        "</body>", f"<script>{probe}</script></body>")
    dom = dump_dom(tmp_path, page)
    n = len(gate("mixed").cells)
    assert re.search(rf'<body[^>]*data-open="{n}"', dom), re.search(r"<body[^>]*>", dom)


def test_control_characters_from_a_device_show_as_text(tmp_path: Path) -> None:
    recs = load_run(RESULTS / "hostile")
    recs[0].device.name = "dev\x1b[2J\x1b]0;title\x07\x00\x9b31m\u202eevil"
    recs[0].message = "line1\r\nline2\x1b[1A"
    dom = dump_dom(tmp_path, render(evaluate(recs, load_policy()), "html"))
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202e]", dom)
    assert "dev\\x1b[2J\\x1b]0;title\\x07\\x00\\u009b31m\\u202eevil" in dom
