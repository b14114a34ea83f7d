"""Thermals and run hygiene on the controller: idle temperature, cool-down before a run, a sampler during it,
and a verdict after it on whether the device throttled while the measured runs went on.

Everything is read from the device's own files by harness/devicestate.py (through the transport's file reading:
directly on this machine, one `grep` per poll on a remote device), never inside the agent's timing loop. Where a device shows no
thermal zone or cpufreq policy, the record says "not available" and no figure is made up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness import devicestate
from harness.devicestate import IDLE_GOVERNORS, Sample, ThermalProbe, files_for
from harness.errors import DeviceError, DeviceLost
from harness.profiles import Profile
from harness.transports.base import Transport

SYSFS_ROOT = "/sys"  # tests point this at a fake tree
POLL_S = 1.0  # cool-down and sampler period


def cool_down(probe: ThermalProbe, idle_c: float, margin_c: float, max_s: float, poll_s: float = 1.0,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Wait until the device is within margin_c of its idle temperature, at most max_s; says what happened."""
    target = idle_c + margin_c
    t0 = clock()
    start = temp = probe.temperature()
    while temp is not None and temp > target and clock() - t0 < max_s:
        sleep(min(poll_s, max(0.0, max_s - (clock() - t0))))
        temp = probe.temperature()
    return {"idle_c": idle_c, "margin_c": margin_c, "target_c": target, "start_c": start, "end_c": temp,
            "waited_s": round(clock() - t0, 3), "max_s": max_s,
            "timed_out": temp is not None and temp > target}


class Sampler:
    """A thread reading the probe every poll_s seconds on the controller's monotonic clock."""

    def __init__(self, probe: ThermalProbe, poll_s: float = 1.0) -> None:
        self.probe, self.poll_s = probe, poll_s
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thermal-sampler", daemon=True)

    def _loop(self) -> None:
        while True:
            try:
                self.samples.append(self.probe.read())
            except DeviceError as e:  # the runner learns of a lost device from the agent's own command
                self.error = str(e)
                return
            if self._stop.wait(self.poll_s):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Sample]:
        """Stop, take one last reading (the end of the run) and return every sample."""
        self._stop.set()
        self._thread.join()
        if self.error is None:
            try:
                self.samples.append(self.probe.read())
            except DeviceError as e:
                self.error = str(e)
        return self.samples


def measure_window(host_phases: Sequence[dict[str, Any]], t_end: float) -> tuple[float, float] | None:
    """(start, end) of the measured runs on the controller's clock, from the agent's relayed phase events."""
    t0 = next((float(p["host_t"]) for p in host_phases if p.get("phase") == "measure"), None)
    if t0 is None:
        return None
    t1 = next((float(p["host_t"]) for p in host_phases if p.get("phase") == "done" and float(p["host_t"]) >= t0),
              t_end)
    return t0, t1


def throttling(probe: ThermalProbe, samples: Sequence[Sample], window: tuple[float, float], fraction: float,
               pin_cpus: Sequence[int] | None = None, tail_s: float = 1.0) -> list[str]:
    """Why the device throttled during the window (empty: it did not, as far as its files show).

    A trip point of type passive/hot/critical reached; a policy's frequency ceiling lowered below `fraction` of
    its value at session start; or the fastest CPU the model may use running below `fraction` of its maximum in
    at least two samples (one where the window holds fewer than four), the governor not being powersave/userspace.
    The fastest, not every CPU: idle cores clock down by design.
    """
    # The sample just after the window ends (within tail_s, one poll) still describes its last moments.
    inside = [s for s in samples if window[0] <= s.t <= window[1] + tail_s]
    reasons: list[str] = []
    for z in probe.zones:
        peak = max((s.zones[z.name] for s in inside if z.name in s.zones), default=None)
        for kind, trip in z.trips:
            if peak is not None and peak >= trip:
                reasons.append(f"{z.name} ({z.type}) reached its {kind} trip point {trip:g} °C "
                               f"(peak {peak:g} °C) during the measured runs")
                break
    used = [p for p in probe.policies if not pin_cpus or set(p.cpus) & set(pin_cpus)]
    for p in used:
        low = min((s.max_khz[p.name] for s in inside if p.name in s.max_khz), default=None)
        if p.max_khz and low is not None and low < fraction * p.max_khz:
            reasons.append(f"{p.name} frequency ceiling lowered from {p.max_khz / 1000:g} to {low / 1000:g} MHz "
                           "during the measured runs")
    low_samples: list[float] = []
    for s in inside:
        ratios = [s.cur_khz[p.name] / ref for p in used for ref in [p.hw_max_khz or p.max_khz]
                  if ref and p.name in s.cur_khz and s.governor.get(p.name, p.governor) not in IDLE_GOVERNORS]
        if ratios and max(ratios) < fraction:
            low_samples.append(max(ratios))
    if len(low_samples) >= (2 if len(inside) >= 4 else 1):
        reasons.append(f"CPU frequency below {fraction:.0%} of its maximum in {len(low_samples)} of {len(inside)} "
                       f"samples during the measured runs (lowest {min(low_samples):.0%})")
    return reasons


