"""RAPL on a fake powercap tree: domain choice, wrap-around, recovery of a known power; absent powercap."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from harness.energy import EnergyError, integrate
from harness.energy.rapl import ROOT, RaplCounter, unwrap
from harness.energy.sysfs import LocalFiles


def zone(root: Path, name: str, label: str, energy_uj: int = 0, max_uj: int = 262143328850) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_unwrap() -> None:
    raw = np.array([900.0, 950.0, 20.0, 500.0, 10.0])
    assert np.allclose(unwrap(raw, 1000.0) * 1e6, [0, 50, 120, 600, 1110])


def test_domains_packages_and_dram_not_psys(tmp_path: Path) -> None:
    zone(tmp_path, "intel-rapl:0", "package-0")
    zone(tmp_path, "intel-rapl:0:0", "core")
    zone(tmp_path, "intel-rapl:0:1", "dram")
    zone(tmp_path, "intel-rapl:1", "package-1")
    zone(tmp_path, "intel-rapl:2", "psys")
    names = sorted(RaplCounter(root=str(tmp_path)).discover().values())
    assert names == ["dram", "package-0", "package-1"]
    only_psys = tmp_path / "psys-only"
    zone(only_psys, "intel-rapl:0", "psys")
    assert list(RaplCounter(root=str(only_psys)).discover().values()) == ["psys"]


class KernelFiles(LocalFiles):
    """The fake tree's "kernel": before each read it writes the counters the elapsed time implies (package at
    power_w wrapping at max_uj, dram at 2 W), so a reading is never stale however the machine is loaded."""

    def __init__(self, pkg: Path, dram: Path, power_w: float, max_uj: int) -> None:
        self.pkg, self.dram, self.power_w, self.max_uj = pkg, dram, power_w, max_uj
        self.t0 = time.monotonic()
        self.raw: list[int] = []

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        dt = time.monotonic() - self.t0
        self.raw.append(int(2_900_000 + self.power_w * dt * 1e6) % self.max_uj)
        (self.pkg / "energy_uj").write_text(f"{self.raw[-1]}\n")
        (self.dram / "energy_uj").write_text(f"{int(2.0 * dt * 1e6)}\n")
        return super().read(paths)


def test_recovers_power_across_counter_wraps(tmp_path: Path) -> None:
    power_w, max_uj = 25.0, 5_000_000  # the package counter wraps every 0.2 s
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=2_900_000, max_uj=max_uj)
    dram = zone(tmp_path, "intel-rapl:0:2", "dram", energy_uj=0)
    files = KernelFiles(pkg, dram, power_w, max_uj)
    meter = RaplCounter(files, root=str(tmp_path), sample_hz=50.0)
    meter.start()
    time.sleep(0.8)
    trace = meter.stop()
    assert trace.kind == "energy" and trace.accuracy == "calibrated"
    assert sum(b < a for a, b in zip(files.raw, files.raw[1:])) >= 3  # it did wrap, several times
    w = integrate(trace, trace.t[1], trace.t[-2])
    assert w.energy_j is not None and w.power_w_avg == pytest.approx(power_w + 2.0, rel=0.01)


def test_not_available_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnergyError, match="not available on this machine.*does not exist"):
        RaplCounter(root=str(tmp_path / "nothing")).start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyError, match="no intel-rapl zones"):
        RaplCounter(root=str(tmp_path / "empty")).start()
    if not os.path.isdir(ROOT):  # this machine: no powercap at all
        with pytest.raises(EnergyError, match="not available on this machine"):
            RaplCounter().start()
