"""The Nordic PPK2's serial protocol: commands, calibration metadata, sample words, current, spike filter.

As Nordic's nRF Connect Power Profiler speaks it (and the ppk2-api package after it):
  - single-byte opcodes, some with arguments: GET_META_DATA 0x19 answers calibration text, one `key: value`
    per line, ending in `END`; REGULATOR_SET 0x0d b1 b2 sets the source voltage; DEVICE_RUNNING_SET 0x0c 1
    powers the DUT; SET_POWER_MODE 0x11 1|2 selects ampere (in line) or source mode; AVERAGE_START 0x06 and
    AVERAGE_STOP 0x07 start and stop the 100 kS/s stream.
  - each sample is 4 bytes little-endian: bits 0-13 ADC, 14-16 measurement range, 18-23 a counter that
    increments per sample (a jump means lost samples), 24-31 the logic port.
  - current (A) = UG * (x * (GS * x + GI) + S * vdd_V + I) with x = (4 * ADC - O) * (1.8 / 163840) / R,
    every coefficient taken per range from the metadata; right after a range switch the value is replaced by
    a rolling average (the "spike filter").
Shared by the driver (ppk2.py) and the emulator (harness/standins/ppk2_emulator.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.energy.base import FloatArray

NO_OP = 0x00
AVERAGE_START = 0x06
AVERAGE_STOP = 0x07
DEVICE_RUNNING_SET = 0x0C
REGULATOR_SET = 0x0D
SET_POWER_MODE = 0x11
GET_META_DATA = 0x19
RESET = 0x20

SAMPLE_RATE_HZ = 100_000
ADC_MULT = 1.8 / 163840
VDD_MIN_MV = 800
VDD_MAX_MV = 5000
N_RANGES = 5

IntArray = npt.NDArray[np.int64]


def _floats(value: float, n: int = N_RANGES) -> list[float]:
    return [value] * n


@dataclass
class Calibration:
    """Per-range coefficients from the PPK2's metadata (defaults: Nordic's nominal values)."""

    r: list[float] = field(default_factory=lambda: [1031.64, 101.65, 10.15, 0.94, 0.043])
    gs: list[float] = field(default_factory=lambda: _floats(1.0))
    gi: list[float] = field(default_factory=lambda: _floats(1.0))
    o: list[float] = field(default_factory=lambda: _floats(0.0))
    s: list[float] = field(default_factory=lambda: _floats(0.0))
    i: list[float] = field(default_factory=lambda: _floats(0.0))
    ug: list[float] = field(default_factory=lambda: _floats(1.0))

    def arrays(self) -> dict[str, FloatArray]:
        return {k: np.asarray(getattr(self, k), dtype=np.float64) for k in ("r", "gs", "gi", "o", "s", "i", "ug")}


_META_LINE = re.compile(r"^\s*([A-Za-z]+?)(\d?)\s*:\s*(\S+)\s*$")


def parse_metadata(text: str) -> tuple[Calibration, dict[str, str]]:
    """Calibration and the other fields (Calibrated, HW, IA, mode, VDD ...) from GET_META_DATA's answer.

    Like ppk2-api: a resistor value of 0 (seen on some units) or an unparsable one (`-nan`) keeps the default.
    """
    cal = Calibration()
    other: dict[str, str] = {}
    for line in text.replace("\r", "").split("\n"):
        if line.strip() == "END":
            break
        m = _META_LINE.match(line)
        if not m:
            continue
        key, idx, raw = m.group(1), m.group(2), m.group(3)
        name = key.lower()
        if idx and name in ("r", "gs", "gi", "o", "s", "i", "ug") and int(idx) < N_RANGES:
            try:
                val = float(raw)
            except ValueError:
                continue
            if val != val or (name == "r" and val == 0.0):  # NaN, or a zero resistor
                continue
            getattr(cal, name)[int(idx)] = val
        else:
            other[key + idx] = raw
    return cal, other


def metadata_text(cal: Calibration, extra: dict[str, str] | None = None) -> str:
    """GET_META_DATA's answer for a calibration (what the emulator sends)."""
    lines = [f"Calibrated: {(extra or {}).get('Calibrated', '0')}"]
    for key in ("r", "gs", "gi", "o", "s", "i", "ug"):
        for n, v in enumerate(getattr(cal, key)):
            lines.append(f"{key.upper()}{n}: {v!r}")
    for k, v in (extra or {}).items():
        if k != "Calibrated":
            lines.append(f"{k}: {v}")
    return "\n".join(lines) + "\nEND\n"


