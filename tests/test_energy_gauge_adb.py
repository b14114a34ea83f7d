"""The fuel gauge through the real adb path (adbutils -> adb server -> the adbd stand-in), on a phone's recorded
power_supply files laid out in a directory of this host (the stand-in runs its shell commands here)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from remote_fixtures import adb_server, adb_transport, phone, phone_factory  # noqa: F401

from harness.energy import summarise
from harness.energy.gauge import FuelGauge
from harness.energy.sysfs import TransportFiles
from harness.standins import adbd


def test_gauge_over_adb_with_pixel_units(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice,
                                         tmp_path: Path) -> None:
    root = tmp_path / "power_supply"
    for name, kind in (("battery", "Battery"), ("usb", "USB"), ("wireless", "Wireless")):
        (root / name).mkdir(parents=True)
        (root / name / "type").write_text(kind + "\n")
    bat = root / "battery"
    (bat / "current_now").write_text("-612000\n")  # uA, discharge negative (kernel ABI convention)
    (bat / "voltage_now").write_text("3912000\n")  # uV
    (bat / "status").write_text("Discharging\n")
    transport = adb_transport(adb_server, phone)
    try:
        gauge = FuelGauge(TransportFiles(transport), root=str(root), sample_hz=10.0)
        gauge.start()
        t0 = time.monotonic()
        deadline = t0 + 60.0
        while gauge.readings < 4 and time.monotonic() < deadline:  # the poller's own progress, with a deadline
            time.sleep(0.02)
        t1 = time.monotonic()
        trace = gauge.stop()
    finally:
        transport.close()
    assert trace.info["where"] == "device 'phone'" and trace.info["battery"] == f"{root}/battery"
    assert trace.info["current_unit"] == "uA" and trace.info["discharge_negative"] is True
    assert len(trace) >= 4 and np.allclose(trace.value, 0.612 * 3.912)
    energy, metrics = summarise(trace, [{"name": "measure", "t_start": t0, "t_end": t1}], n_inferences=4)
    assert energy["accuracy"] == "relative" and not energy["tainted"]
    assert metrics["power_w_avg"].value == pytest.approx(0.612 * 3.912)
