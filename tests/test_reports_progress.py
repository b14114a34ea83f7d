"""The progress renderer: one rewritten status line on a terminal (a real pty), throttled plain lines in a log,
and a real event stream from the runner on the local device."""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.progress import ProgressView, human_bytes


class Clock:
    """A clock the test moves: the renderer's throttling is about time, not about thread progress."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


PUSH = [{"event": "push", "done": d, "total": 100 * 2**20} for d in (0, 10 * 2**20, 60 * 2**20, 100 * 2**20)]
MEASURE = [{"event": "phase", "phase": "measure"}] + [
    {"event": "progress", "phase": "measure", "runs": r, "elapsed_s": r / 10.0, "eta_s": (400 - r) / 10.0}
    for r in range(10, 400, 10)]


def _feed(view: ProgressView, clock: Clock, events: list[dict[str, Any]], step: float) -> None:
    for ev in events:
        clock.t += step
        view.event("pixel7", "student.gguf", ev)


def test_plain_output_is_throttled_but_shows_every_phase_and_finished_push() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, tty=False, every_s=5.0, clock=clock)
    _feed(view, clock, PUSH, 0.5)
    _feed(view, clock, MEASURE, 0.25)  # 39 progress events over ~10 s: about two lines, not 39
    lines = out.getvalue().splitlines()
    pushes = [ln for ln in lines if "push" in ln]
    assert pushes[0].endswith("push 0 B/100.0 MiB 0%") and "100.0 MiB/100.0 MiB 100%" in pushes[-1]
    assert re.search(r"100%, \d+\.\d MiB/s$", pushes[-1]), pushes[-1]  # the rate of the whole push
    assert any(ln.endswith("pixel7 x student.gguf: measure") for ln in lines)
    progress = [ln for ln in lines if " runs in " in ln]
    assert 1 <= len(progress) <= 3, lines
    assert re.search(r"measure \d+ runs in \d+(\.\d)?s, about \d+(\.\d)?s left$", progress[0])
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_tty_rewrites_one_status_line_and_prints_messages_above_it() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as term:
            got: list[bytes] = []
            reader = threading.Thread(target=lambda: _drain(master, got), daemon=True)
            reader.start()
            clock = Clock()
            view = ProgressView(term, clock=clock)
            assert view.tty
            _feed(view, clock, PUSH[:2], 0.5)
            view.event("rpi5", "student.onnx", {"event": "phase", "phase": "load"})
            view.message("device rpi5 \x1b[31mred\x1b[0m ready")
            view.close()
            term.flush()
        reader.join(timeout=10)
    finally:
        os.close(master)
    text = b"".join(got).decode()
    # updates are carriage return + erase line, never a new line per event
    status = [s for s in text.split("\r\x1b[2K") if s]
    assert any(s.startswith("pixel7 x student.gguf: push 10.0 MiB/100.0 MiB 10%") for s in status), status
    both = [s for s in status if "pixel7" in s and "rpi5 x student.onnx: load" in s]
    assert both and " | " in both[0]
    # the message went above the status line, its ESC sequence shown as text
    assert re.search(r"\] device rpi5 \\x1b\[31mred\\x1b\[0m ready\r?\n", text)
    assert text.count("\n") == 1


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.append(chunk)


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB" and human_bytes(3 * 2**30) == "3.0 GiB"


def test_a_real_run_streams_events_the_view_renders(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from harness import profiles
    from harness.artifacts import inspect
    from harness.farm import run_farm
    from harness.runner import RunOverrides
    from harness.samples import write_samples

    onnx = [p for p in write_samples(tmp_path / "s", size="tiny") if p.suffix == ".onnx"]
    out = io.StringIO()
    view = ProgressView(out, tty=False, every_s=0.0)
    events: list[dict[str, Any]] = []

    def sink(device: str, artifact: str, ev: dict[str, Any]) -> None:
        events.append(ev)
        view.event(device, artifact, ev)

    res = run_farm(profiles.resolve(["local"], None), [inspect(p) for p in onnx], tmp_path / "run",
                   RunOverrides(min_runs=20, min_s=1.5, warmup_runs=1), on_event=sink, on_record=view.record,
                   on_message=view.message)
    assert res.records and res.records[0].status == "ok", res.records[0].message
    kinds = {e.get("event") for e in events}
    assert "phase" in kinds
    text = out.getvalue()
    assert re.search(r"local x \S+\.onnx: measure$", text, re.M), text
    assert re.search(r"local x \S+\.onnx -> ok$", text, re.M)
    if "push" in kinds:
        assert re.search(r"push .* 100%", text)
    # the agent's measure-phase progress events (a few a second over a 1.5 s measure phase)
    assert "progress" in kinds
    assert re.search(r"measure \d+ runs in \d+(\.\d)?s, about \d+(\.\d)?s left$", text, re.M), text
