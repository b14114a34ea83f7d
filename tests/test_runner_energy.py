"""Energy through the real runner: an SCPI meter emulated on a pty, switched by the agent's own phase events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.artifacts import inspect
from harness.profiles import load_profile
from harness.runner import DeviceSession, RunOverrides
from harness.standins.scpi_emulator import ScpiEmulator


def test_energy_per_inference_from_an_emulated_meter(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                     tmp_path: Path) -> None:
    idle_w, busy_w = 0.5, 2.0
    with ScpiEmulator(idle_w) as meter:
        text = (fast_profiles / "local.toml").read_text()
        text += f'\n[energy]\nkind = "scpi"\nport = "{meter.path}"\nidle_baseline_s = 0.5\nsample_hz = 50\n'
        (tmp_path / "local.toml").write_text(text)
        prof = load_profile(tmp_path / "local.toml")

        def on_event(device: str, artifact: str, ev: dict[str, Any]) -> None:
            if ev.get("event") == "phase":  # the DUT draws more while it measures, as a real one would
                meter.set_power(busy_w if ev.get("phase") == "measure" else idle_w)

        session = DeviceSession(prof)
        try:
            rec = session.run_artifact(inspect(tiny_samples["onnx"]), "r", RunOverrides(min_s=1.0, max_s=1.5),
                                       on_event)
        finally:
            session.close()
    assert rec.status == "ok", rec.message
    assert rec.energy is not None and rec.energy["source"] == "scpi"
    measure = next(p for p in rec.energy["phases"] if p["name"] == "measure")
    seconds = measure["t_end"] - measure["t_start"]
    n = len(rec.samples["latency_ms"])
    expected = (busy_w - idle_w) * seconds / n
    got = rec.value("energy_j_per_inference")
    assert got is not None and abs(got - expected) / expected < 0.05, (got, expected)
    avg = rec.value("power_w_avg")
    assert avg is not None and abs(avg - busy_w) / busy_w < 0.05
