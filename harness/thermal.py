"""Thermals and run hygiene on the controller: idle temperature, cool-down before a run, a sampler during it,
and a verdict after it on whether the device throttled while the measured runs went on.

Everything is read through the device's own files (harness/energy/sysfs.py: directly for the local device,
else one `grep` per poll through the transport), never inside the agent's timing loop. Where a device shows no
thermal zone or cpufreq policy, the record says "not available" and no figure is made up.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.energy.sysfs import FileReader, LocalFiles, TransportFiles
from harness.errors import DeviceError, DeviceLost
from harness.profiles import Profile
from harness.transports import android
from harness.transports.base import Transport
from harness.transports.local import LocalTransport

SYSFS_ROOT = "/sys"  # tests point this at a fake tree
POLL_S = 1.0  # cool-down and sampler period
MAX_TRIPS = 12  # trip_point_0..11 are looked for in each zone
THROTTLE_TRIPS = ("passive", "hot", "critical")  # crossing one of these means the kernel acts on the CPU
IDLE_GOVERNORS = ("powersave", "userspace")  # a low frequency there is chosen, not imposed
# Zone types that measure CPU or SoC dies (Linux, Qualcomm tsens, MediaTek, Exynos, x86 packages).
_CPU_ZONE = re.compile(r"cpu|soc|pkg|core|cluster|tsens|apc|big|little|gold|silver|prime|x86", re.I)
_CHUNK = 96  # paths per read through a transport: keeps a remote command line short


@dataclass
class Zone:
    name: str  # thermal_zone3
    type: str  # cpu-thermal, x86_pkg_temp, ...
    cpu: bool  # counted in the device temperature
    trips: list[tuple[str, float]] = field(default_factory=list)  # (type, degrees C) of throttling trips


@dataclass
class Policy:
    name: str  # policy0 (or cpu0 on kernels without policy directories)
    cpus: list[int]
    hw_max_khz: int | None  # cpuinfo_max_freq
    max_khz: int | None  # scaling_max_freq when the session opened
    governor: str | None


@dataclass
class Sample:
    t: float  # controller monotonic seconds, as host_phases
    temp_c: float | None  # hottest CPU zone
    zones: dict[str, float]
    cur_khz: dict[str, int]
    max_khz: dict[str, int]
    governor: dict[str, str]


def celsius(raw: str) -> float | None:
    """A thermal zone reading in degrees C: millidegrees usually, whole degrees on some vendors' kernels."""
    try:
        v = int(raw.strip())
    except ValueError:
        return None
    return v / 1000.0 if abs(v) > 200 else float(v)


def _int(raw: str | None) -> int | None:
    try:
        return int(raw.strip()) if raw is not None else None
    except ValueError:
        return None


def _cpus(text: str) -> list[int]:
    """'0 1 2 3' (related_cpus) or '0-3,6' (a cpulist) -> [0, 1, 2, 3(, 6)]."""
    out: list[int] = []
    for part in text.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += list(range(int(lo), int(hi or lo) + 1))
    return out


def files_for(transport: Transport) -> FileReader:
    """Files of the device: read directly for this machine, through the transport for any other."""
    return LocalFiles() if isinstance(transport, LocalTransport) else TransportFiles(transport)


