"""Thermal zones and cpufreq read from a fake /sys tree, directly and through the real local transport's shell;
cool-down against temperatures a thread changes; throttling verdicts from samples."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness import thermal
from agents.procfs import celsius
from harness.devicestate import Sample, ThermalProbe
from harness.energy.sysfs import LocalFiles, TransportFiles
from harness.thermal import cool_down, measure_window, throttling
from harness.transports.local import LocalTransport


class FakeSys:
    """A /sys tree in a temp dir: thermal zones with trip points and cpufreq policies; values change atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, rel: str, value: object) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, p)  # a reader never sees a half-written file

    def zone(self, n: int, kind: str, temp_c: float, trips: Sequence[tuple[str, float]] = ()) -> None:
        self.put(f"class/thermal/thermal_zone{n}/type", kind)
        self.set_temp(n, temp_c)
        for i, (t, c) in enumerate(trips):
            self.put(f"class/thermal/thermal_zone{n}/trip_point_{i}_type", t)
            self.put(f"class/thermal/thermal_zone{n}/trip_point_{i}_temp", int(c * 1000))

    def set_temp(self, n: int, temp_c: float) -> None:
        self.put(f"class/thermal/thermal_zone{n}/temp", int(temp_c * 1000))

    def policy(self, n: int, cpus: str, max_khz: int, governor: str = "schedutil") -> None:
        d = f"devices/system/cpu/cpufreq/policy{n}"
        for k, v in (("related_cpus", cpus), ("cpuinfo_max_freq", max_khz), ("scaling_max_freq", max_khz),
                     ("scaling_cur_freq", max_khz), ("scaling_governor", governor)):
            self.put(f"{d}/{k}", v)

    def set_freq(self, n: int, cur_khz: int) -> None:
        self.put(f"devices/system/cpu/cpufreq/policy{n}/scaling_cur_freq", cur_khz)

    def temp_ramp(self, n: int, start_c: float, end_c: float, seconds: float) -> threading.Thread:
        """A thread moving zone n's temperature linearly from start to end over `seconds`."""
        def run() -> None:
            t0 = time.monotonic()
            while (f := (time.monotonic() - t0) / seconds) < 1.0:
                self.set_temp(n, start_c + (end_c - start_c) * f)
                time.sleep(0.02)
            self.set_temp(n, end_c)
        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th


def phone_like(root: Path) -> FakeSys:
    fs = FakeSys(root)
    fs.zone(0, "cpu-0-0-usr", 40.0, [("passive", 85.0), ("critical", 110.0)])
    fs.zone(1, "battery", 30.0)  # neither CPU nor throttling trips: not polled
    fs.zone(2, "skin-therm", 35.0, [("passive", 45.0)])  # throttles through its trip: polled
    fs.zone(3, "gpu", 38.0, [("active", 50.0)])  # an active (fan) trip does not throttle
    fs.policy(0, "0 1 2 3", 1_800_000)
    fs.policy(4, "4 5 6 7", 2_400_000)
    fs.set_freq(0, 300_000)  # the little cores idle low, the big ones run the model
    return fs


@pytest.mark.parametrize("reader", ["direct", "local-transport"])
def test_discovery_and_reading(tmp_path: Path, reader: str) -> None:
    phone_like(tmp_path)
    files = LocalFiles() if reader == "direct" else TransportFiles(LocalTransport("fake"))
    probe = ThermalProbe(files, str(tmp_path))
    assert [(z.name, z.type, z.cpu, z.trips) for z in probe.zones] == [
        ("thermal_zone0", "cpu-0-0-usr", True, [("passive", 85.0), ("critical", 110.0)]),
        ("thermal_zone2", "skin-therm", False, [("passive", 45.0)])]
    assert [(p.name, p.cpus, p.hw_max_khz, p.governor) for p in probe.policies] == [
        ("policy0", [0, 1, 2, 3], 1_800_000, "schedutil"), ("policy4", [4, 5, 6, 7], 2_400_000, "schedutil")]
    s = probe.read(t=1.0)
    assert s.temp_c == 40.0 and s.zones == {"thermal_zone0": 40.0, "thermal_zone2": 35.0}
    assert s.cur_khz == {"policy0": 300_000, "policy4": 2_400_000}
    assert s.governor == {"policy0": "schedutil", "policy4": "schedutil"}


def test_nothing_readable_is_not_available(tmp_path: Path) -> None:
    probe = ThermalProbe(LocalFiles(), str(tmp_path / "empty"))
    assert not probe.available and probe.temperature() is None
    fs = FakeSys(tmp_path / "unreadable")
    fs.put("class/thermal/thermal_zone0/type", "cpu")  # a zone whose temp file is missing (SELinux-like)
    assert not ThermalProbe(LocalFiles(), str(fs.root)).available