def voltage_command(mv: int) -> bytes:
    """REGULATOR_SET for a source voltage in mV (800..5000): 800 mV is (3, 32), then linear."""
    mv = min(max(int(mv), VDD_MIN_MV), VDD_MAX_MV)
    diff = mv - VDD_MIN_MV + 32
    return bytes([REGULATOR_SET, 3 + diff // 256, diff % 256])


def voltage_from_command(b1: int, b2: int) -> int:
    """The inverse of voltage_command's two argument bytes, in mV."""
    return (b1 - 3) * 256 + b2 - 32 + VDD_MIN_MV


@dataclass
class RawSamples:
    adc: IntArray
    range: IntArray
    counter: IntArray
    logic: IntArray


def unpack(buf: bytes) -> RawSamples:
    """Split whole 4-byte little-endian samples into their fields (a trailing partial sample is ignored)."""
    n = len(buf) // 4
    words = np.frombuffer(buf, dtype="<u4", count=n).astype(np.int64)
    return RawSamples(
        adc=words & 0x3FFF,
        range=np.minimum((words >> 14) & 0x7, N_RANGES - 1),
        counter=(words >> 18) & 0x3F,
        logic=(words >> 24) & 0xFF,
    )


def current_a(cal: Calibration, rng: IntArray, adc: IntArray, vdd_mv: float) -> FloatArray:
    """Calibrated current in A for each sample (before the spike filter)."""
    c = cal.arrays()
    x = (adc.astype(np.float64) * 4.0 - c["o"][rng]) * (ADC_MULT / c["r"][rng])
    out: FloatArray = c["ug"][rng] * (x * (c["gs"][rng] * x + c["gi"][rng]) + (c["s"][rng] * (vdd_mv / 1000.0) + c["i"][rng]))
    return out


class SpikeFilter:
    """Nordic's range-switch filter, exact, run sample by sample only near range switches.

    The rolling averages it uses forget exponentially (alpha 0.18 and 0.06), so starting them WINDOW samples
    before a switch gives the same output as running them from the stream's start (to about 1e-8).
    """

    WINDOW = 320

    def __init__(self, alpha: float = 0.18, alpha5: float = 0.06, samples: int = 3) -> None:
        self.alpha, self.alpha5, self.samples = alpha, alpha5, samples
        self._tail_v: FloatArray = np.zeros(0)
        self._tail_r: IntArray = np.zeros(0, dtype=np.int64)

    def apply(self, v: FloatArray, r: IntArray) -> FloatArray:
        hv = np.concatenate([self._tail_v, v])
        hr = np.concatenate([self._tail_r, r])
        h = self._tail_v.size
        out = v.copy()
        changes = np.flatnonzero(hr[1:] != hr[:-1]) + 1
        changes = changes[changes + self.samples > h]
        i = 0
        while i < changes.size:
            j = i
            while j + 1 < changes.size and changes[j + 1] - self.WINDOW <= changes[j] + self.samples:
                j += 1
            start = max(0, int(changes[i]) - self.WINDOW)
            end = min(hv.size, int(changes[j]) + self.samples)
            seg = self._run(hv[start:end], hr[start:end])
            lo = max(start, h)
            out[lo - h:end - h] = seg[lo - start:]
            i = j + 1
        keep = self.WINDOW + self.samples + 2
        self._tail_v, self._tail_r = hv[-keep:].copy(), hr[-keep:].copy()
        return out

    def _run(self, v: FloatArray, r: IntArray) -> FloatArray:
        out = v.copy()
        avg = avg4 = float(v[0])
        prev_range = int(r[0])
        after = consecutive = 0
        a, a5 = self.alpha, self.alpha5
        for k in range(v.size):
            x, rk = float(v[k]), int(r[k])
            prev_avg, prev_avg4 = avg, avg4
            avg = a * x + (1 - a) * avg
            avg4 = a5 * x + (1 - a5) * avg4
            if rk != prev_range or after > 0:
                if rk != prev_range:
                    consecutive, after = 0, self.samples
                else:
                    consecutive += 1
                if rk == 4:
                    if consecutive < 2:
                        avg, avg4 = prev_avg, prev_avg4
                    out[k] = avg4
                else:
                    out[k] = avg
                after -= 1
            prev_range = rk
        return out
