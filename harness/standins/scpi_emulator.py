"""A line-based SCPI power meter emulated on a pseudo-terminal.

Product code, like labgrid's fake drivers. It answers `*IDN?`, accepts `*RST`, `*CLS` and `CONF:POW`, and
returns the emulated DUT's power, current and voltage to `MEAS:POW?` (also `READ?`, `FETC?`), `MEAS:CURR?`
and `MEAS:VOLT?`, in short or long form (`MEASure:POWer?`), several per line separated by `;`. As a real SCPI
instrument does, it stays silent on a command it does not know and queues an error for `SYST:ERR?`.
`supports_power=False` makes it a bench supply that only measures current and voltage.

    python -m harness.standins.scpi_emulator --w 2.0        # prints the port path, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import re
import select
import time
from collections.abc import Sequence

import numpy as np

from harness.standins.pty_device import PtyDevice, Schedule, serve_until_interrupted

IDENTITY = "EDGEFARM,SCPI-POWER-EMULATOR,0,1.0"


def _pattern(*mnemonics: str) -> re.Pattern[str]:
    """SCPI mnemonics: upper case is the short form, the rest optional ('MEASure' matches MEAS and MEASURE)."""
    parts = []
    for m in mnemonics:
        short = "".join(c for c in m if c.isupper() or not c.isalpha())
        rest = m[len(short):].upper()
        parts.append(f"{re.escape(short)}(?:{re.escape(rest)})?" if rest else re.escape(short))
    return re.compile(r"^:?" + ":".join(parts), re.IGNORECASE)


_POWER = [re.compile(p.pattern + r"(?::DC)?\?$", re.I) for p in (_pattern("MEASure", "POWer"),
                                                                   _pattern("MEASure", "SCALar", "POWer"))]
_POWER += [re.compile(r"^:?(READ|FETC(H)?)\?$", re.I)]
_CURR = re.compile(_pattern("MEASure", "CURRent").pattern + r"(?::DC)?\?$", re.I)
_VOLT = re.compile(_pattern("MEASure", "VOLTage").pattern + r"(?::DC)?\?$", re.I)
_CONF = re.compile(_pattern("CONFigure", "POWer").pattern + r"(?::DC)?$", re.I)
_ERR = re.compile(_pattern("SYSTem", "ERRor").pattern + r"(?::NEXT)?\?$", re.I)


class ScpiEmulator(PtyDevice):
    """The emulated meter; `path` is the port to open. Levels are powers in W at a fixed supply voltage."""

    def __init__(
        self,
        power_w: float = 1.0,
        *,
        voltage_v: float = 5.0,
        steps: Sequence[tuple[float, float]] = (),
        supports_power: bool = True,
        terminator: str = "\n",
        noise_w: float = 0.0,
        seed: int = 0,
    ) -> None:
        """steps: (seconds after start(), power W). The steps' host times are in `step_times` after start()."""
        self.voltage_v, self.supports_power, self.noise_w = voltage_v, supports_power, noise_w
        self.terminator = terminator.encode("ascii")
        self.schedule = Schedule(power_w)
        self.steps = list(steps)
        self.step_times: list[float] = []
        self.started_at: float | None = None
        self.errors: list[str] = []
        self.received: list[str] = []
        self.configured = False
        self._rng = np.random.default_rng(seed)
        super().__init__("scpi-emulator")
        self._inbuf = bytearray()

    def start(self) -> ScpiEmulator:
        self.started_at = time.monotonic()
        self.step_times = [self.schedule.set(p, self.started_at + dt) for dt, p in self.steps]
        super().start()
        return self

    def __enter__(self) -> ScpiEmulator:
        return self.start()

    def set_power(self, power_w: float, at: float | None = None) -> float:
        """Change the emulated power at host monotonic time `at` (default now); returns that time."""
        return self.schedule.set(power_w, at)

    def _power_now(self) -> float:
        p = self.schedule.level(time.monotonic())
        return p + float(self._rng.normal(0.0, self.noise_w)) if self.noise_w else p

    def answer(self, command: str) -> str | None:
        """The reply to one command, or None (no reply: a setting, or an unknown command queued as an error)."""
        c = command.strip()
        if not c:
            return None
        if c.upper() == "*IDN?":
            return IDENTITY
        if c.upper() == "*CLS":
            self.errors.clear()
        if c.upper() in ("*RST", "*CLS"):
            return None
        if _ERR.match(c):
            return self.errors.pop(0) if self.errors else '+0,"No error"'
        if _CONF.match(c):
            self.configured = True
            return None
        if self.supports_power and any(p.match(c) for p in _POWER):
            return f"{self._power_now():+.6E}"
        if _CURR.match(c):
            return f"{self._power_now() / self.voltage_v:+.6E}"
        if _VOLT.match(c):
            return f"{self.voltage_v:+.6E}"
        self.errors.append('-113,"Undefined header"')
        return None

    def _serve(self) -> None:
        fd, end = self._master, self.terminator[-1:]
        while not self._closed.is_set():
            try:
                r, _, _ = select.select([fd], [], [], 0.02)
                if not r:
                    continue
                self._inbuf += os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.01)
                continue
            while end in self._inbuf:
                line, _, rest = bytes(self._inbuf).partition(end)
                self._inbuf = bytearray(rest)
                text = line.decode("ascii", errors="replace").strip("\r\n ")
                self.received.append(text)
                replies = [a for a in (self.answer(part) for part in text.split(";")) if a is not None]
                if replies:
                    out = (";".join(replies)).encode("ascii") + self.terminator
                    while out:
                        try:
                            out = out[os.write(fd, out):]
                        except BlockingIOError:
                            select.select([], [fd], [], 0.1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--w", type=float, default=1.0, help="emulated power in W")
    ap.add_argument("--v", type=float, default=5.0, help="emulated supply voltage in V")
    ap.add_argument("--no-power", action="store_true", help="answer only MEAS:CURR? and MEAS:VOLT?")
    args = ap.parse_args(argv)
    serve_until_interrupted(ScpiEmulator(args.w, voltage_v=args.v, supports_power=not args.no_power))


if __name__ == "__main__":
    main()
