"""Device specifics read through any transport: thermal zones, CPU frequencies and governors, battery and
charging state, properties, and CPU pinning with taskset.

They read Linux sysfs, so they work on ARM boards and laptops over SSH as well as on phones over adb;
`props` and the `dumpsys battery` fallback are Android's. The fuel-gauge energy source lives in
harness/energy/gauge.py; this module only reports the state that decides whether its figures are usable.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.transports.base import Transport

_THERMAL = ('for z in /sys/class/thermal/thermal_zone*; do [ -r "$z/temp" ] || continue; '
            'echo "${z##*/} $(cat "$z/type" 2>/dev/null | tr " " _) $(cat "$z/temp" 2>/dev/null)"; done')
_CPUFREQ = ('for c in /sys/devices/system/cpu/cpu[0-9]*; do f=$c/cpufreq; [ -d "$f" ] || continue; '
            'echo "${c##*cpu} $(cat $f/scaling_cur_freq 2>/dev/null || echo -) $(cat $f/scaling_min_freq 2>/dev/null || echo -) '
            '$(cat $f/scaling_max_freq 2>/dev/null || echo -) $(cat $f/cpuinfo_max_freq 2>/dev/null || echo -) '
            '$(cat $f/scaling_governor 2>/dev/null || echo -)"; done')
_BATTERY = ('for s in /sys/class/power_supply/*; do t=$(cat $s/type 2>/dev/null); '
            'for k in type status online present capacity temp voltage_now current_now charge_counter; do '
            '[ -r "$s/$k" ] && echo "${s##*/} $k $(cat $s/$k 2>/dev/null)"; done; done')


@dataclass
class ThermalZone:
    zone: str
    type: str
    celsius: float


@dataclass
class CpuFreq:
    cpu: int
    cur_khz: int | None
    min_khz: int | None
    max_khz: int | None
    hw_max_khz: int | None
    governor: str | None


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


def _run(t: Transport, script: str, timeout: float = 30) -> str:
    res = t.run(["sh", "-c", script], timeout=timeout)
    return res.stdout if res.exit_code == 0 else ""


def _int(s: str) -> int | None:
    return int(s) if s.lstrip("-").isdigit() else None


def thermal_zones(t: Transport) -> list[ThermalZone]:
    """Every readable thermal zone; temperatures in degrees C (sysfs gives millidegrees, some vendors degrees)."""
    out = []
    for line in _run(t, _THERMAL).splitlines():
        parts = line.split()
        if len(parts) == 3 and _int(parts[2]) is not None:
            raw = int(parts[2])
            out.append(ThermalZone(parts[0], parts[1], raw / 1000.0 if abs(raw) > 200 else float(raw)))
    return out


def max_temperature(t: Transport) -> float | None:
    """The hottest zone, the number a cool-down waits on."""
    temps = [z.celsius for z in thermal_zones(t)]
    return max(temps) if temps else None


def cpu_frequencies(t: Transport) -> list[CpuFreq]:
    """Per CPU: current, scaling min/max and hardware max frequency (kHz), and governor."""
    out = []
    for line in _run(t, _CPUFREQ).splitlines():
        p = line.split()
        if len(p) == 6 and p[0].isdigit():
            out.append(CpuFreq(int(p[0]), _int(p[1]), _int(p[2]), _int(p[3]), _int(p[4]),
                               None if p[5] == "-" else p[5]))
    return out


def battery(t: Transport) -> BatteryState:
    """Battery and charger state from /sys/class/power_supply, else Android's `dumpsys battery`."""
    supplies: dict[str, dict[str, str]] = {}
    for line in _run(t, _BATTERY).splitlines():
        p = line.split(maxsplit=2)
        if len(p) == 3:
            supplies.setdefault(p[0], {})[p[1]] = p[2]
    bat = next((v for v in supplies.values() if v.get("type") == "Battery"), None)
    online = any(v.get("online") == "1" for v in supplies.values() if v.get("type") not in (None, "Battery"))
    if bat is None:
        return _dumpsys_battery(t) or BatteryState(present=False, external_power=online)

    def num(key: str, scale: float = 1.0) -> float | None:
        v = _int(bat.get(key, "")) if bat else None
        return None if v is None else v * scale

    return BatteryState(present=bat.get("present", "1") == "1", status=bat.get("status"), level_pct=num("capacity"),
                        temp_c=num("temp", 0.1), voltage_now_uv=num("voltage_now"), current_now_ua=num("current_now"),
                        external_power=online)


def _dumpsys_battery(t: Transport) -> BatteryState | None:
    text = _run(t, "dumpsys battery 2>/dev/null")
    kv = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if v}
    if "level" not in kv:
        return None
    powered = any(kv.get(k) == "true" for k in ("ac powered", "usb powered", "wireless powered", "dock powered"))
    status = {"2": "Charging", "3": "Discharging", "4": "Not charging", "5": "Full"}.get(kv.get("status", ""))
    level, temp, volt = (_int(kv.get(k, "")) for k in ("level", "temperature", "voltage"))
    return BatteryState(present=kv.get("present", "true") == "true", status=status,
                        level_pct=None if level is None else float(level),
                        temp_c=None if temp is None else temp / 10.0,
                        voltage_now_uv=None if volt is None else volt * 1000.0, external_power=powered)


def props(t: Transport, *names: str) -> dict[str, str]:
    """Android system properties (getprop); all of them when no names are given."""
    if names:
        res = t.run(["sh", "-c", 'for p in "$@"; do echo "$p=$(getprop "$p")"; done', "sh", *names], timeout=30)
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    out = {}
    for line in t.run(["getprop"], timeout=30).stdout.splitlines():
        if line.startswith("[") and "]: [" in line:
            k, _, v = line[1:].partition("]: [")
            out[k] = v.rstrip("]")
    return out


def cpu_mask(cpus: list[int]) -> str:
    """taskset's hexadecimal mask for a CPU list: [6, 7] -> 'c0'."""
    if not cpus or any(c < 0 for c in cpus):
        raise ValueError(f"invalid CPU list {cpus!r}")
    return format(sum(1 << c for c in set(cpus)), "x")


def pinned(argv: list[str], cpus: list[int] | None) -> list[str]:
    """argv run under `taskset MASK` (big cores on big.LITTLE, as benchmark_model is run); unchanged for None."""
    return argv if not cpus else ["taskset", cpu_mask(cpus), *argv]
