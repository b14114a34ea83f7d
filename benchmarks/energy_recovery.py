"""Recover a known energy from the emulated meters, end to end, and print the error.

Each emulated DUT idles, then draws a higher power for a known time, then idles again; the driver records it
on the host clock and `summarise` integrates the load window with the idle baseline subtracted. The truth is
(load - idle) x the load's duration, from the emulator's own schedule.

    .venv/bin/python benchmarks/energy_recovery.py [--repeat 3] [--load-s 1.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.energy.align import summarise  # noqa: E402
from harness.energy.base import EnergySource  # noqa: E402
from harness.energy.ppk2 import Ppk2Meter  # noqa: E402
from harness.energy.scpi import ScpiMeter  # noqa: E402
from harness.standins.ppk2_emulator import Ppk2Emulator  # noqa: E402
from harness.standins.scpi_emulator import ScpiEmulator  # noqa: E402

IDLE_W, LOAD_W = 0.5, 2.0


def _run(meter: EnergySource, set_level: Callable[[float, float], float], load_s: float) -> tuple[float, float]:
    """(recovered net J, true net J) for one idle -> load -> idle run."""
    meter.start()
    t = time.monotonic()
    s1 = set_level(LOAD_W, t + 0.5)
    s2 = set_level(IDLE_W, t + 0.5 + load_s)
    time.sleep(max(0.0, s2 + 0.15 - time.monotonic()))
    trace = meter.stop()
    energy, _ = summarise(trace, [{"name": "measure", "t_start": s1, "t_end": s2}], n_inferences=1,
                          idle_window=(t + 0.05, t + 0.45))
    return float(energy["measured"]["energy_j_net"]), (LOAD_W - IDLE_W) * (s2 - s1)


def check(kind: str, load_s: float) -> float:
    """Recovery error in % for one emulated meter kind: ppk2, scpi (MEAS:POW?) or scpi-iv (CURR? x VOLT?)."""
    if kind == "ppk2":
        with Ppk2Emulator(IDLE_W, unit="W") as emu:
            got, truth = _run(Ppk2Meter(emu.path, voltage_v=5.0), emu.set_level, load_s)
    else:
        with ScpiEmulator(IDLE_W, supports_power=kind == "scpi") as semu:
            got, truth = _run(ScpiMeter(semu.path, sample_hz=100.0, reply_timeout_s=0.3), semu.set_power, load_s)
    return 100.0 * (got - truth) / truth


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--load-s", type=float, default=1.5)
    args = ap.parse_args(argv)
    print(f"idle {IDLE_W} W, load {LOAD_W} W for {args.load_s} s; error of the net energy, idle subtracted")
    for kind in ("ppk2", "scpi", "scpi-iv"):
        errs = [check(kind, args.load_s) for _ in range(args.repeat)]
        print(f"{kind:8s} " + " ".join(f"{e:+.3f}%" for e in errs) + f"   worst {max(map(abs, errs)):.3f}%")


if __name__ == "__main__":
    main()
