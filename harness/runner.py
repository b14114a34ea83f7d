"""One device, many artifacts in sequence: stage the agent and each artifact, run, build the Record.

The runner orchestrates; the agent measures. Every failure becomes a Record with a status and a message:
a device that drops is `device_lost`, a hung agent `timeout`, a kernel OOM kill under the cap `oom`.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.result import AgentResult
from agents.spec import SpecError, WorkloadSpec
from harness import deploy, energy, thermal
from harness.errors import ConfigError, DeviceError, DeviceLost, UserError
from harness.memcap import MemoryCap
from harness.metrics import METRICS
from harness.profiles import Profile
from harness.records import ArtifactInfo, DeviceInfo, Metric, Record, now_rfc3339
from harness.transports import Transport, open_transport
from harness.transports.local import LocalTransport
from harness.version import harness_version

EventSink = Callable[[str, str, dict[str, Any]], None]  # (device, artifact name, event)


@dataclass
class RunOverrides:
    """Run control given on the command line; None keeps the profile's value."""

    warmup_runs: int | None = None
    min_runs: int | None = None
    min_s: float | None = None
    max_s: float | None = None
    threads: int | None = None
    timeout_s: float | None = None
    seed: int = 0
    adaptive: tuple[list[float], float] | None = None  # (percentiles, relative CI width): stop when all are met
    extra: dict[str, Any] = field(default_factory=dict)


def build_spec(profile: Profile, artifact_remote: str, fmt: str, o: RunOverrides, rlimit_mib: int | None,
               sha256: str | None = None) -> WorkloadSpec:
    """The WorkloadSpec for one artifact: profile run control, command-line overrides, the expected sha256."""
    r = profile.run
    spec: dict[str, Any] = {
        "artifact": artifact_remote,
        "format": fmt,
        "artifact_sha256": sha256,
        "warmup_runs": o.warmup_runs if o.warmup_runs is not None else r.warmup_runs,
        "warmup_min_s": r.warmup_min_s,
        "min_runs": o.min_runs if o.min_runs is not None else r.min_runs,
        "min_s": o.min_s if o.min_s is not None else r.min_s,
        "max_s": o.max_s if o.max_s is not None else r.max_s,
        "max_runs": r.max_runs,
        "dynamic_dims": dict(r.dynamic_dims),
        "threads": o.threads if o.threads is not None else r.threads,
        "seed": o.seed,
        "timeout_s": o.timeout_s if o.timeout_s is not None else r.timeout_s,
        "pin_cpus": r.pin_cpus,
        "rlimit_as_mib": rlimit_mib,
        "gguf": {"prompt_tokens": r.gguf_prompt_tokens, "new_tokens": r.gguf_new_tokens,
                 "repetitions": r.gguf_repetitions},
    }
    if o.adaptive is not None:
        spec["adaptive"] = {"percentiles": o.adaptive[0], "rel_width": o.adaptive[1]}
    elif r.adaptive_percentiles:
        spec["adaptive"] = {"percentiles": r.adaptive_percentiles, "rel_width": r.adaptive_rel_width}
    spec.update(o.extra)
    try:
        return WorkloadSpec.from_dict(spec, where=f"workload for device {profile.name}")
    except SpecError as e:
        raise ConfigError(profile.source or profile.name, "run", str(e)) from None


