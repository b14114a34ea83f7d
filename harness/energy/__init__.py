"""Energy: meters behind one interface, and energy aligned with a run's phases.

Sources (one file each, all implementing base.EnergySource): ppk2 (Nordic PPK2, serial), scpi (a line-based
SCPI meter, serial), rapl (Linux powercap counters), gauge (battery fuel gauge, through the transport).
Every trace is on the controller's `time.monotonic()` clock; its `accuracy` is "calibrated" (external meter,
RAPL) or "relative" (fuel gauge: compare runs on one device only).

How the runner uses it (all times host `time.monotonic()`):

    from harness import energy

    meter = energy.open_source(profile, transport)      # None when profile.energy.kind == "none"
    if meter is not None:
        meter.start()                                   # raises energy.EnergyError (a UserError) if unusable
        t0 = time.monotonic(); time.sleep(profile.energy.idle_baseline_s); t1 = time.monotonic()
    events = []                                         # [(phase, time.monotonic() when its line arrived)]
    ... transport.run(agent argv, on_stdout_line=lambda l: events.append((phase_of(l), time.monotonic())))
    t_end = time.monotonic()
    trace = meter.stop()
    phases = energy.phases_from_events(events, t_end)   # [{"name", "t_start", "t_end"}]
    record.energy, m = energy.summarise(trace, phases, n_inferences=n_runs, n_tokens=n_generated,
                                        idle_window=(t0, t1))
    record.metrics.update(m)                            # energy_j_per_inference/_per_token, power_w_avg/_peak
    record.tainted += record.energy["tainted"]          # e.g. a charging phone

Keep these host-stamped phases apart from the agent's own (device-clock) Record.phases, for example under
record.energy["phases"], which summarise fills with each phase's energy.
"""

from harness.energy.align import Phase, Window, integrate, phases_from_events, summarise
from harness.energy.base import Accuracy, EnergyError, EnergySource, Trace
from harness.energy.sources import open_source

__all__ = ["Accuracy", "EnergyError", "EnergySource", "Phase", "Trace", "Window", "integrate", "open_source",
           "phases_from_events", "summarise"]
