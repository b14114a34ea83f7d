"""The SCPI meter driver against an emulated SCPI power meter on a pseudo-terminal."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

from harness.energy import EnergyError, summarise
from harness.energy.scpi import ScpiMeter, well_timed
from harness.standins.pty_device import open_raw_pty
from harness.standins.scpi_emulator import IDENTITY, ScpiEmulator

IDLE_W, LOAD_W, LOAD_S = 0.5, 2.0, 1.5


def test_emulator_speaks_scpi_forms() -> None:
    emu = ScpiEmulator(2.0, voltage_v=4.0)
    try:
        assert emu.answer("*IDN?") == IDENTITY
        assert float(emu.answer("MEAS:POW?") or "nan") == 2.0
        assert float(emu.answer("measure:power:dc?") or "nan") == 2.0
        assert float(emu.answer(":MEASure:CURRent?") or "nan") == 0.5
        assert float(emu.answer("MEAS:VOLT?") or "nan") == 4.0
        assert emu.answer("CONF:POW") is None and emu.configured
        assert emu.answer("MEAS:BOGUS?") is None
        assert emu.answer("SYST:ERR?") == '-113,"Undefined header"'
        assert emu.answer("SYST:ERR?") == '+0,"No error"'
    finally:
        emu.close()


def _measure(emu: ScpiEmulator, meter: ScpiMeter) -> tuple[dict[str, Any], float, float]:
    """Idle, then LOAD_W for LOAD_S from 0.4 s after the meter started: (energy dict, true net J, seconds)."""
    meter.start()
    t = time.monotonic()
    s1 = emu.set_power(LOAD_W, at=t + 0.4)
    s2 = emu.set_power(IDLE_W, at=t + 0.4 + LOAD_S)
    time.sleep(max(0.0, s2 + 0.1 - time.monotonic()))
    trace = meter.stop()
    energy, metrics = summarise(trace, [{"name": "measure", "t_start": s1, "t_end": s2}], n_inferences=30,
                                n_tokens=300, idle_window=(t + 0.02, t + 0.35))
    truth = (LOAD_W - IDLE_W) * (s2 - s1)
    assert metrics["energy_j_per_token"].value == pytest.approx(truth / 300, rel=0.01)
    return energy, truth, s2 - s1


def test_recovers_net_energy_with_meas_pow() -> None:
    with ScpiEmulator(IDLE_W) as emu:
        meter = ScpiMeter(emu.path, sample_hz=100.0, setup=["CONF:POW"])
        energy, truth, _ = _measure(emu, meter)
        assert emu.configured
    assert energy["meter"]["method"] == "MEAS:POW? (W)"
    assert energy["meter"]["meter"] == IDENTITY
    assert energy["idle"]["power_w"] == pytest.approx(IDLE_W, rel=0.005)
    assert energy["measured"]["energy_j_net"] == pytest.approx(truth, rel=0.01)


def test_falls_back_to_current_times_voltage() -> None:
    with ScpiEmulator(IDLE_W, voltage_v=5.0, supports_power=False) as emu:
        meter = ScpiMeter(emu.path, sample_hz=100.0, reply_timeout_s=0.3)
        energy, truth, _ = _measure(emu, meter)
        assert not emu.errors  # the probe's error was read back off the queue
    assert energy["meter"]["method"] == "MEAS:CURR? x MEAS:VOLT?"
    assert energy["measured"]["energy_j_net"] == pytest.approx(truth, rel=0.01)


def test_configured_current_query_with_supply_voltage_and_crlf() -> None:
    with ScpiEmulator(IDLE_W, voltage_v=3.3, terminator="\r\n") as emu:
        meter = ScpiMeter(emu.path, sample_hz=100.0, query="MEAS:CURR:DC?", voltage_v=3.3, terminator="\r\n")
        energy, truth, _ = _measure(emu, meter)
    assert energy["measured"]["energy_j_net"] == pytest.approx(truth, rel=0.01)


def test_silent_port_is_a_user_error() -> None:
    master, slave, path = open_raw_pty()
    try:
        with pytest.raises(EnergyError, match=r"no answer to \*IDN\?"):
            ScpiMeter(path, reply_timeout_s=0.2).start()
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(EnergyError, match="cannot open serial port"):
        ScpiMeter("/dev/does-not-exist").start()


def test_readings_with_slow_replies_are_left_out() -> None:
    rtt = np.full(50, 0.0004)
    rtt[[7, 30]] = [0.060, 0.004]  # a 60 ms stall; 4 ms is within 2/3 of a 10 ms poll period
    keep, med, limit = well_timed(rtt, 100.0)
    assert med == pytest.approx(0.0004) and limit == pytest.approx(0.0004 + 0.00667, rel=1e-3)
    assert list(np.flatnonzero(~keep)) == [7]
    assert well_timed(rtt[:5], 100.0)[0].all()  # too few readings to judge