class DeviceSession:
    """An open connection to one device with the agent staged and the device fingerprinted."""

    def __init__(self, profile: Profile, transport: Transport | None = None) -> None:
        self.profile = profile
        self.transport = transport if transport is not None else open_transport(profile)
        facts = self.transport.facts()  # one round-trip: python and work dir together
        self.python = facts.python or profile.transport.python
        self.workdir = profile.transport.workdir or facts.workdir or "/tmp/edgefarm"
        self.agent = deploy.stage_agent(self.transport, self.python, self.workdir)
        self.fingerprint = deploy.probe(self.transport, self.python, self.agent.remote)
        self.bytes_sent = self.agent.stats.bytes_sent
        self.thermals = thermal.SessionThermals(profile, self.transport)  # idle temperature, once per session

    def device_info(self) -> DeviceInfo:
        return _device_info(self.profile, self.fingerprint.get("fingerprint", {}))

    def close(self) -> None:
        self.transport.close()

    def run_artifact(self, artifact: ArtifactInfo, run_id: str, overrides: RunOverrides,
                     on_event: EventSink | None = None) -> Record:
        """Stage and measure one artifact; never raises for device trouble, returns a Record saying what happened."""
        started = now_rfc3339()
        rec = Record(run_id=run_id, device=self.device_info(), artifact=artifact, status="error",
                     started_at=started, finished_at=started, provenance=self._provenance())

        def emit(event: dict[str, Any]) -> None:
            if on_event:
                on_event(self.profile.name, artifact.name, event)

        try:
            staged = deploy.stage(self.transport, self.python, self.workdir, Path(artifact.path),
                                  progress=lambda done, total: emit({"event": "push", "done": done, "total": total}))
            self.bytes_sent += staged.stats.bytes_sent
            rec.provenance["push"] = {"bytes_sent": staged.stats.bytes_sent, "skipped": staged.stats.skipped,
                                      "seconds": round(staged.stats.seconds, 3), "remote_path": staged.remote}
            self._measure(rec, staged.remote, overrides, emit)
        except DeviceLost as e:
            rec.status, rec.message = "device_lost", str(e)
        except DeviceError as e:
            rec.status, rec.message = "error", str(e)
        rec.finished_at = now_rfc3339()
        return rec

    def _measure(self, rec: Record, remote: str, o: RunOverrides, emit: Callable[[dict[str, Any]], None]) -> None:
        cap = self.transport.memory_cap if isinstance(self.transport, LocalTransport) else None
        rlimit = cap.limit_mib if cap is not None and cap.cgroup is None else None
        spec = build_spec(self.profile, remote, rec.artifact.format, o, rlimit, sha256=rec.artifact.sha256)
        rec.workload = spec.to_dict()  # replaced by the agent's echo of what it used
        argv = deploy.agent_argv(self.python, self.agent.remote, "run", json.dumps(rec.workload, sort_keys=True))
        result: dict[str, Any] | None = None
        host_phases: list[dict[str, Any]] = []

        def on_line(line: str) -> None:
            nonlocal result
            try:
                ev = json.loads(line)
            except ValueError:
                return
            if not isinstance(ev, dict):
                return
            if ev.get("event") == "phase":
                host_phases.append({"phase": ev.get("phase"), "host_t": time.monotonic(), "device_t": ev.get("t")})
            elif ev.get("event") == "result":
                result = ev
            emit(ev)

        watch = self.thermals.watch()
        watch.before()  # cool-down (bounded), then temperature and CPU frequency sampled during the run
        oom_before = cap.oom_kills() if cap else 0
        if cap:
            cap.reset_peak()
        meter = energy.open_source(self.profile, self.transport)
        idle: tuple[float, float] | None = None
        if meter is not None:
            try:
                meter.start()
            except energy.EnergyError as e:  # measure anyway; the record says why it has no energy
                rec.energy = {"source": self.profile.energy.kind, "error": str(e)}
                meter = None
        if meter is not None:
            t0 = time.monotonic()
            time.sleep(self.profile.energy.idle_baseline_s)
            idle = (t0, time.monotonic())
        try:
            # The agent stops its model at timeout_s itself; this grace is for an agent that hangs.
            limit = spec.timeout_s
            res = self.transport.run(argv, timeout=limit + min(60.0, max(10.0, 0.25 * limit)), on_stdout_line=on_line)
        finally:
            t_end = time.monotonic()
            trace = meter.stop() if meter is not None else None
            watch.stop()
        rec.provenance["host_phases"] = host_phases
        rec.thermal, thermal_taints = watch.finish(host_phases, t_end)
        rec.tainted += thermal_taints
        oom_killed = cap is not None and cap.oom_kills() > oom_before
        if result is None:
            if res.timed_out:
                rec.status, rec.message = "timeout", f"agent did not finish within {spec.timeout_s} s; killed"
            elif oom_killed:
                rec.status, rec.message = "oom", "the agent was OOM-killed under the memory cap"
            elif res.exit_code < 0:
                rec.status, rec.signal = "crashed", -res.exit_code
                rec.message = f"agent killed by signal {-res.exit_code}"
            else:
                tail = (res.stderr or res.stdout).strip()[-800:]
                rec.status, rec.message = "error", f"agent exited {res.exit_code} without a result: {tail}"
        else:
            self._fill_from_agent(rec, result)
            if trace is not None and rec.status == "ok":
                self._add_energy(rec, trace, host_phases, t_end, idle)
        if cap is not None:
            _apply_cap(rec, cap, oom_killed)

    @staticmethod
    def _add_energy(rec: Record, trace: energy.Trace, host_phases: list[dict[str, Any]], t_end: float,
                    idle: tuple[float, float] | None) -> None:
        events = [(str(p["phase"]), float(p["host_t"])) for p in host_phases]
        n_tokens = len(rec.samples.get("itl_ms", [])) + len(rec.samples.get("ttft_ms", []))
        rec.energy, emetrics = energy.summarise(
            trace, energy.phases_from_events(events, t_end), n_inferences=len(rec.samples.get("latency_ms", [])),
            n_tokens=n_tokens or None, idle_window=idle)
        rec.metrics.update(emetrics)
        rec.tainted += [t for t in rec.energy.get("tainted", []) if t not in rec.tainted]

    def _fill_from_agent(self, rec: Record, event: dict[str, Any]) -> None:
        r = AgentResult.from_dict(event)
        rec.status, rec.message, rec.signal = r.status, r.message, r.signal  # type: ignore[assignment]
        rec.runtime = dict(r.runtime)
        for name, m in r.metrics.items():
            rec.metrics[name] = Metric.from_dict(m)
        rec.samples = {k: [float(x) for x in v] for k, v in r.samples.items()}
        rec.phases = list(r.phases)
        if r.workload:  # the spec the agent actually used, defaults filled
            rec.workload = dict(r.workload)
        rec.provenance["input_shapes"] = r.input_shapes
        rec.provenance["artifact_sha256_loaded"] = r.artifact_sha256
        want = rec.artifact.sha256
        if r.artifact_sha256 is not None and want and r.artifact_sha256 != want:
            rec.status = "error"
            rec.message = (f"artifact sha256 mismatch on the device: expected {want}, the model process loaded "
                           f"{r.artifact_sha256}; figures discarded")
            rec.metrics, rec.samples = {}, {}
        if r.stopping:  # why the measured runs ended (adaptive: interval widths reached, or max_s)
            rec.provenance["stopping"] = r.stopping
        if r.os_peak_rss_mib is not None:
            rec.provenance["os_peak_rss_mib"] = r.os_peak_rss_mib
            rec.provenance["os_peak_rss_equals"] = r.os_peak_rss_equals
        if r.thermal:  # the agent's start/end zone readings beside the controller's
            rec.thermal = {**r.thermal, **(rec.thermal or {})}
        peak = rec.value("peak_rss_mib")
        if peak is not None and self.profile.ram_mib:
            rec.metrics["memory_headroom_pct"] = Metric(
                value=round(100.0 * (self.profile.ram_mib - peak) / self.profile.ram_mib, 2), unit="%")
        unknown = sorted(set(rec.metrics) - set(METRICS))
        if unknown:
            rec.provenance["unregistered_metrics"] = unknown

    def _provenance(self) -> dict[str, Any]:
        return {"harness_version": harness_version(), "agent_sha256": self.agent.sha256,
                "controller": platform.node(), "agent_python": self.fingerprint.get("python")}


