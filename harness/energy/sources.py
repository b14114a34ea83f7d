"""Choosing and building the energy source a device profile names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.energy.base import EnergySource
from harness.energy.sysfs import FileReader, LocalFiles, TransportFiles
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.profiles import Profile
    from harness.transports.base import Transport


def _files(profile: Profile, transport: Transport | None) -> FileReader:
    if profile.transport.kind == "local" or transport is None:
        if profile.transport.kind != "local":
            raise ConfigError(profile.source or profile.name, "energy.kind",
                              f"'{profile.energy.kind}' reads the device's own files and needs its transport")
        return LocalFiles()
    return TransportFiles(transport)


def open_source(profile: Profile, transport: Transport | None = None) -> EnergySource | None:
    """The energy source of a profile (None for kind "none"), not started yet.

    External meters (ppk2, scpi) sit on the controller's serial ports; rapl and fuel_gauge read the device's
    sysfs, directly for a local device, else through `transport`.
    """
    e = profile.energy
    where = profile.source or profile.name
    if e.kind == "none":
        return None
    if e.kind in ("ppk2", "scpi") and not e.port:
        raise ConfigError(where, "energy.port", f"required for a {e.kind} meter (a serial port such as "
                                                "/dev/ttyACM0, or a pyserial URL)")
    if e.sample_hz is not None and e.sample_hz <= 0:
        raise ConfigError(where, "energy.sample_hz", "must be positive")
    if e.kind == "ppk2":
        from harness.energy.ppk2 import Ppk2Meter

        assert e.port is not None
        if e.voltage_v is None:
            raise ConfigError(where, "energy.voltage_v", "required for a ppk2: the source voltage it supplies "
                                                         "(mode source) or the supply's voltage (mode ampere)")
        if e.mode == "source" and not 0.8 <= e.voltage_v <= 5.0:
            raise ConfigError(where, "energy.voltage_v", "a PPK2 supplies 0.8 to 5.0 V")
        return Ppk2Meter(e.port, voltage_v=e.voltage_v, mode=e.mode, baudrate=e.baudrate or 115200)
    if e.kind == "scpi":
        from harness.energy.scpi import ScpiMeter

        assert e.port is not None
        return ScpiMeter(e.port, baudrate=e.baudrate or 9600, sample_hz=e.sample_hz or 20.0,
                         query=e.scpi_query, setup=e.scpi_setup, terminator=e.scpi_terminator,
                         voltage_v=e.voltage_v)
    if e.kind == "rapl":
        from harness.energy.rapl import RaplCounter

        return RaplCounter(_files(profile, transport), sample_hz=e.sample_hz or 10.0)
    from harness import devicestate
    from harness.devicestate import BatteryState
    from harness.energy.gauge import FuelGauge

    charger: Callable[[], BatteryState] | None = None
    if transport is not None:
        t = transport

        def charger() -> BatteryState:
            return devicestate.battery(t)

    return FuelGauge(_files(profile, transport), sample_hz=e.sample_hz or 4.0, charger=charger)
