"""Nordic Power Profiler Kit II driver: pyserial, a background reader thread, host-clock timestamps.

No dependency on the GPL ppk2-api package: the protocol is implemented in ppk2_protocol.py. At start the
driver stops any running stream, reads the calibration metadata, selects source or ampere mode, sets the
source voltage, powers the DUT (source mode) and sends AVERAGE_START; a thread reads blocks as they come,
decodes them in batches (calibrated current, spike filter, counter jumps counted as lost samples) and keeps
1 ms bins of mean and peak power (power = current x voltage_v).

Samples are timestamped with the host's monotonic clock: the PPK2's own sample clock (index / 100 kHz)
anchored at the earliest arrival that is consistent with every block read (the lower envelope of
arrival time minus sample time), so USB and scheduling delays do not smear the trace. The meter's crystal
drift against the host clock (tens of ppm: a few ms over a 150 s run) is not corrected.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import numpy as np

from harness.energy.base import Accuracy, EnergyError, FloatArray, Trace, empty
from harness.energy.ppk2_protocol import (
    AVERAGE_START,
    AVERAGE_STOP,
    DEVICE_RUNNING_SET,
    GET_META_DATA,
    SAMPLE_RATE_HZ,
    SET_POWER_MODE,
    Calibration,
    IntArray,
    SpikeFilter,
    current_a,
    parse_metadata,
    unpack,
    voltage_command,
)

Mode = Literal["source", "ampere"]


class _Stream:
    """Decodes the byte stream in batches and keeps 1-sample-or-longer bins (mean and max power)."""

    def __init__(self, cal: Calibration, vdd_mv: float, voltage_v: float, bin_n: int, spike_filter: bool) -> None:
        self.cal, self.vdd_mv, self.voltage_v, self.bin_n = cal, vdd_mv, voltage_v, max(1, bin_n)
        self.filter = SpikeFilter() if spike_filter else None
        self.pending = bytearray()
        self.next_index = 0  # true sample index of the next decoded sample (counts lost ones)
        self.prev_counter: int | None = None
        self.lost = 0
        self.decoded = 0
        self.loss_marks: list[tuple[int, int]] = []  # (raw samples decoded before, cumulative lost)
        self._idx: list[IntArray] = []
        self._pw: list[FloatArray] = []
        self.bins_sum: list[FloatArray] = []
        self.bins_max: list[FloatArray] = []
        self.bins_idx: list[FloatArray] = []
        self.bins_n: list[IntArray] = []

    def feed(self, data: bytes, final: bool = False) -> None:
        self.pending += data
        n = len(self.pending) // 4
        if n == 0 or (not final and n < 4096):
            if final:
                self._bin(True)
            return
        raw = unpack(bytes(self.pending[: n * 4]))
        del self.pending[: n * 4]
        c = raw.counter
        step = np.empty(n, dtype=np.int64)
        step[0] = 0 if self.prev_counter is None else (int(c[0]) - self.prev_counter - 1) & 0x3F
        step[1:] = (c[1:] - c[:-1] - 1) & 0x3F
        if step.any():
            where = np.flatnonzero(step)
            for w in where:
                self.loss_marks.append((self.decoded + int(w), self.lost + int(step[: w + 1].sum())))
            self.lost += int(step.sum())
        self.prev_counter = int(c[-1])
        idx = self.next_index + np.arange(n, dtype=np.int64) + np.cumsum(step)
        self.next_index = int(idx[-1]) + 1
        self.decoded += n
        amps = current_a(self.cal, raw.range, raw.adc, self.vdd_mv)
        if self.filter is not None:
            amps = self.filter.apply(amps, raw.range)
        self._idx.append(idx)
        self._pw.append(amps * self.voltage_v)
        self._bin(final)

    def _bin(self, final: bool) -> None:
        idx = np.concatenate(self._idx)
        pw = np.concatenate(self._pw)
        if idx.size == 0:
            return
        bins = idx // self.bin_n
        cut = idx.size if final else int(np.searchsorted(bins, bins[-1]))  # keep the open bin for later
        self._idx, self._pw = [idx[cut:]], [pw[cut:]]
        if cut == 0:
            return
        b, i, p = bins[:cut], idx[:cut], pw[:cut]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        counts = np.diff(np.r_[starts, cut])
        self.bins_sum.append(np.add.reduceat(p, starts))
        self.bins_max.append(np.maximum.reduceat(p, starts))
        self.bins_idx.append(np.add.reduceat(i.astype(np.float64), starts) / counts)
        self.bins_n.append(counts)

    def true_index(self, raw_count: IntArray) -> IntArray:
        """Map counts of raw samples received to true sample counts (adding the samples lost before them)."""
        if not self.loss_marks:
            return raw_count
        marks = np.asarray([m[0] for m in self.loss_marks])
        cum = np.asarray([m[1] for m in self.loss_marks])
        pos = np.searchsorted(marks, raw_count, side="left")
        add = np.where(pos > 0, cum[np.maximum(pos - 1, 0)], 0)
        return raw_count + add


class Ppk2Meter:
    """A PPK2 on a serial port, in source mode (it supplies the DUT at voltage_v) or ampere mode (in line
    with a supply of voltage_v). Power = current x voltage_v."""

    source = "ppk2"
    accuracy: Accuracy = "calibrated"

    def __init__(
        self,
        port: str,
        *,
        voltage_v: float,
        mode: Mode = "source",
        baudrate: int = 115200,
        bin_s: float = 0.001,
        spike_filter: bool = True,
        power_dut: bool = True,
        open_timeout_s: float = 3.0,
    ) -> None:
        if not 0.8 <= voltage_v <= 5.0 and mode == "source":
            raise EnergyError(f"PPK2 source voltage {voltage_v} V is outside 0.8-5.0 V")
        self.port, self.voltage_v, self.mode, self.baudrate = port, voltage_v, mode, baudrate
        self.bin_n = max(1, round(bin_s * SAMPLE_RATE_HZ))
        self.spike_filter, self.power_dut, self.open_timeout_s = spike_filter, power_dut, open_timeout_s
        self.calibration = Calibration()
        self.metadata: dict[str, str] = {}
        self._ser: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reads: list[tuple[float, int]] = []  # (host time after a read, raw samples received so far)
        self._stream: _Stream | None = None
        self._error: BaseException | None = None
        self._last_data = 0.0
        self._t_start = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source, "accuracy": self.accuracy, "meter": "Nordic PPK2", "port": self.port,
            "mode": self.mode, "voltage_v": self.voltage_v, "sample_rate_hz": SAMPLE_RATE_HZ,
            "bin_s": self.bin_n / SAMPLE_RATE_HZ, "spike_filter": self.spike_filter,
            "metadata": {k: v for k, v in self.metadata.items() if k in ("Calibrated", "HW", "IA", "mode")},
        }

    def _open(self) -> Any:
        import serial  # pyserial: a base dependency, imported late so the package imports without it

        try:
            return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.02, write_timeout=2.0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise EnergyError(f"PPK2: cannot open serial port {self.port}: {e}",
                              hint="check energy.port in the device profile and that the PPK2 is plugged in") from None

    def _read_metadata(self) -> str:
        ser = self._ser
        ser.write(bytes([AVERAGE_STOP]))
        time.sleep(0.05)
        ser.reset_input_buffer()
        ser.write(bytes([GET_META_DATA]))
        buf = b""
        deadline = time.monotonic() + self.open_timeout_s
        while b"END" not in buf:
            if time.monotonic() > deadline:
                raise EnergyError(f"PPK2 on {self.port}: no calibration metadata within {self.open_timeout_s} s "
                                  f"(got {len(buf)} bytes)", hint="is this port a PPK2? is another program using it?")
            buf += ser.read(max(1, ser.in_waiting))
        return buf.decode("ascii", errors="replace")

    def start(self) -> None:
        self._ser = self._open()
        try:
            self.calibration, self.metadata = parse_metadata(self._read_metadata())
            vdd_mv = round(self.voltage_v * 1000)
            ser = self._ser
            ser.write(bytes([SET_POWER_MODE, 2 if self.mode == "source" else 1]))
            ser.write(voltage_command(vdd_mv))
            if self.mode == "source" and self.power_dut:
                ser.write(bytes([DEVICE_RUNNING_SET, 1]))
            time.sleep(0.01)
            ser.reset_input_buffer()
            self._stream = _Stream(self.calibration, vdd_mv, self.voltage_v, self.bin_n, self.spike_filter)
            self._t_start = time.monotonic()
            self._thread = threading.Thread(target=self._reader, name=f"ppk2-{self.port}", daemon=True)
            self._thread.start()
            ser.write(bytes([AVERAGE_START]))
        except BaseException:
            self._ser.close()
            raise

    def _reader(self) -> None:
        assert self._stream is not None
        ser, stream, received = self._ser, self._stream, 0
        try:
            while not self._stop.is_set():
                data = ser.read(max(4, ser.in_waiting))
                if not data:
                    continue
                now = time.monotonic()
                self._last_data = now
                received += len(data)
                self._reads.append((now, received // 4))
                stream.feed(data)
        except Exception as e:  # a pulled cable: keep what came and say so at stop()
            self._error = e

    def stop(self) -> Trace:
        if self._ser is None or self._thread is None or self._stream is None:
            raise EnergyError("PPK2: stop() without a successful start()")
        t_stop = time.monotonic()
        try:
            self._ser.write(bytes([AVERAGE_STOP]))
        except Exception as e:
            self._error = self._error or e
        deadline = t_stop + 1.0
        while time.monotonic() < deadline and time.monotonic() - self._last_data < 0.05:
            time.sleep(0.01)  # drain what the meter sent before it saw STOP
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._ser.close()
        stream = self._stream
        stream.feed(b"", final=True)
        warnings: list[str] = []
        if self._error is not None:
            warnings.append(f"PPK2 stream ended early: {self._error}")
        if stream.lost:
            warnings.append(f"PPK2 lost {stream.lost} samples ({stream.lost / SAMPLE_RATE_HZ * 1000:.1f} ms), "
                            f"detected from the sample counter")
        info = self.describe() | {"samples": stream.decoded, "lost_samples": stream.lost}
        if not stream.bins_n:  # the run itself may be fine: an empty trace gives no energy figures, and says why
            warnings.append(f"PPK2 on {self.port}: no samples arrived after AVERAGE_START")
            return Trace(self.source, self.accuracy, "power", empty(), empty(), self._t_start, t_stop,
                         peak=empty(), info=info, warnings=warnings)
        sums, maxs = np.concatenate(stream.bins_sum), np.concatenate(stream.bins_max)
        idx, counts = np.concatenate(stream.bins_idx), np.concatenate(stream.bins_n)
        t0 = self._anchor(stream)
        t = t0 + (idx + 0.5) / SAMPLE_RATE_HZ
        return Trace(self.source, self.accuracy, "power", t, sums / counts, self._t_start, t_stop,
                     peak=maxs, info=info, warnings=warnings)

    def _anchor(self, stream: _Stream) -> float:
        """Host time of sample 0's start: the lower envelope of (arrival - sample clock) over all reads."""
        reads = np.asarray(self._reads, dtype=np.float64)
        n = stream.true_index(reads[:, 1].astype(np.int64))
        return float(np.min(reads[:, 0] - n / SAMPLE_RATE_HZ))
