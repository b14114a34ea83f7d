"""Thermals through the real adb path (adbutils -> adb server -> the adbd stand-in, which runs its shell commands
on this host): a fake /sys tree read with one `grep` per poll, and a whole run on an android profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from remote_fixtures import adb_profile, adb_server, adb_transport, phone, phone_factory  # noqa: F401
from test_thermal_probe import phone_like

from harness import thermal
from harness.artifacts import inspect
from harness.energy.sysfs import TransportFiles
from harness.gate import evaluate
from harness.gate.policy import load_policy
from harness.profiles import load_profile
from harness.runner import DeviceSession, RunOverrides
from harness.standins import adbd
from harness.devicestate import ThermalProbe
from harness.thermal import cool_down


def test_probe_and_cool_down_over_adb(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice, tmp_path: Path) -> None:
    fs = phone_like(tmp_path / "sys")
    fs.set_temp(0, 60.0)
    transport = adb_transport(adb_server, phone)
    try:
        probe = ThermalProbe(TransportFiles(transport), str(fs.root))
        assert [z.name for z in probe.zones] == ["thermal_zone0", "thermal_zone2"]
        assert [p.name for p in probe.policies] == ["policy0", "policy4"]
        s = probe.read()
        assert s.temp_c == 60.0 and s.cur_khz == {"policy0": 300_000, "policy4": 2_400_000}
        ramp = fs.temp_ramp(0, 60.0, 40.0, seconds=1.0)
        c = cool_down(probe, idle_c=40.0, margin_c=2.0, max_s=15.0, poll_s=0.1)
        ramp.join()
        assert not c["timed_out"] and c["end_c"] <= 42.0
    finally:
        transport.close()


def test_throttled_run_on_an_android_profile(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice,
                                             tiny_samples: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fs = phone_like(tmp_path / "sys")
    monkeypatch.setattr(thermal, "SYSFS_ROOT", str(fs.root))
    monkeypatch.setattr(thermal, "POLL_S", 0.2)
    prof = load_profile(adb_profile(tmp_path / "profiles", "phone", adb_server, phone, cooldown_margin_c=2.0,
                                    cooldown_max_s=5.0, min_s=1.5, max_s=3.0))

    def on_event(device: str, artifact: str, ev: dict[str, Any]) -> None:
        if ev.get("event") == "phase" and ev.get("phase") == "measure":
            fs.set_temp(0, 90.0)  # past the passive trip point (85) while the measured runs go on

    session = DeviceSession(prof)
    try:
        rec = session.run_artifact(inspect(tiny_samples["onnx"]), "r", RunOverrides(), on_event)
    finally:
        session.close()
    assert rec.status == "ok", rec.message
    th = rec.thermal
    assert th is not None and th["throttled"] is True and th["idle_c"] == 40.0
    assert not th["cooldown"]["timed_out"] and th["cooldown"]["waited_s"] < 1.0
    assert "battery" in th["power"] or th["power"].get("available") is False  # recorded, whatever the host has
    # contention (a busy host) is judged apart from thermals and may stand beside it
    assert [t for t in rec.tainted if not t.startswith("contended")] == ["throttled: thermal_zone0 (cpu-0-0-usr) reached its passive trip point 85 °C "
                           "(peak 90 °C) during the measured runs"]
    (tmp_path / "policy.toml").write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p50"\nmax = 1000\n')
    cell = evaluate([rec], load_policy(tmp_path / "policy.toml"), profiles={"phone": prof}).cells[0]
    assert cell.outcome == "inconclusive" and "tainted" in cell.rules[0].reason
