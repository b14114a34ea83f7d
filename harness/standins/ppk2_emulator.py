"""A Nordic PPK2 emulated on a pseudo-terminal, speaking the real serial protocol.

Product code, like labgrid's fake drivers: tests use it, and a user can point a profile's energy.port at it
to try a farm run without the hardware. It answers GET_META_DATA with calibration text ending in END, honours
REGULATOR_SET / SET_POWER_MODE / DEVICE_RUNNING_SET, and after AVERAGE_START streams 4-byte samples at
100 kS/s in real time (14-bit ADC, range, per-sample 6-bit counter, logic byte) that encode a known current:
a constant, a list of steps after the stream starts, or levels set while it runs. Levels may be currents (A)
or powers (W, divided by the source voltage). The unmodified ppk2-api client reads it too.

    python -m harness.standins.ppk2_emulator --ma 12.3        # prints the port path, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import select
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.energy import ppk2_protocol as ppk2
from harness.energy.ppk2_protocol import ADC_MULT, Calibration
from harness.standins.pty_device import PtyDevice, Schedule, open_raw_pty, serve_until_interrupted  # noqa: F401

Unit = Literal["A", "W"]

# Command lengths in bytes, opcode included (unknown opcodes count as one byte).
_LENGTHS = {0x01: 3, 0x02: 3, 0x03: 3, 0x04: 3, 0x08: 2, 0x09: 2, 0x0C: 2, 0x0D: 3, 0x0E: 2, 0x0F: 2,
            0x11: 2, 0x12: 3, 0x25: 6}

_MAX_BACKLOG = 4 << 20  # bytes of unsent samples kept for a client that does not read

# A calibration that is not the nominal one, so a client that ignores the metadata reads wrong currents.
EMULATED_CALIBRATION = Calibration(
    r=[1029.8, 101.41, 10.118, 0.9372, 0.04291],
    gs=[0.0, 1.2e-4, 3.0e-4, 1.1e-3, 4.0e-3],
    gi=[0.9987, 1.0021, 0.9994, 1.0013, 0.9978],
    o=[112.0, 64.0, 48.0, 36.0, 28.0],
    s=[2.0e-9, 1.0e-8, 0.0, 0.0, 0.0],
    i=[-1.0e-8, 2.0e-8, 1.0e-7, 0.0, 0.0],
    ug=[1.0, 1.0, 1.0, 1.0, 1.0],
)


def encode(cal: Calibration, amps: npt.NDArray[np.float64], vdd_mv: float, first_counter: int,
           logic: int = 0) -> bytes:
    """Samples for currents (A): the lowest range whose ADC does not saturate, the calibration inverted."""
    c = cal.arrays()
    words = np.zeros(amps.size, dtype=np.int64)
    done = np.zeros(amps.size, dtype=bool)
    for rng in range(ppk2.N_RANGES):
        # UG * (x * (GS * x + GI) + S * vdd + I) = A  ->  GS x^2 + GI x + k = 0, the root near k / -GI
        k = c["s"][rng] * vdd_mv / 1000.0 + c["i"][rng] - amps / c["ug"][rng]
        x = -2.0 * k / (c["gi"][rng] + np.sqrt(np.maximum(c["gi"][rng] ** 2 - 4.0 * c["gs"][rng] * k, 0.0)))
        adc = np.rint((x * c["r"][rng] / ADC_MULT + c["o"][rng]) / 4.0).astype(np.int64)
        ok = ~done & (adc >= 0) & ((adc <= 15500) | (rng == ppk2.N_RANGES - 1))
        words[ok] = np.clip(adc[ok], 0, 0x3FFF) | (rng << 14)
        done |= ok
    counter = (first_counter + np.arange(amps.size, dtype=np.int64)) & 0x3F
    words |= (counter << 18) | ((logic & 0xFF) << 24)
    return words.astype("<u4").tobytes()


class Ppk2Emulator(PtyDevice):
    """The emulated meter; `path` is the port to open. Use as a context manager, or start() and close()."""

    def __init__(
        self,
        level: float = 0.0123,
        *,
        unit: Unit = "A",
        steps: Sequence[tuple[float, float]] = (),
        sample_rate: int = ppk2.SAMPLE_RATE_HZ,
        calibration: Calibration = EMULATED_CALIBRATION,
        noise: float = 0.0,
        seed: int = 0,
        metadata_extra: dict[str, str] | None = None,
    ) -> None:
        """level: the current (A) or power (W) before any step; steps: (seconds after AVERAGE_START, level);
        noise: standard deviation of gaussian noise on each sample, in the level's unit."""
        self.unit, self.sample_rate, self.calibration, self.noise = unit, sample_rate, calibration, noise
        self.schedule = Schedule(level)
        self.steps = list(steps)
        self.metadata_extra = {"Calibrated": "1", "VDD": "3000", "HW": "9173", "mode": "2", "IA": "56"}
        self.metadata_extra.update(metadata_extra or {})
        self.vdd_mv = 3000
        self.power_mode = 0
        self.dut_on = False
        self.stream_started_at: float | None = None  # host monotonic time of the latest AVERAGE_START
        self.step_times: list[float] = []  # host monotonic times of the steps, once streaming
        self.samples_sent = 0
        self.samples_dropped = 0
        self.commands: list[int] = []
        self._rng = np.random.default_rng(seed)
        super().__init__("ppk2-emulator")
        self._out = bytearray()
        self._inbuf = bytearray()
        self._streaming = False
        self._produced = 0

    def __enter__(self) -> Ppk2Emulator:
        self.start()
        return self

    def set_level(self, level: float, at: float | None = None) -> float:
        """Change the emulated current/power at host monotonic time `at` (default now); returns that time."""
        return self.schedule.set(level, at)

    def true_energy_j(self, t0: float, t1: float) -> float:
        """Energy the emulated DUT drew between two host times (levels are piecewise constant)."""
        return self.schedule.integral(t0, t1) * (self.vdd_mv / 1000.0 if self.unit == "A" else 1.0)

    # the meter's side

    def _handle(self, data: bytes) -> None:
        self._inbuf += data
        while self._inbuf:
            op = self._inbuf[0]
            n = _LENGTHS.get(op, 1)
            if len(self._inbuf) < n:
                return
            cmd = bytes(self._inbuf[:n])
            del self._inbuf[:n]
            self.commands.append(op)
            if op == ppk2.GET_META_DATA:
                self._out += ppk2.metadata_text(self.calibration, self.metadata_extra).encode()
            elif op == ppk2.REGULATOR_SET:
                self.vdd_mv = ppk2.voltage_from_command(cmd[1], cmd[2])
            elif op == ppk2.SET_POWER_MODE:
                self.power_mode = cmd[1]
            elif op == ppk2.DEVICE_RUNNING_SET:
                self.dut_on = cmd[1] == 1
            elif op == ppk2.AVERAGE_START:
                self._streaming, self._produced = True, 0
                t0 = time.monotonic()
                self.stream_started_at = t0
                self.step_times = [self.schedule.set(level, t0 + dt) for dt, level in self.steps]
            elif op in (ppk2.AVERAGE_STOP, ppk2.RESET):
                self._streaming = False

    def _produce(self) -> None:
        assert self.stream_started_at is not None
        due = int((time.monotonic() - self.stream_started_at) * self.sample_rate)
        n = min(due - self._produced, self.sample_rate // 20)
        if n <= 0:
            return
        i = self._produced + np.arange(n, dtype=np.float64)
        t = self.stream_started_at + (i + 0.5) / self.sample_rate  # each sample's centre, host clock
        level = self.schedule.at(t)
        if self.noise:
            level = level + self._rng.normal(0.0, self.noise, n)
        amps = level / (self.vdd_mv / 1000.0) if self.unit == "W" else level
        self._out += encode(self.calibration, amps, self.vdd_mv, self._produced)
        self._produced += n
        self.samples_sent += n
        excess = len(self._out) - _MAX_BACKLOG
        if excess > 0:  # nobody reads: drop the oldest whole samples, as the real meter's USB buffer would
            excess += -excess % 4
            del self._out[:excess]
            self.samples_dropped += excess // 4

    def _serve(self) -> None:
        fd = self._master
        while not self._closed.is_set():
            wait = 0.002 if self._streaming else 0.02
            try:
                r, w, _ = select.select([fd], [fd] if self._out else [], [], wait)
                if r:
                    self._handle(os.read(fd, 4096))
                if self._streaming:
                    self._produce()
                if self._out and (w or select.select([], [fd], [], 0)[1]):
                    sent = os.write(fd, bytes(self._out[:65536]))
                    del self._out[:sent]
            except BlockingIOError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.01)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ma", type=float, help="emulated current in mA (default 12.3)")
    ap.add_argument("--w", type=float, help="emulated power in W instead of a current")
    ap.add_argument("--noise", type=float, default=0.0, help="gaussian noise, in the level's unit")
    args = ap.parse_args(argv)
    unit: Unit = "W" if args.w is not None else "A"
    level = args.w if args.w is not None else (args.ma or 12.3) / 1000.0
    serve_until_interrupted(Ppk2Emulator(level, unit=unit, noise=args.noise))


if __name__ == "__main__":
    main()
