"""The PPK2 driver against an emulated PPK2 on a pseudo-terminal speaking the real serial protocol."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.energy import EnergyError, summarise
from harness.energy import ppk2_protocol as ppk2
from harness.energy.ppk2 import Ppk2Meter, _Stream
from harness.energy.ppk2_protocol import Calibration, SpikeFilter, parse_metadata
from harness.standins.ppk2_emulator import EMULATED_CALIBRATION, Ppk2Emulator, encode


def test_metadata_round_trip_and_bad_values() -> None:
    cal, other = parse_metadata(ppk2.metadata_text(EMULATED_CALIBRATION, {"HW": "9173", "IA": "56"}))
    assert cal == EMULATED_CALIBRATION
    assert other["HW"] == "9173" and other["IA"] == "56"
    cal, _ = parse_metadata("Calibrated: 0\nR0: 0\nR1: -nan\nGS2: 0.5\nO3: 12\nEND\n")
    default = Calibration()
    assert cal.r[0] == default.r[0] and cal.r[1] == default.r[1]  # a zero or NaN resistor keeps the default
    assert cal.gs[2] == 0.5 and cal.o[3] == 12.0


def test_voltage_command() -> None:
    assert ppk2.voltage_command(800) == bytes([0x0D, 3, 32])
    assert ppk2.voltage_command(100) == bytes([0x0D, 3, 32])  # clamped to 800 mV
    for mv in (800, 1800, 3300, 5000):
        cmd = ppk2.voltage_command(mv)
        assert ppk2.voltage_from_command(cmd[1], cmd[2]) == mv


def test_decode_recovers_encoded_currents_in_every_range() -> None:
    amps = np.array([3e-6, 150e-6, 2.5e-3, 12.3e-3, 55e-3, 0.4, 0.95])
    raw = ppk2.unpack(encode(EMULATED_CALIBRATION, amps, 3300, first_counter=62))
    assert list(raw.counter) == [62, 63, 0, 1, 2, 3, 4]
    assert len(set(raw.range.tolist())) >= 4
    got = ppk2.current_a(EMULATED_CALIBRATION, raw.range, raw.adc, 3300)
    lsb = 4 * ppk2.ADC_MULT / np.asarray(EMULATED_CALIBRATION.r)[raw.range]
    assert np.all(np.abs(got - amps) <= 0.6 * lsb * 1.01)


def _reference_filter(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The published algorithm, sample by sample from the stream's start (as ppk2-api runs it)."""
    out = v.copy()
    avg: float | None = None
    avg4: float | None = None
    prev: int | None = None
    after = consecutive = 0
    for k in range(v.size):
        x, rk = float(v[k]), int(r[k])
        pa, pa4 = avg, avg4
        avg = x if avg is None else 0.18 * x + 0.82 * avg
        avg4 = x if avg4 is None else 0.06 * x + 0.94 * avg4
        if prev is None:
            prev = rk
        if prev != rk or after > 0:
            if prev != rk:
                consecutive, after = 0, 3
            else:
                consecutive += 1
            if rk == 4:
                if consecutive < 2:
                    avg, avg4 = pa, pa4
                out[k] = avg4
            else:
                out[k] = avg
            after -= 1
        prev = rk
    return out


