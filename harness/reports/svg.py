"""A small SVG plotting kit for the HTML report: scales with ticks, a framed chart with labelled axes, a caption.

Why hand-written SVG and not an inlined charting library: the report must stay one offline file under a strict
Content-Security-Policy, render 1000 cells in well under a second, and be testable through the DOM. A library
(Vega, Plotly: 0.5-3 MB of script) would draw at load time in the browser, so the charts would not exist in the
file, the CSP would need relaxing, and a thousand cells would each run it. Here every chart is static markup:
a scale maps data to pixels, `chart()` draws the frame, ticks and axis titles, and marks carry data-* attributes
(data-mark="p95") that the Chromium tests read back.

Every label passes through reports.escape.h; numbers only go into coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.reports.escape import h

W, H = 520, 230
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 14, 40


def fnum(x: float) -> str:
    """A tick label: short, no trailing zeros, no exponent below 1e5."""
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e5 or a < 1e-3:
        return f"{x:.3g}"
    return f"{x:.3g}" if a < 10 else f"{x:.0f}" if a >= 100 else f"{x:.3g}"


@dataclass
class Scale:
    """Data -> pixel along one axis. log=True maps log10; lo/hi are the data bounds the axis shows."""

    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi
    log: bool = False
    integer: bool = False  # counts (repetitions): whole-number ticks only

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):  # a NaN from a hand-made record
            self.lo, self.hi = 0.0, 1.0
        if self.log:
            self.lo = max(self.lo, 1e-12)
            self.hi = max(self.hi, self.lo * 1.0001)
        elif self.hi <= self.lo:
            self.hi = self.lo + (abs(self.lo) or 1.0)

    def _t(self, v: float) -> float:
        return math.log10(max(v, 1e-12)) if self.log else v

    def __call__(self, v: float) -> float:
        t0, t1 = self._t(self.lo), self._t(self.hi)
        return self.a + (self.b - self.a) * (self._t(v) - t0) / (t1 - t0)

    def ticks(self) -> list[float]:
        if self.log:
            out: list[float] = []
            # 1-2-5 per decade; on a narrow log axis (under a decade or two) every integer mantissa
            for mantissas in ((1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)):
                out = [m * 10.0 ** k for k in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
                       for m in mantissas if self.lo <= m * 10.0 ** k <= self.hi]
                if len(out) >= 4:
                    break
            if len(out) > 7:  # many decades: the powers of ten only, every other one if still crowded
                out = [v for v in out if f"{v:.0e}".startswith("1e")]
            while len(out) > 7:
                out = out[::2]
            return out if len(out) >= 2 else [self.lo, self.hi]
        span = self.hi - self.lo
        step: float = 10.0 ** math.floor(math.log10(span / 5))
        for m in (1.0, 2.0, 2.5, 5.0, 10.0):
            if span / (step * m) <= 6:
                step *= m
                break
        if self.integer:
            step = max(1.0, math.ceil(step))
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def spans_decades(lo: float, hi: float) -> bool:
    """Positive data whose largest value is at least 10x its smallest: plotted on a log axis."""
    return lo > 0 and hi / lo >= 10


def x_scale(lo: float, hi: float, log: bool, w: int = W) -> Scale:
    if log:
        return Scale(lo / 1.15, hi * 1.15, LEFT, w - RIGHT, True)
    pad = (hi - lo) * 0.04 or abs(hi) * 0.05 or 1.0
    return Scale(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad, LEFT, w - RIGHT)


def y_scale(lo: float, hi: float, h: int = H) -> Scale:
    return Scale(lo, hi, h - BOTTOM, TOP)


def chart(kind: str, x: Scale, y: Scale, xlabel: str, ylabel: str, body: Sequence[str], caption: str,
          w: int = W, h: int = H, legend: Sequence[tuple[str, str]] = (), legend_at: str = "bottom-right") -> str:
    """A <figure>: the SVG frame (axes, ticks, axis titles), the body marks, a legend and a <figcaption>."""
    p = [f'<figure class="fig" data-chart="{h_(kind)}"><svg class="chart" viewBox="0 0 {w} {h}" width="{w}" '
         f'height="{h}" role="img" aria-label="{h_(caption)}">']
    x0, y0 = LEFT, h - BOTTOM
    p.append(f'<g class="x-axis" data-label="{h_(xlabel)}" data-min="{x.lo:.6g}" data-max="{x.hi:.6g}" '
             f'data-scale="{"log" if x.log else "linear"}"><line x1="{x0}" y1="{y0}" x2="{w - RIGHT}" '
             f'y2="{y0}" class="axis"/>')
    for t in x.ticks():
        px = x(t)
        p.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 4}" class="axis"/>'
                 f'<text x="{px:.1f}" y="{y0 + 15}" class="tick" text-anchor="middle">{fnum(t)}</text>')
    p.append(f'<text x="{(x0 + w - RIGHT) / 2:.0f}" y="{h - 6}" class="axis-label" text-anchor="middle">'
             f'{h_(xlabel)}</text></g>')
    p.append(f'<g class="y-axis" data-label="{h_(ylabel)}" data-min="{y.lo:.6g}" data-max="{y.hi:.6g}" '
             f'data-scale="{"log" if y.log else "linear"}"><line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y0}" '
             f'class="axis"/>')
    for t in y.ticks():
        py = y(t)
        p.append(f'<line x1="{x0 - 4}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" class="axis"/>'
                 f'<line x1="{x0}" y1="{py:.1f}" x2="{w - RIGHT}" y2="{py:.1f}" class="grid"/>'
                 f'<text x="{x0 - 6}" y="{py + 3:.1f}" class="tick" text-anchor="end">{fnum(t)}</text>')
    p.append(f'<text x="12" y="{(TOP + y0) / 2:.0f}" class="axis-label" text-anchor="middle" '
             f'transform="rotate(-90 12 {(TOP + y0) / 2:.0f})">{h_(ylabel)}</text></g>')
    p.extend(body)
    for i, (cls, label) in enumerate(legend):  # bottom right: a CDF is empty there
        ly = h - BOTTOM - 10 - 13 * (len(legend) - 1 - i) if legend_at == "bottom-right" else TOP + 8 + 13 * i
        lx = w - RIGHT - 118 if legend_at == "bottom-right" else LEFT + 8
        p.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" class="{cls}"/>'
                 f'<text x="{lx + 22}" y="{ly + 3}" class="lbl">{h_(label)}</text>')
    p.append(f'</svg><figcaption>{h_(caption)}</figcaption></figure>')
    return "".join(p)


def h_(x: object) -> str:
    return h(x)


def vmark(x: Scale, y: Scale, v: float, name: str, cls: str, label: str, row: int = 0) -> str:
    """A vertical reference line at data value v (a percentile, a budget) with its label; data-mark=name."""
    px = x(v)
    anchor = "end" if px > (x.a + x.b) * 0.62 else "start"
    dx = -3 if anchor == "end" else 3
    return (f'<g class="mark-g" data-mark="{h(name)}" data-value="{v:.6g}"><line x1="{px:.1f}" y1="{y.b:.1f}" '
            f'x2="{px:.1f}" y2="{y.a:.1f}" class="{cls}"/><text x="{px + dx:.1f}" y="{y.b + 10 + 11 * row:.1f}" '
            f'class="lbl" text-anchor="{anchor}">{h(label)}</text></g>')


def hmark(x: Scale, y: Scale, v: float, name: str, cls: str, label: str) -> str:
    """A horizontal reference line at data value v (RAM, a memory budget) with its label."""
    py = y(v)
    return (f'<g class="mark-g" data-mark="{h(name)}" data-value="{v:.6g}"><line x1="{x.a:.1f}" y1="{py:.1f}" '
            f'x2="{x.b:.1f}" y2="{py:.1f}" class="{cls}"/><text x="{x.b - 4:.1f}" y="{py - 3:.1f}" '
            f'class="lbl" text-anchor="end">{h(label)}</text></g>')


def polyline(xs: Sequence[float] | npt.NDArray[np.float64], ys: Sequence[float] | npt.NDArray[np.float64],
             cls: str) -> str:
    """Points at whole pixels, comma-separated (SVG reads any mix of commas and spaces): small and fast."""
    pts = ",".join(map(str, np.rint(np.column_stack([xs, ys])).astype(np.int64).ravel().tolist()))
    return f'<polyline points="{pts}" class="{cls}"/>'
