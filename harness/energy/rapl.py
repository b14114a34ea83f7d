"""Linux RAPL: cumulative energy counters in /sys/class/powercap/intel-rapl*/energy_uj, polled in a thread.

Domains summed: every top-level package zone (`intel-rapl:N`, name `package-N`) plus any `dram` sub-zone (not
part of the package's count); `psys` (the whole SoC, which includes the packages) only where no package zone
exists, so nothing is counted twice. Each counter wraps to 0 after max_energy_range_uj; a reading below the
previous one adds that range (the poll interval must stay below the wrap time: ~40 min at 100 W).
On kernels >= 5.10 energy_uj is readable by root only.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np

from harness.energy.base import Accuracy, EnergyError, FloatArray, Trace
from harness.energy.sysfs import FileReader, LocalFiles

ROOT = "/sys/class/powercap"
_TOP = re.compile(r"^intel-rapl:\d+$")
_SUB = re.compile(r"^intel-rapl:\d+:\d+$")


def unwrap(readings_uj: FloatArray, max_range_uj: float) -> FloatArray:
    """Cumulative energy in J from raw counter readings, adding max_range at each wrap."""
    d = np.diff(readings_uj)
    d = np.where(d < 0, d + max_range_uj, d)
    return np.concatenate([[0.0], np.cumsum(d)]) / 1e6


class RaplCounter:
    source = "rapl"
    accuracy: Accuracy = "calibrated"

    def __init__(self, files: FileReader | None = None, *, root: str = ROOT, sample_hz: float = 10.0) -> None:
        self.files: FileReader = files or LocalFiles()
        self.root, self.sample_hz = root.rstrip("/"), sample_hz
        self.domains: dict[str, str] = {}  # zone dir -> name
        self.max_range: dict[str, float] = {}
        self._t: list[float] = []
        self._raw: list[list[float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._t_start = 0.0

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "accuracy": self.accuracy, "meter": "Linux RAPL (powercap)",
                "where": self.files.where, "root": self.root, "sample_hz": self.sample_hz,
                "domains": sorted(self.domains.values())}

    def _unavailable(self, why: str) -> EnergyError:
        return EnergyError(f"RAPL is not available on {self.files.where}: {why}",
                           hint="RAPL needs an Intel (or recent AMD) CPU on Linux with the powercap driver; "
                                "choose another energy.kind in the device profile")

    def discover(self) -> dict[str, str]:
        """The zones to sum, {zone directory: name}; raises EnergyError when there are none."""
        entries = self.files.listdir(self.root)
        if entries is None:
            raise self._unavailable(f"{self.root} does not exist (no powercap in this kernel)")
        zones = [e for e in entries if _TOP.match(e) or _SUB.match(e)]
        if not zones:
            raise self._unavailable(f"{self.root} has no intel-rapl zones")
        names = self.files.read([f"{self.root}/{z}/name" for z in zones])
        named = {z: names.get(f"{self.root}/{z}/name", "") for z in zones}
        chosen = {z: n for z, n in named.items() if (_TOP.match(z) and n.startswith("package")) or n == "dram"}
        if not any(n.startswith("package") for n in chosen.values()):
            chosen = {z: n for z, n in named.items() if _TOP.match(z)}
        return {f"{self.root}/{z}": n for z, n in chosen.items()}

    def _read(self) -> list[float] | None:
        paths = [f"{d}/energy_uj" for d in self.domains]
        got = self.files.read(paths)
        try:
            return [float(got[p]) for p in paths]
        except (KeyError, ValueError):
            return None

    def start(self) -> None:
        self.domains = self.discover()
        ranges = self.files.read([f"{d}/max_energy_range_uj" for d in self.domains])
        for d in self.domains:
            try:
                self.max_range[d] = float(ranges[f"{d}/max_energy_range_uj"])
            except (KeyError, ValueError):
                raise self._unavailable(f"cannot read {d}/max_energy_range_uj") from None
        if self._read() is None:
            first = f"{next(iter(self.domains))}/energy_uj"
            if self.files.denied(first):
                raise EnergyError(f"RAPL on {self.files.where}: {first} is readable by root only "
                                  f"(kernels >= 5.10)", hint="run edgefarm as root, or chmod the energy_uj files")
            raise self._unavailable(f"cannot read {first}")
        self._t_start = time.monotonic()
        self._thread = threading.Thread(target=self._poll, name="rapl", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        period = 1.0 / self.sample_hz
        next_t = time.monotonic()
        try:
            while True:
                t0 = time.monotonic()
                values = self._read()
                t1 = time.monotonic()
                if values is not None:
                    self._t.append((t0 + t1) / 2.0)
                    self._raw.append(values)
                if self._stop.is_set():
                    return  # one last reading after stop(), so the trace covers the run's end
                next_t = max(next_t + period, time.monotonic())
                self._stop.wait(next_t - time.monotonic())
        except Exception as e:
            self._error = e

    def stop(self) -> Trace:
        if self._thread is None:
            raise EnergyError("RAPL: stop() without a successful start()")
        t_stop = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=10.0)
        warnings = [f"RAPL polling ended early: {self._error}"] if self._error else []
        t = np.asarray(self._t, dtype=np.float64)
        energy = np.zeros(t.size)
        if t.size:
            raw = np.asarray(self._raw, dtype=np.float64)
            for k, d in enumerate(self.domains):
                energy += unwrap(raw[:, k], self.max_range[d])
        return Trace(self.source, self.accuracy, "energy", t, energy, self._t_start, t_stop,
                     info=self.describe() | {"samples": int(t.size)}, warnings=warnings)