def _apply_cap(rec: Record, cap: MemoryCap, oom_killed: bool) -> None:
    """Record the cap; a kernel OOM kill under it is `oom`, with the memory the group reached."""
    if oom_killed and rec.status in ("crashed", "error"):
        rec.status = "oom"
        rec.message = f"OOM-killed by the {cap.kind} memory cap of {cap.limit_mib} MiB"
    peak = cap.peak_mib()
    rec.provenance["memory_cap"] = {"kind": cap.kind, "limit_mib": cap.limit_mib,
                                    "group_peak_mib": None if peak is None else round(peak, 2)}
    if rec.status == "oom" and peak is not None:
        rec.metrics.setdefault("peak_rss_mib", Metric(value=round(peak, 2), unit="MiB",
                                                      note="the memory cap group's peak at the OOM kill"))


def _device_info(profile: Profile, fingerprint: dict[str, Any]) -> DeviceInfo:
    return DeviceInfo(name=profile.name, transport=profile.transport.kind, device_class=profile.device_class,
                      ram_mib=profile.ram_mib, fingerprint=fingerprint)


def failed_record(profile: Profile, artifact: ArtifactInfo, run_id: str, status: str, message: str) -> Record:
    """A record for an artifact that never ran (device unreachable, lost before its turn)."""
    t = now_rfc3339()
    if status not in ("error", "device_lost", "skipped"):
        raise UserError(f"internal: bad status {status}")
    return Record(run_id=run_id, device=_device_info(profile, {}), artifact=artifact, status=status,  # type: ignore[arg-type]
                  started_at=t, finished_at=t, message=message, provenance={"harness_version": harness_version()})
