"""What the emulated serial instruments share: a raw pseudo-terminal, a server thread, a level schedule.

Product code, like labgrid's fake drivers: each emulator is a PtyDevice whose `path` pyserial opens like a port.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
import tty

import numpy as np
import numpy.typing as npt


def open_raw_pty() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path): a pseudo-terminal in raw mode that pyserial opens like a port."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class Schedule:
    """Levels over host monotonic time: the level set at the latest time <= t holds at t."""

    def __init__(self, initial: float) -> None:
        self._times: list[float] = [float("-inf")]
        self._levels: list[float] = [initial]
        self._lock = threading.Lock()

    def set(self, level: float, at: float | None = None) -> float:
        t = time.monotonic() if at is None else at
        with self._lock:
            i = bisect.bisect_right(self._times, t)
            self._times.insert(i, t)
            self._levels.insert(i, level)
        return t

    def at(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        with self._lock:
            times, levels = np.asarray(self._times), np.asarray(self._levels)
        return levels[np.searchsorted(times, t, side="right") - 1]

    def integral(self, t0: float, t1: float) -> float:
        """Integral of the level over [t0, t1] (level x seconds)."""
        with self._lock:
            edges = [t0] + [t for t in self._times if t0 < t < t1] + [t1]
        return sum(self.level(a) * (b - a) for a, b in zip(edges[:-1], edges[1:]))

    def level(self, t: float) -> float:
        return float(self.at(np.asarray([t]))[0])


class PtyDevice:
    """A device on the master side of a raw pty, served by `_serve` in a daemon thread until close()."""

    def __init__(self, name: str) -> None:
        self._master, self._slave, self.path = open_raw_pty()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        raise NotImplementedError

    def start(self) -> PtyDevice:
        self._thread.start()
        return self

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def serve_until_interrupted(device: PtyDevice) -> None:
    """Command-line use: print the port path, serve until Ctrl-C."""
    with device:
        print(device.path, flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
