"""The fuel gauge: unit and sign normalisation on recorded readings, charging taint, reading through a transport;
and the source factory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.devicestate import BatteryState
from harness.energy import Trace, open_source
from harness.energy.gauge import FuelGauge, current_scale, normalise, voltage_scale
from harness.energy.sysfs import LocalFiles, TransportFiles
from harness.errors import ConfigError
from harness.profiles import EnergyConfig, Profile, TransportConfig
from harness.transports.remote_shell import parse_grep_h

# Readings as phones print them: a Pixel (kernel ABI: uA, uV, discharge negative) and an older
# vendor kernel (mA, mV, discharge positive).
PIXEL = {"current_now": ["-412000", "-398500", "-1210000"], "voltage_now": ["3870000", "3868000", "3841000"],
         "watts": [0.412 * 3.870, 0.3985 * 3.868, 1.210 * 3.841]}
VENDOR = {"current_now": ["412", "398", "1210"], "voltage_now": ["3870", "3868", "3841"],
          "watts": [0.412 * 3.870, 0.398 * 3.868, 1.210 * 3.841]}

def test_units_by_magnitude() -> None:
    assert current_scale([-412000.0, -5000.0]) == (1e-6, "uA")
    assert current_scale([412.0, 9.0]) == (1e-3, "mA")
    assert voltage_scale([3870000.0]) == (1e-6, "uV")
    assert voltage_scale([3870.0]) == (1e-3, "mV")
    assert voltage_scale([3.87]) == (1.0, "V")


@pytest.mark.parametrize("readings", [PIXEL, VENDOR], ids=["pixel-uA-negative", "vendor-mA-positive"])
def test_normalise_gives_positive_discharge_watts(readings: dict[str, list[Any]]) -> None:
    i = [float(x) for x in readings["current_now"]]
    v = [float(x) for x in readings["voltage_now"]]
    power, how = normalise(i, v, ["Discharging"] * 3)
    assert np.allclose(power, readings["watts"], rtol=1e-9)
    assert how["discharge_negative"] == (readings is PIXEL)


def test_parse_grep_h_with_colons_in_paths() -> None:
    paths = ["/s/intel-rapl:0/energy_uj", "/s/intel-rapl:0:1/energy_uj", "/s/missing"]
    out = "/s/intel-rapl:0/energy_uj:123\n/s/intel-rapl:0:1/energy_uj:456\n"
    assert parse_grep_h(out, paths) == {paths[0]: "123", paths[1]: "456"}


def fake_supply(root: Path, current: str, voltage: str, status: str) -> Path:
    bat = root / "battery"
    bat.mkdir(parents=True, exist_ok=True)
    (bat / "type").write_text("Battery\n")
    (bat / "current_now").write_text(current + "\n")
    (bat / "voltage_now").write_text(voltage + "\n")
    (bat / "status").write_text(status + "\n")
    usb = root / "usb"
    usb.mkdir(exist_ok=True)
    (usb / "type").write_text("USB\n")
    return bat


def run_gauge(gauge: FuelGauge, seconds: float = 0.3) -> Trace:
    gauge.start()
    time.sleep(seconds)
    return gauge.stop()


def test_gauge_on_a_fake_sysfs_tree(tmp_path: Path) -> None:
    fake_supply(tmp_path, "-500000", "4000000", "Discharging")
    trace = run_gauge(FuelGauge(LocalFiles(), root=str(tmp_path), sample_hz=50.0))
    assert trace.accuracy == "relative" and trace.source == "fuel_gauge"
    assert len(trace) >= 5 and np.allclose(trace.value, 2.0)
    assert not trace.tainted
    assert trace.info["battery"].endswith("/battery")


def test_charging_taints_the_run(tmp_path: Path) -> None:
    fake_supply(tmp_path, "800000", "4200000", "Charging")
    trace = run_gauge(FuelGauge(LocalFiles(), root=str(tmp_path), sample_hz=50.0), 0.1)
    assert trace.tainted and "Charging" in trace.tainted[0]


def test_charger_online_taints_the_run(tmp_path: Path) -> None:
    fake_supply(tmp_path, "-500000", "4000000", "Discharging")
    usb = BatteryState(present=True, status="Discharging", external_power=True)
    trace = run_gauge(FuelGauge(LocalFiles(), root=str(tmp_path), sample_hz=50.0, charger=lambda: usb), 0.1)
    assert trace.tainted and "external power" in trace.tainted[0]
    assert trace.info["battery_states"][0]["external_power"] is True


def test_gauge_through_the_local_transport(tmp_path: Path) -> None:
    local = pytest.importorskip("harness.transports.local")
    fake_supply(tmp_path, "412", "3870", "Discharging")
    transport = local.LocalTransport("fake-phone", workdir=str(tmp_path / "work"))
    trace = run_gauge(FuelGauge(TransportFiles(transport), root=str(tmp_path), sample_hz=20.0), 0.3)
    assert len(trace) >= 2 and np.allclose(trace.value, 0.412 * 3.870)
    assert trace.info["current_unit"] == "mA" and trace.info["where"] == "device 'fake-phone'"


def profile(energy: EnergyConfig, kind: str = "local") -> Profile:
    t = TransportConfig(kind=kind, host="h", serial="s")  # type: ignore[arg-type]
    return Profile(name="dev", device_class="board", transport=t, energy=energy, source="dev.toml")


def test_factory() -> None:
    from harness.energy.gauge import FuelGauge as G
    from harness.energy.ppk2 import Ppk2Meter
    from harness.energy.rapl import RaplCounter
    from harness.energy.scpi import ScpiMeter

    assert open_source(profile(EnergyConfig())) is None
    assert isinstance(open_source(profile(EnergyConfig(kind="ppk2", port="/dev/x", voltage_v=3.3))), Ppk2Meter)
    scpi = open_source(profile(EnergyConfig(kind="scpi", port="/dev/x", sample_hz=5.0, scpi_query="READ?")))
    assert isinstance(scpi, ScpiMeter) and scpi.sample_hz == 5.0 and scpi.query == "READ?"
    assert isinstance(open_source(profile(EnergyConfig(kind="rapl"))), RaplCounter)
    assert isinstance(open_source(profile(EnergyConfig(kind="fuel_gauge"))), G)
    with pytest.raises(ConfigError, match="energy.port"):
        open_source(profile(EnergyConfig(kind="scpi")))
    with pytest.raises(ConfigError, match="energy.voltage_v"):
        open_source(profile(EnergyConfig(kind="ppk2", port="/dev/x")))
    with pytest.raises(ConfigError, match="needs its transport"):
        open_source(profile(EnergyConfig(kind="fuel_gauge"), kind="ssh"))
