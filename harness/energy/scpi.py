"""A line-based SCPI-style power meter (or a bench supply that measures) on a serial port, polled in a thread.

At start: `*IDN?` (the identity goes into the provenance), then any setup commands from the profile (for
example `CONF:POW`). Then it polls at sample_hz with one of:
  - the profile's `scpi_query`, whose reply is power in W (or current in A when energy.voltage_v is given);
  - else, with voltage_v given, `MEAS:CURR?` x voltage_v;
  - else `MEAS:POW?` when the meter answers it, or `MEAS:CURR?` and `MEAS:VOLT?` multiplied.
A meter that does not know a query stays silent (SCPI puts the error in its queue): the probe waits for a
reply, then clears the queue with `SYST:ERR?`. Each reading is stamped at the host-monotonic midpoint of its
query and reply. Replies may hold several comma-separated values; the first is used.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.energy.base import Accuracy, EnergyError, FloatArray, Trace


RTT_FACTOR = 4.0


def well_timed(rtt: FloatArray, sample_hz: float) -> tuple[npt.NDArray[np.bool_], float, float]:
    """Which readings to keep, the median reply time and the limit, from each reading's query-to-reply time.

    A reading whose reply took far longer than usual (a stalled meter, port or host) has an uncertain time,
    and across a load step it puts the wrong power at the wrong time: interpolating between well-timed
    neighbours is better. Up to 2/3 of a poll period the uncertainty is no worse than the sampling's own.
    """
    if rtt.size < 10:
        return np.ones(rtt.size, dtype=bool), float(np.median(rtt)) if rtt.size else 0.0, float("inf")
    med = float(np.median(rtt))
    limit = max(RTT_FACTOR * med, med + 2.0 / 3.0 / sample_hz)
    return rtt <= limit, med, limit


class ScpiMeter:
    source = "scpi"
    accuracy: Accuracy = "calibrated"

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        sample_hz: float = 20.0,
        query: str | None = None,
        setup: list[str] | None = None,
        terminator: str = "\n",
        voltage_v: float | None = None,
        reply_timeout_s: float = 1.0,
    ) -> None:
        if sample_hz <= 0:
            raise EnergyError(f"SCPI meter: sample rate must be positive, got {sample_hz}")
        self.port, self.baudrate, self.sample_hz = port, baudrate, sample_hz
        self.query, self.setup, self.voltage_v = query, list(setup or []), voltage_v
        self.terminator = terminator.encode("ascii")
        self.reply_timeout_s = reply_timeout_s
        self.identity = ""
        self.method = ""  # how power is obtained, for provenance
        self._queries: list[str] = []
        self._scale = 1.0
        self._ser: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t: list[float] = []
        self._p: list[float] = []
        self._rtt: list[float] = []  # query-to-reply time of each reading: the uncertainty of its time stamp
        self._bad: list[str] = []
        self._misses = 0
        self._error: BaseException | None = None
        self._t_start = 0.0

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "accuracy": self.accuracy, "meter": self.identity or "SCPI meter",
                "port": self.port, "baudrate": self.baudrate, "sample_hz": self.sample_hz,
                "method": self.method, "setup": self.setup}

    # I/O

    def _send(self, command: str) -> None:
        self._ser.write(command.encode("ascii") + self.terminator)

    def _ask(self, command: str, timeout: float | None = None) -> str | None:
        """Send a query; its reply line, or None when the meter stays silent."""
        ser = self._ser
        wait = self.reply_timeout_s if timeout is None else timeout
        if ser.timeout != wait:
            ser.timeout = wait
        self._send(command)
        raw = ser.read_until(self.terminator[-1:])
        if not raw.endswith(self.terminator[-1:]):
            return None
        return str(raw.decode("ascii", errors="replace").strip())

    @staticmethod
    def number(reply: str) -> float:
        """The first value of a reply such as '+1.234500E+00' or '1.2345,0.0' (ValueError otherwise)."""
        return float(reply.split(",")[0].strip())

    def _open(self) -> None:
        import serial

        try:
            self._ser = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.reply_timeout_s,
                                              write_timeout=2.0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise EnergyError(f"SCPI meter: cannot open serial port {self.port}: {e}",
                              hint="check energy.port and energy.baudrate in the device profile") from None
        self._ser.reset_input_buffer()

    def _choose_method(self) -> None:
        if self.query:
            self._queries = [self.query]
            self._scale = self.voltage_v or 1.0
            self.method = f"{self.query}" + (f" x {self.voltage_v} V" if self.voltage_v else " (W)")
        elif self.voltage_v:
            self._queries, self._scale = ["MEAS:CURR?"], self.voltage_v
            self.method = f"MEAS:CURR? x {self.voltage_v} V (configured supply voltage)"
        else:
            reply = self._ask("MEAS:POW?")
            if reply is not None and self._is_number(reply):
                self._queries, self.method = ["MEAS:POW?"], "MEAS:POW? (W)"
            else:
                self._ask("SYST:ERR?", timeout=0.3)
                self._queries, self.method = ["MEAS:CURR?", "MEAS:VOLT?"], "MEAS:CURR? x MEAS:VOLT?"
        for q in self._queries:  # fail now, with the query named, rather than with an empty trace
            reply = self._ask(q)
            if reply is None or not self._is_number(reply):
                raise EnergyError(f"SCPI meter {self.identity or self.port}: no numeric answer to {q!r} "
                                  f"(got {reply!r})", hint="set energy.scpi_query in the device profile")

    @staticmethod
    def _is_number(reply: str) -> bool:
        try:
            ScpiMeter.number(reply)
        except ValueError:
            return False
        return True

    # the EnergySource protocol

    def start(self) -> None:
        self._open()
        try:
            idn = self._ask("*IDN?")
            if idn is None:
                raise EnergyError(f"SCPI meter on {self.port}: no answer to *IDN?",
                                  hint="check the port, the baud rate and energy.scpi_terminator")
            self.identity = idn
            for command in self.setup:
                self._send(command)
            self._choose_method()
        except BaseException:
            self._ser.close()
            raise
        self._t_start = time.monotonic()
        self._thread = threading.Thread(target=self._poll, name=f"scpi-{self.port}", daemon=True)
        self._thread.start()

    def _read_once(self) -> tuple[float, float, float] | None:
        t0 = time.monotonic()
        values: list[float] = []
        for q in self._queries:
            reply = self._ask(q)
            if reply is None:
                self._misses += 1
                self._ser.reset_input_buffer()  # a late reply must not pass for the next query's
                return None
            try:
                values.append(self.number(reply))
            except ValueError:
                if len(self._bad) < 5:
                    self._bad.append(f"{q} -> {reply!r}")
                return None
        t1 = time.monotonic()
        power = values[0] * values[1] if len(values) == 2 else values[0] * self._scale
        return (t0 + t1) / 2.0, power, t1 - t0

    def _poll(self) -> None:
        period = 1.0 / self.sample_hz
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                sample = self._read_once()
                if sample is not None:
                    self._t.append(sample[0])
                    self._p.append(sample[1])
                    self._rtt.append(sample[2])
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.monotonic()  # fell behind: do not burst to catch up
        except Exception as e:
            self._error = e

    def stop(self) -> Trace:
        if self._thread is None:
            raise EnergyError("SCPI meter: stop() without a successful start()")
        t_stop = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=self.reply_timeout_s * 3 + 1.0)
        self._ser.close()
        warnings: list[str] = []
        if self._error is not None:
            warnings.append(f"SCPI polling ended early: {self._error}")
        if self._misses:
            warnings.append(f"SCPI meter did not answer {self._misses} queries")
        if self._bad:
            warnings.append(f"SCPI meter gave non-numeric replies: {'; '.join(self._bad)}")
        t, p, rtt = (np.asarray(x, dtype=np.float64) for x in (self._t, self._p, self._rtt))
        info = self.describe() | {"samples": int(t.size)}
        keep, med, limit = well_timed(rtt, self.sample_hz)
        slow = int(rtt.size - keep.sum())
        t, p = t[keep], p[keep]
        info |= {"samples": int(t.size), "left_out_slow_replies": slow}
        if rtt.size:
            info |= {"reply_ms_median": med * 1000, "reply_ms_max": float(rtt.max()) * 1000}
        if slow > 0.1 * rtt.size:
            warnings.append(f"SCPI: left out {slow} of {rtt.size} readings whose reply took over "
                            f"{limit * 1000:.1f} ms (median {med * 1000:.1f} ms): the meter or host stalls")
        return Trace(self.source, self.accuracy, "power", t, p, self._t_start, t_stop, info=info, warnings=warnings)
