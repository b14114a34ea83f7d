"""The energy-source interface: start, stop -> a trace on the host's monotonic clock, and provenance.

Every source timestamps its samples with `time.monotonic()` on the controller (the host), the same clock the
controller uses to stamp the agent's phase events as they arrive, so a trace and a run's phases line up
without any clock exchange with the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from harness.errors import UserError

Accuracy = Literal["calibrated", "relative"]
TraceKind = Literal["power", "energy"]
FloatArray = npt.NDArray[np.float64]


class EnergyError(UserError):
    """An energy source that cannot be used: absent on this device, unreadable, or not answering."""


@dataclass
class Trace:
    """What a source recorded between start() and stop().

    kind "power": `value` holds power samples in W at host monotonic times `t` (instantaneous, or the mean of
    a short bin centred on `t`; `peak` then holds each bin's largest sample). kind "energy": `value` holds
    a cumulative energy counter in J (already unwrapped), read at times `t`.
    """

    source: str
    accuracy: Accuracy
    kind: TraceKind
    t: FloatArray
    value: FloatArray
    t_start: float  # host monotonic time of start() and stop()
    t_stop: float
    peak: FloatArray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # the source's describe()
    warnings: list[str] = field(default_factory=list)  # data loss, unit guesses ...
    tainted: list[str] = field(default_factory=list)  # reasons the figures are suspect (charging ...)

    def __post_init__(self) -> None:
        if self.t.shape != self.value.shape:
            raise ValueError(f"trace times {self.t.shape} and values {self.value.shape} differ in shape")
        if self.peak is not None and self.peak.shape != self.t.shape:
            raise ValueError("trace peaks must match its times")

    def __len__(self) -> int:
        return int(self.t.size)


@runtime_checkable
class EnergySource(Protocol):
    """A meter or counter that records power while a run goes on. One start/stop pair per instance."""

    source: str  # "ppk2", "scpi", "rapl", "fuel_gauge"
    accuracy: Accuracy  # "calibrated": an external meter or RAPL; "relative": good for A/B on one device only

    def start(self) -> None:
        """Open the meter and begin recording in the background; raises EnergyError when it cannot."""
        ...

    def stop(self) -> Trace:
        """Stop recording, release the meter and return everything recorded."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance: what was measured, how, with which settings (identity, calibration, port, rate)."""
        ...


def empty() -> FloatArray:
    return np.zeros(0, dtype=np.float64)
