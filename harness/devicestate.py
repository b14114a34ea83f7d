"""The state of a device, read in one place through its transport's file reading (Transport.read_files and
list_dir: direct reads on this machine, one `grep -H` round trip on a remote one): thermal zones and their trip
points, cpufreq policies, and the battery / charger state. Nothing here asks what kind of transport it has.

The agent reports its own fingerprint (Android properties included) from inside the device; this module is what
the controller reads around a run, outside the agent's timing loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.procfs import celsius
from harness.energy.sysfs import FileReader, TransportFiles
from harness.transports.base import Transport

MAX_TRIPS = 12  # trip_point_0..11 are looked for in each zone
THROTTLE_TRIPS = ("passive", "hot", "critical")  # crossing one of these means the kernel acts on the CPU
IDLE_GOVERNORS = ("powersave", "userspace")  # a low frequency there is chosen, not imposed
# Zone types that measure CPU or SoC dies (Linux, Qualcomm tsens, MediaTek, Exynos, x86 packages).
_CPU_ZONE = re.compile(r"cpu|soc|pkg|core|cluster|tsens|apc|big|little|gold|silver|prime|x86", re.I)


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
    """The device's files, read by its transport (directly on this machine, one round trip on a remote one)."""
    return TransportFiles(transport)


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
        return self.files.read(paths)

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


POWER_SUPPLY = "/sys/class/power_supply"
_SUPPLY_KEYS = ("type", "status", "online", "present", "capacity", "temp", "voltage_now", "current_now")


@dataclass
class BatteryState:
    """The battery as the kernel reports it; `charging` decides whether a fuel-gauge reading means anything."""

    present: bool
    status: str | None = None  # Charging / Discharging / Full / Not charging
    level_pct: float | None = None
    temp_c: float | None = None
    voltage_now_uv: float | None = None
    current_now_ua: float | None = None  # sign and unit differ between phones: normalise in energy/gauge.py
    external_power: bool = False  # USB / AC online: the gauge then measures the charger, not the model

    @property
    def charging(self) -> bool:
        return self.external_power or (self.status or "").lower() in ("charging", "full")


def battery(t: Transport, root: str = POWER_SUPPLY) -> BatteryState:
    """Battery and charger state from power_supply (one read), else Android's `dumpsys battery`."""
    names = t.list_dir(root) or []
    got = t.read_files([f"{root}/{n}/{k}" for n in names for k in _SUPPLY_KEYS])
    supplies = {n: {k: got[f"{root}/{n}/{k}"] for k in _SUPPLY_KEYS if f"{root}/{n}/{k}" in got} for n in names}
    bat = next((v for v in supplies.values() if v.get("type") == "Battery"), None)
    online = any(v.get("online") == "1" for v in supplies.values() if v.get("type") not in (None, "Battery"))
    if bat is None:
        return _dumpsys_battery(t) or BatteryState(present=False, external_power=online)

    def num(key: str, per_unit: float = 1.0) -> float | None:
        v = _int(bat.get(key)) if bat else None
        return None if v is None else v / per_unit

    return BatteryState(present=bat.get("present", "1") == "1", status=bat.get("status"), level_pct=num("capacity"),
                        temp_c=num("temp", 10.0), voltage_now_uv=num("voltage_now"), current_now_ua=num("current_now"),
                        external_power=online)


def _dumpsys_battery(t: Transport) -> BatteryState | None:
    """Android without readable power_supply files (SELinux on many phones): the battery service's view."""
    res = t.run(["dumpsys", "battery"], timeout=30)
    if res.exit_code != 0:
        return None
    kv = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in res.stdout.splitlines()) if v}
    if "level" not in kv:
        return None
    powered = any(kv.get(k) == "true" for k in ("ac powered", "usb powered", "wireless powered", "dock powered"))
    status = {"2": "Charging", "3": "Discharging", "4": "Not charging", "5": "Full"}.get(kv.get("status", ""))
    level, temp, volt = (_int(kv.get(k)) for k in ("level", "temperature", "voltage"))
    return BatteryState(present=kv.get("present", "true") == "true", status=status,
                        level_pct=None if level is None else float(level),
                        temp_c=None if temp is None else temp / 10.0,
                        voltage_now_uv=None if volt is None else volt * 1000.0, external_power=powered)