class ThermalProbe:
    """The thermal zones and cpufreq policies of one device, found once, then read in one call per poll."""

    def __init__(self, files: FileReader, root: str = "/sys") -> None:
        self.files, self.root = files, root.rstrip("/") or "/"
        self.zones: list[Zone] = []
        self.policies: list[Policy] = []
        self.notes: list[str] = []
        self._discover()

    @property
    def available(self) -> bool:
        return bool(self.zones or self.policies)

    def _read(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(paths), _CHUNK):
            out.update(self.files.read(paths[i:i + _CHUNK]))
        return out

    def _zone_dir(self, z: str) -> str:
        return f"{self.root}/class/thermal/{z}"

    def _policy_dir(self, p: str) -> str:
        return (f"{self.root}/devices/system/cpu/cpufreq/{p}" if p.startswith("policy")
                else f"{self.root}/devices/system/cpu/{p}/cpufreq")

    def _discover(self) -> None:
        names = [n for n in self.files.listdir(f"{self.root}/class/thermal") or [] if n.startswith("thermal_zone")]
        keys = ["type", "temp"] + [f"trip_point_{i}_{k}" for i in range(MAX_TRIPS) for k in ("type", "temp")]
        got = self._read([f"{self._zone_dir(z)}/{k}" for z in names for k in keys])
        zones: list[Zone] = []
        for z in names:
            d = self._zone_dir(z)
            if celsius(got.get(f"{d}/temp", "")) is None:
                continue  # no readable temperature (SELinux on many phones, or a zone without a sensor)
            ztype = got.get(f"{d}/type", "?").replace(" ", "_")
            trips = []
            for i in range(MAX_TRIPS):
                kind, temp = got.get(f"{d}/trip_point_{i}_type"), celsius(got.get(f"{d}/trip_point_{i}_temp", ""))
                if kind in THROTTLE_TRIPS and temp is not None and temp > 0:
                    trips.append((kind, temp))
            zones.append(Zone(z, ztype, bool(_CPU_ZONE.search(ztype)), trips))
        if zones and not any(z.cpu for z in zones):
            self.notes.append("no zone type looks like a CPU or SoC: the device temperature is the hottest zone")
            for zone in zones:
                zone.cpu = True
        # Poll the CPU zones and any zone whose trip points throttle (skin and battery trips do on phones).
        self.zones = [z for z in zones if z.cpu or z.trips]

        pdirs = [p for p in self.files.listdir(f"{self.root}/devices/system/cpu/cpufreq") or []
                 if p.startswith("policy")]
        if not pdirs:  # older kernels: per-CPU cpufreq directories only
            pdirs = [c for c in self.files.listdir(f"{self.root}/devices/system/cpu") or [] if re.fullmatch(r"cpu\d+", c)]
        pkeys = ("related_cpus", "affected_cpus", "cpuinfo_max_freq", "scaling_max_freq", "scaling_governor",
                 "scaling_cur_freq")
        pgot = self._read([f"{self._policy_dir(p)}/{k}" for p in pdirs for k in pkeys])
        for p in pdirs:
            d = self._policy_dir(p)
            if _int(pgot.get(f"{d}/scaling_cur_freq")) is None:
                continue
            cpus = _cpus(pgot.get(f"{d}/related_cpus") or pgot.get(f"{d}/affected_cpus") or p[3:])
            self.policies.append(Policy(p, cpus, _int(pgot.get(f"{d}/cpuinfo_max_freq")),
                                        _int(pgot.get(f"{d}/scaling_max_freq")), pgot.get(f"{d}/scaling_governor")))

    def read(self, t: float | None = None) -> Sample:
        """Temperatures, current and ceiling frequencies and governors, in one read."""
        paths = [f"{self._zone_dir(z.name)}/temp" for z in self.zones]
        for p in self.policies:
            paths += [f"{self._policy_dir(p.name)}/{k}" for k in ("scaling_cur_freq", "scaling_max_freq",
                                                                  "scaling_governor")]
        got = self._read(paths)
        s = Sample(time.monotonic() if t is None else t, None, {}, {}, {}, {})
        for z in self.zones:
            c = celsius(got.get(f"{self._zone_dir(z.name)}/temp", ""))
            if c is not None:
                s.zones[z.name] = c
        cpu_temps = [s.zones[z.name] for z in self.zones if z.cpu and z.name in s.zones]
        s.temp_c = max(cpu_temps) if cpu_temps else None
        for p in self.policies:
            d = self._policy_dir(p.name)
            cur, ceiling, gov = (_int(got.get(f"{d}/scaling_cur_freq")), _int(got.get(f"{d}/scaling_max_freq")),
                                 got.get(f"{d}/scaling_governor"))
            if cur is not None:
                s.cur_khz[p.name] = cur
            if ceiling is not None:
                s.max_khz[p.name] = ceiling
            if gov:
                s.governor[p.name] = gov
        return s

    def temperature(self) -> float | None:
        """The hottest CPU zone now (None where no zone is readable)."""
        return self.read().temp_c if self.zones else None


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
            b = android.battery(s.transport)
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
