"""Progress of long work on the terminal: pushes (bytes, rate) and measure phases (runs, elapsed, ETA).

Takes the runner's event stream (an EventSink: device, artifact, event dict) - {"event":"push","done","total"}
from the deploy step, {"event":"phase","phase"} and {"event":"progress","phase","runs","elapsed_s","eta_s"}
from the agent - and shows it:
- on a TTY, one status line rewritten in place (carriage return + erase), messages printed above it;
- otherwise (CI logs, pipes), plain lines, at most one per cell every `every_s` seconds, plus every phase
  change and every finished push, so a 60 s GGUF measure phase shows it moves without flooding a log.
Strings from devices pass through reports.escape.term: no ESC sequence from a device reaches the terminal.
The run and demo commands use it (message / event / record, then close() before the summary).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from harness.records import Record
from harness.reports.escape import term


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GiB"


def _secs(s: float | None) -> str:
    if s is None:
        return "?"
    s = max(float(s), 0.0)
    if s < 10:
        return f"{s:.1f}s"
    return f"{s:.0f}s" if s < 90 else f"{int(s // 60)}m{int(s % 60):02d}s"


@dataclass
class _State:
    text: str = ""
    phase: str = ""
    push_t0: float | None = None
    last_line: float = float("-inf")
    last_text: str = ""


class ProgressView:
    """Renders the runner's events; thread-safe (devices run in parallel); quiet prints nothing."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 every_s: float = 5.0, clock: Callable[[], float] = time.monotonic, width: int = 120) -> None:
        self.stream = stream or sys.stderr
        # The CLI may wrap stderr so that no control character reaches the terminal (console.SafeStream, via
        # `.inner`); the status line's own CR / erase-line must get through, so it is written to the real
        # stream. Everything from a device was passed through term() first and carries no control character.
        self._raw: TextIO = getattr(self.stream, "inner", self.stream)
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if tty is None and isatty is not None else bool(tty)
        self.quiet, self.every_s, self.clock, self.width = quiet, every_s, clock, width
        self._lock = threading.Lock()
        self._t0 = clock()
        self._cells: dict[tuple[str, str], _State] = {}
        self._status_shown = False

    # -- what the runner calls
    def message(self, text: str) -> None:
        self._line(term(text))

    def record(self, rec: Record) -> None:
        key = (rec.device.name, rec.artifact.name)
        with self._lock:
            self._cells.pop(key, None)
        extra = f": {rec.message}" if rec.status != "ok" and rec.message else ""
        self._line(term(f"{rec.device.name} x {rec.artifact.name} -> {rec.status}{extra[:300]}"))

    def event(self, device: str, artifact: str, ev: dict[str, Any]) -> None:
        key = (device, artifact)
        with self._lock:
            text, force = self._describe(device, artifact, ev)
            if text is None:
                return
            now = self.clock()
            st = self._cells.setdefault(key, _State())
            st.text = text
            if self.tty:
                self._draw_status()
                return
            if force or now - st.last_line >= self.every_s:
                if text != st.last_text:
                    st.last_line, st.last_text = now, text
                    self._write(self._stamp(now) + text + "\n")

    def close(self) -> None:
        """Erase the status line (call when the work is done, before printing the summary)."""
        with self._lock:
            if self.tty and self._status_shown and not self.quiet:
                self._raw.write("\r\x1b[2K")
                self._raw.flush()
            self._status_shown = False
            self._cells.clear()

    # -- rendering
    def _describe(self, device: str, artifact: str, ev: dict[str, Any]) -> tuple[str | None, bool]:
        """(the cell's status text, whether a plain log must show it now) for one event."""
        who = term(f"{device} x {artifact}")
        kind = ev.get("event")
        st = self._cells.get((device, artifact)) or _State()
        if kind == "push":
            done, total = _num(ev.get("done")), _num(ev.get("total"))
            now = self.clock()
            if st.push_t0 is None or done == 0:
                st.push_t0 = now
                self._cells[(device, artifact)] = st
            dt = now - st.push_t0
            rate = f", {human_bytes(done / dt)}/s" if dt > 0.2 and done > 0 else ""
            pct = f" {100.0 * done / total:.0f}%" if total > 0 else ""
            return f"{who}: push {human_bytes(done)}/{human_bytes(total)}{pct}{rate}", total > 0 and done >= total
        if kind == "phase":
            phase = term(str(ev.get("phase", "?")))
            changed = phase != st.phase
            st.phase = phase
            self._cells[(device, artifact)] = st
            return f"{who}: {phase}", changed
        if kind == "progress":
            runs = ev.get("runs", ev.get("done"))
            eta = ev.get("eta_s")
            phase = term(str(ev.get("phase") or st.phase or "measure"))
            left = f", about {_secs(_num(eta))} left" if isinstance(eta, (int, float)) else ", time left unknown"
            return (f"{who}: {phase} {runs if isinstance(runs, int) else '?'} runs in "
                    f"{_secs(_num(ev.get('elapsed_s')))}{left}"), False
        return None, False

    def _stamp(self, now: float) -> str:
        return f"[{now - self._t0:7.1f}s] "

    def _draw_status(self) -> None:
        if self.quiet:
            return
        parts = [st.text for st in self._cells.values() if st.text]
        line = " | ".join(parts)
        if len(line) > self.width - 1:
            line = line[: self.width - 4] + "..."
        self._raw.write("\r\x1b[2K" + line)
        self._raw.flush()
        self._status_shown = True

    def _line(self, text: str) -> None:
        with self._lock:
            if self.quiet:
                return
            if self.tty and self._status_shown:
                self._raw.write("\r\x1b[2K")
            self._write(self._stamp(self.clock()) + text + "\n")
            if self.tty and self._cells:
                self._draw_status()

    def _write(self, s: str) -> None:
        if not self.quiet:
            self._raw.write(s)
            self._raw.flush()


def _num(x: object) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0.0
