"""What is measured around one agent run, beside the agent itself: thermals, energy, the memory cap.

Each is a RunHook: `before` right before the agent starts, `after` the moment it exits (stop sampling, read
counters), `finish` once the run's status is settled (add figures to the record). The runner calls them in
order and knows nothing else about them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness import energy, thermal
from harness.memcap import MMAPPED_FORMATS, MemoryCap, WeightPin, evict_from_page_cache
from harness.profiles import Profile
from harness.provenance import MemoryCapInfo
from harness.records import Metric, Record
from harness.transports import Transport
from harness.transports.base import CommandResult


@dataclass
class AgentRun:
    """What the controller saw of one agent run."""

    staged_path: str
    format: str
    result: dict[str, Any] | None = None  # the agent's result event
    command: CommandResult | None = None
    host_phases: list[dict[str, Any]] = field(default_factory=list)
    t_end: float = 0.0
    oom_killed: bool = False  # the memory cap's group saw a kernel OOM kill during the run
    not_run: str | None = None  # a hook found the run cannot happen (the weights alone exceed the cap): why


class RunHook(Protocol):
    def before(self, run: AgentRun) -> None: ...

    def after(self, run: AgentRun) -> None: ...

    def finish(self, rec: Record, run: AgentRun) -> None: ...


class ThermalHook:
    """Cool down before, sample temperature and CPU frequency during, taint a throttled run."""

    def __init__(self, thermals: thermal.SessionThermals) -> None:
        self.watch = thermals.watch()

    def before(self, run: AgentRun) -> None:
        self.watch.before()

    def after(self, run: AgentRun) -> None:
        self.watch.stop()

    def finish(self, rec: Record, run: AgentRun) -> None:
        ctrl, taints = self.watch.finish(run.host_phases, run.t_end)
        rec.thermal = {**(rec.thermal or {}), **ctrl}  # the controller's readings beside the agent's
        rec.tainted += [t for t in taints if t not in rec.tainted]


class EnergyHook:
    """An energy meter started before the run (with an idle baseline) and read after it."""

    def __init__(self, profile: Profile, meter: energy.EnergySource) -> None:
        self.profile, self.meter = profile, meter
        self.error: str | None = None
        self.idle: tuple[float, float] | None = None
        self.trace: energy.Trace | None = None
        self.started = False

    def before(self, run: AgentRun) -> None:
        try:
            self.meter.start()
        except energy.EnergyError as e:  # measure anyway; the record says why it has no energy
            self.error = str(e)
            return
        self.started = True
        t0 = time.monotonic()
        time.sleep(self.profile.energy.idle_baseline_s)  # the idle baseline is a measured window, not a wait
        self.idle = (t0, time.monotonic())

    def after(self, run: AgentRun) -> None:
        if self.started:
            self.trace = self.meter.stop()

    def finish(self, rec: Record, run: AgentRun) -> None:
        if self.error is not None:
            rec.energy = {"source": self.profile.energy.kind, "error": self.error}
            return
        if self.trace is None or rec.status != "ok":
            return
        events = [(str(p["phase"]), float(p["host_t"])) for p in run.host_phases]
        itl, ttft = rec.samples.get("itl_ms", []), rec.samples.get("ttft_ms", [])
        # generated tokens: from the per-token series, else (llama-bench: none) repetitions x new_tokens
        n_tokens = len(itl) + len(ttft) if itl else len(ttft) * int((rec.workload.get("gguf") or {}).get("new_tokens", 0))
        rec.energy, emetrics = energy.summarise(
            self.trace, energy.phases_from_events(events, run.t_end),
            n_inferences=len(rec.samples.get("latency_ms", [])), n_tokens=n_tokens or None, idle_window=self.idle)
        rec.metrics.update(emetrics)
        rec.tainted += [t for t in rec.energy.get("tainted", []) if t not in rec.tainted]


class MemoryCapHook:
    """The local memory cap: a clean page cache for the model file, a fresh peak, the OOM kills during the run."""

    def __init__(self, cap: MemoryCap) -> None:
        self.cap = cap
        self.oom_before = 0
        self.dropped = False
        self.pin: WeightPin | None = None

    def before(self, run: AgentRun) -> None:
        self.oom_before = self.cap.oom_kills()
        self.cap.reset_peak()
        if self.cap.cgroup is not None:
            self.dropped = evict_from_page_cache(run.staged_path)
            if run.format in MMAPPED_FORMATS:
                self.pin = WeightPin(self.cap, run.staged_path)
                self.pin.start()
                if self.pin.killed:
                    run.not_run = (f"the model file's {os.path.getsize(run.staged_path) / 2**20:.1f} MiB of mmapped "
                                   f"weights were OOM-killed by the {self.cap.kind} memory cap of "
                                   f"{self.cap.limit_mib} MiB while being made resident; the model was not run")

    def after(self, run: AgentRun) -> None:
        if self.pin is not None:
            self.pin.stop()
        run.oom_killed = self.cap.oom_kills() > self.oom_before

    def finish(self, rec: Record, run: AgentRun) -> None:
        peak = self.cap.peak_mib()
        rec.provenance.memory_cap = MemoryCapInfo(
            kind=self.cap.kind, limit_mib=self.cap.limit_mib, group_peak_mib=None if peak is None else round(peak, 2),
            model_file_evicted_from_page_cache=self.dropped,
            weights_locked_mib=None if self.pin is None else round(self.pin.locked_bytes / 2**20, 2),
            weights_lock_error=None if self.pin is None else self.pin.error or None)
        if rec.status == "oom" and peak is not None:
            rec.metrics.setdefault("peak_rss_mib", Metric(value=round(peak, 2), unit="MiB",
                                                          note="the memory cap group's peak at the OOM kill"))


def hooks_for(profile: Profile, transport: Transport, thermals: thermal.SessionThermals,
              cap: MemoryCap | None, energy_meter: bool = True) -> list[RunHook]:
    """The hooks one run on this device gets, in the order they start (thermal cool-down first). energy_meter
    False: no energy hook (a launch alternating two models: its energy is neither's)."""
    hooks: list[RunHook] = [ThermalHook(thermals)]
    if cap is not None:
        hooks.append(MemoryCapHook(cap))
    meter = energy.open_source(profile, transport) if energy_meter else None
    if meter is not None:
        hooks.append(EnergyHook(profile, meter))
    return hooks


def settle_status(rec: Record, run: AgentRun, cap: MemoryCap | None) -> None:
    """The one place the controller decides a run's status from what it saw; the agent's own verdict stands
    unless the kernel's OOM killer (seen by the cap's group) explains a crash or a missing result."""
    res = run.command
    if run.not_run is not None:
        rec.status, rec.message = ("oom" if run.oom_killed else "error"), run.not_run
        return
    if run.result is None:
        timeout_s = rec.workload.get("timeout_s")
        if res is not None and res.timed_out:
            rec.status, rec.message = "timeout", f"agent did not finish within {timeout_s} s; killed"
        elif run.oom_killed:
            rec.status = "oom"
        elif res is not None and res.exit_code < 0:
            rec.status, rec.signal = "crashed", -res.exit_code
            rec.message = f"agent killed by signal {-res.exit_code}"
        else:
            tail = ((res.stderr or res.stdout) if res is not None else "").strip()[-800:]
            code = res.exit_code if res is not None else None
            rec.status, rec.message = "error", f"agent exited {code} without a result: {tail}"
    if run.oom_killed and rec.status in ("crashed", "error", "oom") and cap is not None:
        rec.status = "oom"
        rec.message = f"OOM-killed by the {cap.kind} memory cap of {cap.limit_mib} MiB"
    rec.refresh_headroom()