def test_spike_filter_matches_the_sample_by_sample_algorithm_across_batches() -> None:
    rng = np.random.default_rng(1)
    n = 6000
    r = np.zeros(n, dtype=np.int64)
    for start in rng.choice(n - 50, 40, replace=False):  # bursts in other ranges, some into range 4
        r[start:start + rng.integers(1, 30)] = rng.integers(1, 5)
    v = rng.normal(1e-3, 1e-4, n) * (1 + r)
    want = _reference_filter(v, r)
    f = SpikeFilter()
    cuts = [0, 7, 1000, 1003, 2500, 4999, n]
    got = np.concatenate([f.apply(v[a:b], r[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    assert np.allclose(got, want, rtol=1e-7, atol=1e-12)
    assert not np.allclose(got, v)  # it did filter something


def test_counter_jump_is_counted_as_lost_samples() -> None:
    amps = np.full(6000, 0.01)
    a = encode(EMULATED_CALIBRATION, amps[:3000], 3300, first_counter=0)
    b = encode(EMULATED_CALIBRATION, amps[3000:], 3300, first_counter=3000 + 17)  # 17 samples never arrived
    s = _Stream(EMULATED_CALIBRATION, 3300, 3.3, 100, spike_filter=True)
    s.feed(a + b, final=True)
    assert s.lost == 17 and s.decoded == 6000 and s.next_index == 6017
    assert np.array_equal(s.true_index(np.array([10, 3000, 3001, 6000])), [10, 3000, 3018, 6017])


def test_recovers_a_constant_current() -> None:
    with Ppk2Emulator(0.0123) as emu:
        meter = Ppk2Meter(emu.path, voltage_v=3.3)
        meter.start()
        time.sleep(0.3)
        trace = meter.stop()
        assert emu.vdd_mv == 3300 and emu.dut_on and emu.power_mode == 2
    assert trace.source == "ppk2" and trace.accuracy == "calibrated" and not trace.warnings
    assert trace.info["samples"] > 20_000
    mean_ma = float(np.mean(trace.value)) / 3.3 * 1000
    assert mean_ma == pytest.approx(12.3, rel=1e-3)
    assert trace.info["metadata"]["HW"] == "9173"


def test_recovers_net_energy_with_idle_baseline_subtracted() -> None:
    idle_w, load_w, load_s = 0.5, 2.0, 1.0
    with Ppk2Emulator(idle_w, unit="W", steps=[(0.35, load_w), (0.35 + load_s, idle_w)]) as emu:
        meter = Ppk2Meter(emu.path, voltage_v=5.0)
        meter.start()
        time.sleep(0.35 + load_s + 0.15)
        trace = meter.stop()
        assert emu.stream_started_at is not None
        t0 = emu.stream_started_at
        s1, s2 = emu.step_times
        truth_net = emu.true_energy_j(s1, s2) - idle_w * (s2 - s1)
    phases = [{"name": "warmup", "t_start": t0 + 0.3, "t_end": s1}, {"name": "measure", "t_start": s1, "t_end": s2}]
    energy, metrics = summarise(trace, phases, n_inferences=50, idle_window=(t0 + 0.02, t0 + 0.3))
    assert truth_net == pytest.approx((load_w - idle_w) * load_s, rel=1e-6)
    assert energy["idle"]["power_w"] == pytest.approx(idle_w, rel=0.005)
    assert energy["measured"]["energy_j_net"] == pytest.approx(truth_net, rel=0.01)
    assert metrics["energy_j_per_inference"].value == pytest.approx(truth_net / 50, rel=0.01)
    assert metrics["power_w_avg"].value == pytest.approx(load_w, rel=0.01)
    assert metrics["power_w_peak"].value == pytest.approx(load_w, rel=0.01)
    assert energy["accuracy"] == "calibrated" and not energy["warnings"]


def test_ampere_mode_leaves_dut_power_alone() -> None:
    with Ppk2Emulator(0.1) as emu:
        meter = Ppk2Meter(emu.path, voltage_v=12.0, mode="ampere")
        meter.start()
        time.sleep(0.1)
        trace = meter.stop()
        assert emu.power_mode == 1 and not emu.dut_on
    assert float(np.mean(trace.value)) == pytest.approx(0.1 * 12.0, rel=2e-3)


def test_unknown_port_and_silent_port_are_user_errors(tmp_path: object) -> None:
    with pytest.raises(EnergyError, match="cannot open serial port"):
        Ppk2Meter("/dev/does-not-exist", voltage_v=3.3).start()
    from harness.standins.pty_device import open_raw_pty

    master, slave, path = open_raw_pty()  # a port where nobody answers
    try:
        with pytest.raises(EnergyError, match="no calibration metadata"):
            Ppk2Meter(path, voltage_v=3.3, open_timeout_s=0.3).start()
    finally:
        import os

        os.close(master)
        os.close(slave)


def test_the_ppk2_api_client_reads_the_emulator() -> None:
    """Optional: the GPL ppk2-api package is no dependency; checked only where it is installed."""
    api = pytest.importorskip("ppk2_api.ppk2_api")
    with Ppk2Emulator(0.0123) as emu:
        p = api.PPK2_API(emu.path)
        p.get_modifiers()
        p.use_source_meter()
        p.set_source_voltage(3300)
        p.toggle_DUT_power("ON")
        p.start_measuring()
        values: list[float] = []
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            data = p.get_data()
            if data:
                got = p.get_samples(data)
                values += got[0] if isinstance(got, tuple) else got
            time.sleep(0.01)
        p.stop_measuring()
        del p
    assert values and sum(values) / len(values) == pytest.approx(12300.0, rel=1e-3)  # uA


def test_profile_to_summary_through_the_factory() -> None:
    from harness.energy import open_source
    from harness.profiles import EnergyConfig, Profile, TransportConfig

    with Ppk2Emulator(0.05) as emu:
        prof = Profile(name="board", device_class="board", transport=TransportConfig(kind="local"),
                       energy=EnergyConfig(kind="ppk2", port=emu.path, voltage_v=3.7))
        meter = open_source(prof)
        assert meter is not None
        meter.start()
        t0 = time.monotonic()
        time.sleep(0.2)
        t1 = time.monotonic()
        time.sleep(0.2)
        trace = meter.stop()
    energy, metrics = summarise(trace, [{"name": "measure", "t_start": t1, "t_end": t1 + 0.15}], n_inferences=3)
    assert energy["source"] == "ppk2" and energy["meter"]["voltage_v"] == 3.7
    assert metrics["power_w_avg"].value == pytest.approx(0.05 * 3.7, rel=2e-3)
    assert t0 < t1
