"""Energy over a run's phases: integrate a trace between host-monotonic phase boundaries, subtract idle power.

Power traces are integrated with the trapezoidal rule, the trace linearly interpolated at each window edge;
cumulative-energy traces (RAPL) are differenced, interpolated at the edges. A gap (an interval longer than
3x the trace's median interval) or a window edge beyond the trace is bridged (interpolated, or the edge value
held) and reported: the result says how much of the window it did not see, and gives no figure when that is
more than half of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.energy.base import FloatArray, Trace
from harness.metrics import METRICS
from harness.records import Metric

GAP_FACTOR = 3.0
MIN_GAP_S = 0.25  # a host poller stalled by a busy CPU for less than this is bridged, not counted unseen
MAX_UNSEEN = 0.5  # above this share of a window unseen, no figure
WARN_UNSEEN = 0.01


@dataclass
class Window:
    """Energy and power of a trace over [t_start, t_end]."""

    t_start: float
    t_end: float
    energy_j: float | None
    power_w_avg: float | None
    power_w_peak: float | None
    unseen_s: float  # time inside the window the trace did not cover (gaps, before its start, after its end)
    samples: int

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t_start

    def as_dict(self) -> dict[str, Any]:
        return {"t_start": self.t_start, "t_end": self.t_end, "duration_s": self.duration_s,
                "energy_j": self.energy_j, "power_w_avg": self.power_w_avg, "power_w_peak": self.power_w_peak,
                "unseen_s": self.unseen_s, "samples": self.samples}


def _trapezoid(y: FloatArray, x: FloatArray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def gaps(t: FloatArray) -> list[tuple[float, float]]:
    """Intervals between consecutive samples longer than GAP_FACTOR x the median interval (and MIN_GAP_S)."""
    if t.size < 3:
        return []
    dt = np.diff(t)
    limit = max(GAP_FACTOR * float(np.median(dt)), MIN_GAP_S)
    return [(float(t[i]), float(t[i + 1])) for i in np.flatnonzero(dt > limit)]


def _unseen(t: FloatArray, a: float, b: float) -> float:
    if t.size == 0:
        return b - a
    out = max(0.0, min(b, float(t[0])) - a) + max(0.0, b - max(a, float(t[-1])))
    for g0, g1 in gaps(t):
        out += max(0.0, min(b, g1) - max(a, g0))
    return out


def integrate(trace: Trace, t_start: float, t_end: float) -> Window:
    """Energy (J), mean and peak power (W) of the trace over a host-monotonic window."""
    a, b = float(t_start), float(t_end)
    t, v = trace.t, trace.value
    unseen = _unseen(t, a, b)
    if b <= a or t.size < 2 or unseen > MAX_UNSEEN * (b - a):
        return Window(a, b, None, None, None, unseen, int(np.count_nonzero((t >= a) & (t <= b))))
    inside = (t > a) & (t < b)
    if trace.kind == "power":
        x = np.concatenate([[a], t[inside], [b]])
        y = np.concatenate([[np.interp(a, t, v)], v[inside], [np.interp(b, t, v)]])
        energy = _trapezoid(y, x)
        if trace.peak is not None and inside.any():
            peak = float(np.max(trace.peak[inside]))
        else:
            peak = float(np.max(y[1:-1])) if inside.any() else float(max(y[0], y[-1]))
    else:
        # cumulative counter: mean power of each interval, held beyond the trace's ends
        p = np.diff(v) / np.diff(t)
        mid = (t[1:] + t[:-1]) / 2.0

        def energy_at(x: float) -> float:
            if x < t[0]:
                return float(v[0] - p[0] * (t[0] - x))
            if x > t[-1]:
                return float(v[-1] + p[-1] * (x - t[-1]))
            return float(np.interp(x, t, v))

        energy = energy_at(b) - energy_at(a)
        overlap = (t[1:] > a) & (t[:-1] < b)
        peak = float(np.max(p[overlap])) if overlap.any() else float(p[np.argmin(np.abs(mid - (a + b) / 2))])
    return Window(a, b, energy, energy / (b - a), peak, unseen, int(np.count_nonzero(inside)))


@dataclass
class Phase:
    name: str
    t_start: float
    t_end: float


def phases_from_events(events: Sequence[tuple[str, float]], t_end: float) -> list[dict[str, Any]]:
    """Agent phase events as the controller saw them, [(phase, host monotonic time)], into Record.phases
    form: each phase lasts until the next event; the last one until t_end (the end of the run)."""
    out: list[dict[str, Any]] = []
    for i, (name, t) in enumerate(events):
        end = events[i + 1][1] if i + 1 < len(events) else t_end
        out.append({"name": name, "t_start": float(t), "t_end": float(end)})
    return out


def _phase(p: Phase | Mapping[str, Any]) -> Phase:
    if isinstance(p, Phase):
        return p
    return Phase(str(p["name"]), float(p["t_start"]), float(p["t_end"]))


def summarise(
    trace: Trace,
    phases: Sequence[Phase | Mapping[str, Any]],
    *,
    n_inferences: int | None,
    n_tokens: int | None = None,
    idle_window: tuple[float, float] | None = None,
    measured_phase: str = "measure",
) -> tuple[dict[str, Any], dict[str, Metric]]:
    """Record.energy and the energy metrics of one run.

    phases: host-monotonic spans (as from phases_from_events); the one named measured_phase is measured.
    idle_window: host-monotonic span of the idle baseline recorded before the run; its mean power times a
    phase's duration is subtracted from that phase's energy. n_inferences / n_tokens: how many inferences and
    generated tokens the measured phase did.
    """
    warnings = list(trace.warnings)
    idle = integrate(trace, *idle_window) if idle_window else None
    idle_w = idle.power_w_avg if idle else None
    if idle_window is None:
        warnings.append("no idle baseline: energies are gross, not net of idle power")
    elif idle_w is None:
        warnings.append("the idle baseline window holds too few samples: energies are gross")

    def net(w: Window) -> float | None:
        if w.energy_j is None:
            return None
        return w.energy_j - (idle_w or 0.0) * w.duration_s

    phase_rows: list[dict[str, Any]] = []
    measured: Window | None = None
    for ph in map(_phase, phases):
        w = integrate(trace, ph.t_start, ph.t_end)
        phase_rows.append({"name": ph.name} | w.as_dict() | {"energy_j_net": net(w)})
        if ph.name == measured_phase:
            measured = w
        if w.duration_s > 0 and w.unseen_s > WARN_UNSEEN * w.duration_s:
            warnings.append(f"phase {ph.name}: the trace missed {w.unseen_s:.3f} s of {w.duration_s:.3f} s "
                            f"({'bridged' if w.energy_j is not None else 'no figure'})")

    energy: dict[str, Any] = {
        "source": trace.source,
        "accuracy": trace.accuracy,
        "meter": trace.info,
        "trace": {"kind": trace.kind, "samples": len(trace), "t_start": trace.t_start, "t_stop": trace.t_stop,
                  "median_interval_s": float(np.median(np.diff(trace.t))) if len(trace) > 1 else None,
                  "gaps": len(gaps(trace.t))},
        "idle": (idle.as_dict() | {"power_w": idle_w}) if idle else None,
        "phases": phase_rows,
        "measured": None,
        "warnings": warnings,
        "tainted": list(trace.tainted),
    }
    metrics: dict[str, Metric] = {}
    if measured is None:
        warnings.append(f"no '{measured_phase}' phase in this run: no per-inference energy")
        return energy, metrics
    net_j = net(measured)
    label = f"{trace.source}, {trace.accuracy}" + (f"; idle {idle_w:.4g} W subtracted" if idle_w is not None
                                                   else "; no idle baseline subtracted")
    if net_j is not None and idle_w is not None and net_j <= 0:
        warnings.append("the measured phase drew no more than the idle baseline: net energy is not positive")

    def per(count: int | None) -> float | None:
        return net_j / count if net_j is not None and count else None

    energy["measured"] = {"phase": measured_phase} | measured.as_dict() | {
        "energy_j_net": net_j, "idle_power_w": idle_w, "n_inferences": n_inferences, "n_tokens": n_tokens,
        "energy_j_per_inference": per(n_inferences), "energy_j_per_token": per(n_tokens)}

    def metric(name: str, value: float | None, n: int | None) -> None:
        metrics[name] = Metric(value=value, unit=METRICS[name].unit, n=n, note=label)

    if n_inferences:
        metric("energy_j_per_inference", per(n_inferences), n_inferences)
    if n_tokens:
        metric("energy_j_per_token", per(n_tokens), n_tokens)
    metric("power_w_avg", measured.power_w_avg, measured.samples)
    metric("power_w_peak", measured.power_w_peak, measured.samples)
    return energy, metrics
