"""Thermals through the real runner and the real local transport: the device's /sys is a fake tree whose
temperatures and CPU frequencies threads change while the real agent measures a real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_thermal_probe import FakeSys, phone_like

from harness import thermal
from harness.artifacts import inspect
from harness.gate import evaluate
from harness.profiles import Profile, load_profile
from harness.records import Record
from harness.runner import DeviceSession, RunOverrides


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thermal, "POLL_S", 0.1)


def _profile(fast_profiles: Path, tmp_path: Path, run_keys: str) -> Profile:
    text = (fast_profiles / "local.toml").read_text().replace("[run]\n", "[run]\n" + run_keys)
    (tmp_path / "local.toml").write_text(text)
    return load_profile(tmp_path / "local.toml")


def _run(prof: Profile, onnx: Path, sysfs: Path, monkeypatch: pytest.MonkeyPatch,
         on_event: Any = None) -> Record:
    monkeypatch.setattr(thermal, "SYSFS_ROOT", str(sysfs))
    session = DeviceSession(prof)
    try:
        return session.run_artifact(inspect(onnx), "r", RunOverrides(min_s=1.2, max_s=2.0), on_event)
    finally:
        session.close()


def test_throttled_run_is_tainted_and_the_gate_inconclusive(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = phone_like(tmp_path / "sys")
    fs.set_temp(0, 70.0)  # hot, and stays hot: the cool-down gives up at its bound
    prof = _profile(fast_profiles, tmp_path, "cooldown_margin_c = 3.0\ncooldown_max_s = 0.5\nidle_temp_c = 40.0\n")

    def on_event(device: str, artifact: str, ev: dict[str, Any]) -> None:
        if ev.get("event") == "phase" and ev.get("phase") == "measure":
            fs.set_freq(4, 1_000_000)  # the big cores are capped as the measured runs start

    rec = _run(prof, tiny_samples["onnx"], fs.root, monkeypatch, on_event)
    assert rec.status == "ok", rec.message
    th = rec.thermal
    assert th is not None and th["available"] and th["throttled"] is True
    assert th["cooldown"]["timed_out"] and th["cooldown"]["waited_s"] >= 0.5 and th["cooldown"]["end_c"] == 70.0
    assert th["idle_c"] == 40.0 and th["idle_source"] == "profile run.idle_temp_c"
    assert "start" in th and "end" in th  # the agent's own zone readings are kept beside the controller's
    assert {p["policy"]: p["governor"] for p in th["cpufreq"]} == {"policy0": "schedutil", "policy4": "schedutil"}
    # The sampler's last reading is taken after the run (stop()), so it sees the cap whatever the thread timing.
    assert len(th["trace"]) >= 2 and th["trace"][-1]["cur_khz"]["policy4"] == 1_000_000
    assert any(t.startswith("cool-down timed out after") for t in rec.tainted), rec.tainted
    assert any(t.startswith("throttled: CPU frequency below 85%") for t in rec.tainted), rec.tainted
    report = evaluate([rec], profiles={"local": prof})
    cell = report.cells[0]
    assert cell.outcome == "inconclusive" and report.exit_code == 1
    assert all(r.outcome == "inconclusive" and "tainted" in r.reason for r in cell.rules if r.kind == "budget")


def test_cool_down_then_a_clean_run(fast_profiles: Path, tiny_samples: dict[str, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fs = phone_like(tmp_path / "sys")  # 40 degrees when the session opens: the idle temperature
    prof = _profile(fast_profiles, tmp_path, "cooldown_margin_c = 2.0\ncooldown_max_s = 20.0\n")
    monkeypatch.setattr(thermal, "SYSFS_ROOT", str(fs.root))
    session = DeviceSession(prof)
    try:
        assert session.thermals.idle_c == 40.0
        fs.set_temp(0, 60.0)  # a previous run heated the device; it cools over a second
        ramp = fs.temp_ramp(0, 60.0, 40.0, seconds=1.0)
        rec = session.run_artifact(inspect(tiny_samples["onnx"]), "r", RunOverrides(min_s=1.0, max_s=2.0))
        ramp.join()
    finally:
        session.close()
    assert rec.status == "ok", rec.message
    th = rec.thermal
    assert th is not None and th["throttled"] is False and _thermal_taints(rec) == []
    c = th["cooldown"]
    # However far the ramp got before the cool-down began: a hot start is waited out, never measured.
    assert not c["timed_out"] and c["end_c"] <= 42.0, c
    assert c["waited_s"] > 0 if c["start_c"] > 42.0 else c["waited_s"] < 1.0, c
    assert th["idle_source"] == "measured when the session opened"
    assert th["measure_temp_c"]["max"] <= 42.0
    assert evaluate([rec], profiles={"local": prof}).cells[0].outcome == "pass"


def test_no_thermal_files_degrades_to_not_available(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = FakeSys(tmp_path / "sys").root  # as in this container: no thermal zones, no cpufreq
    prof = _profile(fast_profiles, tmp_path, "cooldown_margin_c = 2.0\n")
    rec = _run(prof, tiny_samples["onnx"], empty, monkeypatch)
    assert rec.status == "ok", rec.message
    th = rec.thermal
    assert th is not None and th["available"] is False and "no readable thermal zone" in th["why"]
    assert th["cooldown"] == {"enabled": True, "available": False, "why": "no readable thermal zone on the device"}
    assert th["idle_c"] is None and "trace" not in th and _thermal_taints(rec) == []


def _thermal_taints(rec: Record) -> list[str]:
    """Taints other than contention: a busy host is judged apart from the device's thermals."""
    return [t for t in rec.tainted if not t.startswith("contended")]
