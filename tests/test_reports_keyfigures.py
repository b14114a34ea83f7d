"""The key figures: one definition, the same figures in every printer, a reason wherever a figure is absent."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from harness.gate import evaluate, load_policy
from synthetic import latency_samples, make_record
from harness.records import Metric, Record, load_run
from harness.reports import render
from harness.reports.keyfigures import COLUMNS, OUT_FORMATS, key_rows, render_records, render_rows

RESULTS = Path(__file__).parent / "fixtures" / "results"


@pytest.fixture(scope="module")
def mixed() -> list[Record]:
    return load_run(RESULTS / "mixed")


@pytest.fixture(scope="module")
def baseline() -> list[Record]:
    return load_run(RESULTS / "baseline")


def test_every_format_carries_the_same_figures(mixed: list[Record], baseline: list[Record]) -> None:
    rows = key_rows(mixed, baseline)
    docs = json.loads(render_rows(rows, "json"))
    lines = [json.loads(ln) for ln in render_rows(rows, "jsonl").splitlines()]
    assert docs == lines and len(docs) == len(mixed)
    table = list(csv.DictReader(io.StringIO(render_rows(rows, "csv"))))
    md = render_rows(rows, "md")
    term = render_rows(rows, "table")
    for rec, doc, line in zip(mixed, docs, table):
        assert (doc["device"], doc["artifact"]) == rec.key == (line["device"], line["artifact"])
        p95 = rec.metrics.get("latency_ms_p95")
        if p95 is not None and p95.value is not None:
            assert doc["p95_ms"]["value"] == pytest.approx(p95.value)
            assert float(line["p95_ms"]) == pytest.approx(p95.value)
            assert doc["p95_ms"]["ci"] == pytest.approx(list(p95.ci or ()))
            shown = doc["p95_ms"]["text"].split(" (base")[0]
            assert shown in html.unescape(md) and shown in term
    # the baseline's figure and the change sit beside the figure where a baseline exists
    int8 = next(d for d in docs if (d["device"], d["artifact"]) == ("local", "student-int8"))
    assert int8["p50_ms"]["baseline"]["value"] == pytest.approx(80.04, abs=0.01)
    assert int8["p50_ms"]["change_pct"] == pytest.approx(100 * (79.54275 - 80.04) / 80.04, abs=0.05)


def test_an_absent_figure_says_why_never_a_bare_dash(mixed: list[Record]) -> None:
    rows = key_rows(mixed)
    for r in rows:
        for c in COLUMNS:
            text = r.figs[c.key].text
            assert text.strip() not in ("", "-", "—", "n/a"), (r.device, r.artifact, c.key, text)
    big = next(r for r in rows if (r.device, r.artifact) == ("rpi5", "student-big"))
    assert big.figs["p95_ms"].value is None
    assert big.figs["p95_ms"].text == "not claimed: insufficient samples: 12 for p95"
    assert big.figs["p50_ms"].text.startswith("309") and "[287.2, 328.5]" in big.figs["p50_ms"].text
    crashed = next(r for r in rows if r.status == "crashed")
    assert crashed.figs["p95_ms"].text == "no figure: run crashed"


def test_llm_cells_show_prefill_decode_ttft_and_inter_token_percentiles() -> None:
    rng = np.random.default_rng(3)
    itl = latency_samples(rng, 400, 8.0, 0.1)
    rec = make_record(artifact="tiny.gguf", artifact_format="gguf", samples=None)
    rec.samples = {"itl_ms": itl, "ttft_ms": [80.0, 82.0, 79.0], "prefill_tokens_per_s": [700.0, 650.0, 720.0],
                   "decode_tokens_per_s": [120.0, 118.0, 125.0]}
    rec.metrics.update({"itl_ms_p95": Metric(9.5, "ms", 400, (9.2, 9.9), 0.95),
                        "ttft_ms": Metric(80.0, "ms", 3), "prefill_tokens_per_s": Metric(690.0, "tok/s", 3),
                        "decode_tokens_per_s": Metric(121.0, "tok/s", 3, (117.0, 125.0), 0.95)})
    row = key_rows([rec])[0]
    assert row.series == "itl_ms" and row.figs["p95_ms"].text == "9.5 [9.2, 9.9]"
    assert row.figs["rate"].text == "pp 690.0 / tg 121.0 [117.0, 125.0] tok/s"
    assert row.figs["ttft_ms"].value == 80.0 and row.figs["n"].text == "3 reps, 400 tokens"
    assert "inter-token latency" in render_rows([row], "table")


def test_hostile_strings_are_escaped_in_every_format() -> None:
    rec = make_record(device="dev\x1b[2J\x1b]0;owned\x07|`*x*`", artifact="a\nb<script>|c",
                      samples=latency_samples(np.random.default_rng(1), 100, 5.0))
    rec.runtime = {"name": "ort\x1b[31m", "version": "=cmd|' /C calc'!A0"}
    for fmt in OUT_FORMATS:
        out = render_records([rec], fmt)  # type: ignore[arg-type]
        assert "\x1b" not in out and "\x07" not in out, fmt
    md = render_records([rec], "md")
    header, sep, row = md.splitlines()
    assert row.count("|") == header.count("|"), "a pipe from a device split the Markdown row"
    assert "<script>" not in md and "\\x1b[2J" in html.unescape(md)
    table = render_records([rec], "table")
    assert "dev\\x1b[2J" in table and "a\\x0ab<script>" in table
    line = list(csv.reader(io.StringIO(render_records([rec], "csv"))))[1]
    assert not any(cell.startswith(("=", "+", "@")) for cell in line), "a spreadsheet formula in the csv"


def test_gate_printers_include_the_key_figures(mixed: list[Record], baseline: list[Record]) -> None:
    rep = evaluate(mixed, load_policy(RESULTS / "policy.toml"), baseline=baseline, run="mixed",
                   baseline_run="baseline")
    md = render(rep, "md")
    assert "### Key figures" in md and "| p95 ms |" in md
    assert "87.6 [86.74, 88.85] (base 88.22 [86.97, 89.52], -0.7%)" in html.unescape(md)
    page = render(rep, "html")
    assert 'class="keyfig-all"' in page and "87.6 [86.74, 88.85]" in page
    # an inconclusive rule says which flag decides it, not only how many samples
    assert re.search(r"~\d+ more samples: rerun with `edgefarm run --min-runs \d+`", html.unescape(page))
    root = ET.fromstring(render(rep, "junit"))
    props = {p.get("name"): p.get("value") for s in root.findall("testsuite")
             if s.get("name") == "local x student-int8" for p in s.find("properties") or []}
    assert props["key.p95_ms"] == "87.6 [86.74, 88.85] (base 88.22 [86.97, 89.52], -0.7%)"
    assert re.match(r"22\.89 MiB", props["key.model_mib"] or "")


def test_run_dash_o_prints_only_the_document_on_stdout(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                       tmp_path: Path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "harness.cli", "run", "--profiles", str(fast_profiles), "--artifact",
            str(tiny_samples["tflite"]), "--out", str(tmp_path / "run"), "--min-runs", "80", "-q"]
    r = subprocess.run(argv + ["-o", "jsonl"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (doc,) = [json.loads(ln) for ln in r.stdout.splitlines()]  # nothing else on stdout
    rec = load_run(tmp_path / "run")[-1]
    assert doc["artifact"] == rec.artifact.name and doc["format"]["text"] == "tflite"
    assert doc["p50_ms"]["value"] == pytest.approx(rec.value("latency_ms_p50"))
    assert "results:" in r.stderr
    r = subprocess.run(argv[:-1] + ["--out", str(tmp_path / "run2"), "-q", "-o", "csv"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (line,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert line["format_text"] == "tflite" and float(line["p50_ms"]) > 0