def test_no_cpu_zone_falls_back_to_the_hottest(tmp_path: Path) -> None:
    fs = FakeSys(tmp_path)
    fs.zone(0, "acpitz", 51.0)
    fs.zone(1, "battery", 33.0)
    probe = ThermalProbe(LocalFiles(), str(tmp_path))
    assert probe.temperature() == 51.0 and probe.notes


def test_celsius_units() -> None:
    assert celsius("45123") == 45.123 and celsius("45") == 45.0
    assert celsius("-5") == -5.0 and celsius("n/a") is None


def test_cool_down_waits_until_within_the_margin(tmp_path: Path) -> None:
    fs = phone_like(tmp_path)
    fs.set_temp(0, 60.0)
    probe = ThermalProbe(LocalFiles(), str(tmp_path))
    ramp = fs.temp_ramp(0, 60.0, 40.0, seconds=1.0)  # crosses idle 40 + margin 2 = 42 after ~0.9 s
    c = cool_down(probe, idle_c=40.0, margin_c=2.0, max_s=10.0, poll_s=0.05)
    ramp.join()
    assert not c["timed_out"] and c["start_c"] > 55 and c["end_c"] <= 42.0
    assert 0.6 <= c["waited_s"] < 5.0, c


def test_cool_down_gives_up_at_its_bound(tmp_path: Path) -> None:
    fs = phone_like(tmp_path)
    fs.set_temp(0, 70.0)
    probe = ThermalProbe(LocalFiles(), str(tmp_path))
    t0 = time.monotonic()
    c = cool_down(probe, idle_c=40.0, margin_c=3.0, max_s=0.5, poll_s=0.1)
    assert c["timed_out"] and c["end_c"] == 70.0 and c["target_c"] == 43.0
    assert 0.5 <= time.monotonic() - t0 < 2.0


def _sample(t: float, temp: float, cur: dict[str, int], gov: str = "schedutil",
            ceiling: dict[str, int] | None = None) -> Sample:
    return Sample(t, temp, {"thermal_zone0": temp, "thermal_zone2": 35.0}, cur, ceiling or {},
                  {k: gov for k in cur})


def test_throttling_verdicts(tmp_path: Path) -> None:
    phone_like(tmp_path)
    probe = ThermalProbe(LocalFiles(), str(tmp_path))
    win = (10.0, 20.0)
    full = {"policy0": 300_000, "policy4": 2_400_000}  # little cores idle low: not throttling
    assert throttling(probe, [_sample(10 + i, 50.0, full) for i in range(10)], win, 0.85) == []
    slow = {"policy0": 300_000, "policy4": 1_200_000}
    got = throttling(probe, [_sample(10 + i, 50.0, full if i < 6 else slow) for i in range(10)], win, 0.85)
    assert len(got) == 1 and "4 of 10 samples" in got[0] and "lowest 50%" in got[0]
    # one low sample among many is a governor's moment, not throttling
    assert throttling(probe, [_sample(10 + i, 50.0, full if i != 3 else slow) for i in range(10)], win, 0.85) == []
    # powersave chose the low frequency
    assert throttling(probe, [_sample(10 + i, 50.0, slow, gov="powersave") for i in range(10)], win, 0.85) == []
    # pinned to the little cores: their low clock counts
    assert throttling(probe, [_sample(10 + i, 50.0, full) for i in range(10)], win, 0.85, pin_cpus=[0, 1])
    # outside the measure window, nothing counts
    assert throttling(probe, [_sample(30 + i, 90.0, slow) for i in range(5)], win, 0.85) == []
    hot = throttling(probe, [_sample(10 + i, 50.0 + 4 * i, full) for i in range(10)], win, 0.85)
    assert hot == ["thermal_zone0 (cpu-0-0-usr) reached its passive trip point 85 °C (peak 86 °C) during the "
                   "measured runs"]
    capped = throttling(probe, [_sample(10 + i, 50.0, full, ceiling={"policy4": 1_000_000}) for i in range(3)],
                        win, 0.85)
    assert any("ceiling lowered from 2400 to 1000 MHz" in r for r in capped)


def test_measure_window_from_host_phases() -> None:
    phases = [{"phase": "load", "host_t": 1.0}, {"phase": "warmup", "host_t": 2.0},
              {"phase": "measure", "host_t": 3.0}, {"phase": "done", "host_t": 7.5}]
    assert measure_window(phases, 9.0) == (3.0, 7.5)
    assert measure_window(phases[:3], 9.0) == (3.0, 9.0)
    assert measure_window(phases[:2], 9.0) is None
