"""The battery fuel gauge (Android phones, Linux laptops and boards with a battery), read through a transport.

Polls /sys/class/power_supply/<battery>/current_now, voltage_now and status; power = |current| x voltage with
the sign fixed so that discharge is positive. The gauge is a relative source: it is smoothed, slow (often one
update per second or less) and corrupted by a charger, so its figures compare runs on one device, nothing more.

Units and sign differ between phones, so they are inferred from the readings (documented heuristics):
  - voltage: a battery sits between 2.5 and 20 V, so |median| >= 1e5 means uV, >= 100 mV, below that V;
  - current: the kernel ABI says uA, some vendors report mA. No phone draws 10 A, and none that runs a
    model draws under 10 mA, so max |reading| >= 10 000 means uA, below that mA;
  - sign: while the status says Discharging / Not charging, a negative median current means the device
    reports discharge as negative (the kernel ABI's current convention), and the sign is flipped.
A status of Charging or Full in any reading, or a charger online at start or stop (the device's
harness.devicestate.battery state: power_supply `online`, else Android's `dumpsys battery`), taints
the run.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.energy.base import Accuracy, EnergyError, FloatArray, Trace
from harness.energy.sysfs import FileReader
from harness.devicestate import BatteryState

ROOT = "/sys/class/power_supply"
DISCHARGING = ("discharging", "not charging")
CHARGING = ("charging", "full")


def current_scale(raw: Sequence[float]) -> tuple[float, str]:
    """(factor to A, unit) for raw current_now readings."""
    peak = max((abs(x) for x in raw), default=0.0)
    return (1e-6, "uA") if peak >= 10_000 else (1e-3, "mA")


def voltage_scale(raw: Sequence[float]) -> tuple[float, str]:
    """(factor to V, unit) for raw voltage_now readings."""
    med = float(np.median(np.abs(np.asarray(raw, dtype=np.float64)))) if len(raw) else 0.0
    if med >= 1e5:
        return 1e-6, "uV"
    if med >= 100:
        return 1e-3, "mV"
    return 1.0, "V"


def normalise(current_raw: Sequence[float], voltage_raw: Sequence[float],
              statuses: Sequence[str]) -> tuple[FloatArray, dict[str, Any]]:
    """Discharge power (W) per reading, and how the readings were read (units, sign flip)."""
    ci, cu = current_scale(current_raw)
    vi, vu = voltage_scale(voltage_raw)
    amps = np.asarray(current_raw, dtype=np.float64) * ci
    volts = np.asarray(voltage_raw, dtype=np.float64) * vi
    discharging = [s.strip().lower() in DISCHARGING for s in statuses]
    flip = False
    if amps.size and any(discharging):
        sel = amps[np.asarray(discharging, dtype=bool)] if len(discharging) == amps.size else amps
        flip = float(np.median(sel)) < 0
    power = (-amps if flip else amps) * volts
    return power, {"current_unit": cu, "voltage_unit": vu, "discharge_negative": flip}


class FuelGauge:
    source = "fuel_gauge"
    accuracy: Accuracy = "relative"

    def __init__(self, files: FileReader, *, root: str = ROOT, sample_hz: float = 4.0,
                 charger: Callable[[], BatteryState] | None = None) -> None:
        """charger: reads the device's battery and charger state (at start and at stop)."""
        self.files, self.root, self.sample_hz, self.charger = files, root.rstrip("/"), sample_hz, charger
        self.battery = ""
        self._t: list[float] = []
        self._i: list[float] = []
        self._v: list[float] = []
        self._s: list[str] = []
        self._states: list[BatteryState] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._t_start = 0.0

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "accuracy": self.accuracy, "meter": "battery fuel gauge",
                "where": self.files.where, "battery": self.battery, "sample_hz": self.sample_hz}

    def discover(self) -> str:
        """The battery's power_supply directory."""
        entries = self.files.listdir(self.root)
        if not entries:
            raise EnergyError(f"no fuel gauge on {self.files.where}: {self.root} is missing or empty")
        types = self.files.read([f"{self.root}/{e}/type" for e in entries])
        batteries = [e for e in entries if types.get(f"{self.root}/{e}/type", "").lower() == "battery"]
        if not batteries:
            raise EnergyError(f"no fuel gauge on {self.files.where}: no power_supply of type Battery in {self.root}")
        best = sorted(batteries, key=lambda e: (e != "battery", e))[0]
        return f"{self.root}/{best}"

    def _paths(self) -> list[str]:
        return [f"{self.battery}/current_now", f"{self.battery}/voltage_now", f"{self.battery}/status"]

    def _sample(self) -> bool:
        t0 = time.monotonic()
        got = self.files.read(self._paths())
        t1 = time.monotonic()
        ip, vp, sp = self._paths()
        try:
            i, v = float(got[ip]), float(got[vp])
        except (KeyError, ValueError):
            return False
        self._t.append((t0 + t1) / 2.0)
        self._i.append(i)
        self._v.append(v)
        self._s.append(got.get(sp, ""))
        return True

    def _snapshot_charger(self) -> None:
        if self.charger is not None:
            try:
                self._states.append(self.charger())
            except Exception as e:  # a failing state read must not fail the run; it is reported
                self._error = self._error or e

    def start(self) -> None:
        self.battery = self.discover()
        if not self._sample():
            raise EnergyError(f"fuel gauge on {self.files.where}: cannot read {self.battery}/current_now "
                              f"and voltage_now")
        self._snapshot_charger()
        self._t_start = time.monotonic()
        self._thread = threading.Thread(target=self._poll, name="fuel-gauge", daemon=True)
        self._thread.start()

    @property
    def readings(self) -> int:
        """How many readings were taken so far (for a caller that waits for some)."""
        return len(self._t)

    def _poll(self) -> None:
        period = 1.0 / self.sample_hz
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                next_t = max(next_t + period, time.monotonic())
                self._stop.wait(next_t - time.monotonic())
                self._sample()
        except Exception as e:
            self._error = e

    def stop(self) -> Trace:
        if self._thread is None:
            raise EnergyError("fuel gauge: stop() without a successful start()")
        t_stop = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=15.0)
        self._snapshot_charger()
        power, how = normalise(self._i, self._v, self._s)
        warnings = [f"fuel gauge polling ended early: {self._error}"] if self._error else []
        warnings.append(f"fuel gauge units inferred from magnitudes: current in {how['current_unit']}, voltage "
                        f"in {how['voltage_unit']}" + ("; discharge reported negative, sign flipped"
                                                       if how["discharge_negative"] else ""))
        tainted: list[str] = []
        seen = sorted({s for s in self._s if s.strip().lower() in CHARGING})
        if seen:
            tainted.append(f"charging: battery status {', '.join(seen)} during the run, the fuel gauge "
                           f"reads the charger too")
        if any(st.external_power for st in self._states) and not seen:
            tainted.append("charging: external power (USB/AC) online at the start or end of the run, the fuel "
                           "gauge reads the charger too")
        info = self.describe() | how | {"samples": len(self._t), "statuses": sorted(set(self._s)),
                                        "battery_states": [dataclasses.asdict(st) for st in self._states]}
        return Trace(self.source, self.accuracy, "power", np.asarray(self._t, dtype=np.float64), power,
                     self._t_start, t_stop, info=info, warnings=warnings, tainted=tainted)
