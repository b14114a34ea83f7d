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
from harness.records import load_run
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