class SessionThermals:
    """What one device session knows about thermals: its probe and idle temperature, found at session start."""

    def __init__(self, profile: Profile, transport: Transport, root: str | None = None) -> None:
        self.profile, self.transport = profile, transport
        self.poll_s = POLL_S
        self.error: str | None = None
        self.probe: ThermalProbe | None = None
        try:
            self.probe = ThermalProbe(files_for(transport), SYSFS_ROOT if root is None else root)
        except DeviceLost:
            raise
        except DeviceError as e:
            self.error = f"thermal files unreadable: {e}"
        self.idle_c: float | None = profile.run.idle_temp_c
        self.idle_source = "profile run.idle_temp_c" if self.idle_c is not None else None
        if self.idle_c is None and self.probe is not None and self.probe.zones:
            self.idle_c = self.probe.temperature()
            self.idle_source = "measured when the session opened" if self.idle_c is not None else None

    def watch(self) -> RunWatch:
        """The thermal watch over one run: cool-down first, then the sampler."""
        return RunWatch(self)


class RunWatch:
    """Cool-down before one run, samples during it, the record's thermal entry and taint reasons after it."""

    def __init__(self, session: SessionThermals) -> None:
        self.s = session
        self.cooldown: dict[str, Any] | None = None
        self.charging: dict[str, Any] | None = None
        self.sampler: Sampler | None = None
        self.samples: list[Sample] = []

    def before(self) -> None:
        """Cool down (bounded) and start sampling; reads only, outside the agent's process."""
        s, run = self.s, self.s.profile.run
        probe = s.probe
        if run.cooldown_margin_c is None:
            self.cooldown = {"enabled": False}
        elif probe is None or not probe.zones or s.idle_c is None:
            self.cooldown = {"enabled": True, "available": False, "why": "no readable thermal zone on the device"}
        else:
            self.cooldown = dict(cool_down(probe, s.idle_c, run.cooldown_margin_c, run.cooldown_max_s, s.poll_s),
                                 enabled=True, available=True)
        try:
            b = devicestate.battery(s.transport)
            self.charging = {"battery": b.present, "charging": b.charging, "status": b.status,
                             "external_power": b.external_power, "level_pct": b.level_pct}
        except DeviceLost:
            raise
        except DeviceError as e:
            self.charging = {"available": False, "why": str(e)}
        if probe is not None and probe.available:
            self.sampler = Sampler(probe, s.poll_s)
            self.sampler.start()

    def stop(self) -> None:
        """Stop sampling (call in a finally: the run may have raised)."""
        if self.sampler is not None and not self.samples:
            self.samples = self.sampler.stop()

    def finish(self, host_phases: Sequence[dict[str, Any]], t_end: float) -> tuple[dict[str, Any], list[str]]:
        """(the record's thermal entry, taint reasons)."""
        self.stop()
        s, run = self.s, self.s.profile.run
        probe = s.probe
        taints: list[str] = []
        out: dict[str, Any] = {"idle_c": s.idle_c, "idle_source": s.idle_source, "cooldown": self.cooldown,
                               "power": self.charging, "poll_s": s.poll_s}
        c = self.cooldown or {}
        if c.get("timed_out"):
            taints.append(f"cool-down timed out after {c['waited_s']:g} s at {c['end_c']:g} °C "
                          f"(idle {c['idle_c']:g} °C + margin {c['margin_c']:g} °C)")
        if probe is None or not probe.available:
            out["available"] = False
            out["why"] = s.error or "no readable thermal zone or cpufreq policy on the device"
            return out, taints
        out["available"] = True
        out["notes"] = list(probe.notes)
        out["zones"] = [{"zone": z.name, "type": z.type, "cpu": z.cpu, "trips": [list(t) for t in z.trips]}
                        for z in probe.zones]
        out["cpufreq"] = [{"policy": p.name, "cpus": p.cpus, "hw_max_khz": p.hw_max_khz, "max_khz": p.max_khz,
                           "governor": (self.samples[-1].governor.get(p.name) if self.samples else None) or p.governor}
                          for p in probe.policies]
        out["trace"] = [{"t": round(x.t, 3), "temp_c": x.temp_c, "cur_khz": x.cur_khz} for x in self.samples]
        if self.sampler is not None and self.sampler.error:
            out["sampler_error"] = self.sampler.error
        window = measure_window(host_phases, t_end)
        if window is None:
            out["throttled"] = None
            out["why"] = "no measure phase: throttling not assessed"
            return out, taints
        inside = [x.temp_c for x in self.samples if window[0] <= x.t <= window[1] + s.poll_s and x.temp_c is not None]
        out["measure_temp_c"] = {"min": min(inside), "max": max(inside)} if inside else None
        reasons = throttling(probe, self.samples, window, run.throttle_freq_fraction, run.pin_cpus, s.poll_s)
        out["throttled"] = bool(reasons)
        out["throttle_reasons"] = reasons
        return out, taints + [f"throttled: {r}" for r in reasons]
